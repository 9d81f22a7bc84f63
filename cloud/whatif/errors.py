"""The error tree of :mod:`cloud.whatif`; each error carries the HTTP status the API answers with."""

from __future__ import annotations


class WhatIfError(ValueError):
    """Base of everything this package raises on unusable input (CLI: exit 2)."""

    status_code = 422
    code = "invalid_scenario"


class ScenarioError(WhatIfError):
    """The scenario does not parse or validate; the message names the field."""


class ScenarioTooLarge(WhatIfError):
    """More work (items x runs x days) than the caller may ask for."""

    status_code = 413
    code = "scenario_too_large"


class SiteNotFound(WhatIfError):
    """The scenario names a cloud site with nothing to simulate."""

    status_code = 404
    code = "site_not_found"
