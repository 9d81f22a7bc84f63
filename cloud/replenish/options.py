"""The restocking service's options (from ``[cloud.replenish]``) and its domain errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.core.errors import CloudError
from cloud.core.security import Role
from cloud.replenish.rules import RuleSet, load_rules_file
from cloud.stocktake.service import default_runner_id
from shelfsense.config import ReplenishSettings


class ReplenishServiceError(CloudError):
    """Base of the errors the API maps to responses."""


class ProposalNotFound(ReplenishServiceError):
    """No proposal with that id."""

    status_code = 404
    code = "not_found"


class ProposalConflict(ReplenishServiceError):
    """The proposal is not in a state that allows this (already decided, not approved, ...)."""

    status_code = 409
    code = "conflict"


class ApprovalForbidden(ReplenishServiceError):
    """The user cannot fill the approval step the proposal is waiting for."""

    status_code = 403
    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Approver:
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class ReplenishOptions:
    """The run's settings plus what the process adds (runner id, loaded rules)."""

    settings: ReplenishSettings = field(default_factory=ReplenishSettings)
    runner: str = field(default_factory=default_runner_id)
    rules: RuleSet | None = None

    @classmethod
    def from_settings(cls, settings: ReplenishSettings) -> ReplenishOptions:
        rules = load_rules_file(settings.rules_file) if settings.rules_file else None
        return cls(settings=settings, rules=rules)


__all__ = ["ApprovalForbidden", "Approver", "ProposalConflict", "ProposalNotFound", "ReplenishOptions"]
