"""The error tree of :mod:`cloud.replenish`.

Every error is a ``ValueError`` too, so a CLI or an API route can turn "the input is unusable" into an
exit status 2 / HTTP 422 without knowing which module raised it.
"""

from __future__ import annotations


class ReplenishError(ValueError):
    """Base of everything this package raises on bad input."""


class ForecastInputError(ReplenishError):
    """A demand series that cannot be forecast (NaN, negative, empty, wrong shape, bad parameter)."""


class PolicyError(ReplenishError):
    """A stock-policy input out of range (negative lead time, service level outside (0, 1), ...)."""


class RuleError(ReplenishError):
    """A rule set that does not validate; the message names the rule and the field."""
