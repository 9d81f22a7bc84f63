"""A small declarative rules engine for replenishment: conditions on facts, actions as data.

A rule set is JSON or TOML (or an equivalent dict)::

    [[rules]]
    name = "low stock of X from A"
    when = { all = [
        { field = "product.sku", op = "eq", value = "X" },
        { field = "stock.available", op = "lt", value = 20 },
        { field = "supplier.id", op = "eq", value = "A" },
    ] }
    then = [ { action = "create_proposal", kind = "purchase" }, { action = "notify", channel = "buyer" } ]

Conditions are ``{field, op, value}`` comparisons (``eq ne lt le gt ge in not_in``) combined with
``{all: [...]}``, ``{any: [...]}`` and ``{not: ...}``. Fields are dotted paths below one of the fact
roots ``product``, ``supplier``, ``location``, ``stock``, ``order``. Actions are ``create_proposal(kind)``,
``notify(channel)`` and ``require_approval(role, level)``.

Rules are validated when loaded (unknown keys, operators, roots and malformed values are rejected with
an error naming the rule and the field). Evaluation only walks the validated tree and compares values:
no ``eval``, no attribute access, no imports — a rule file can never run code. A field missing from the
facts, or a comparison between incompatible types, makes that comparison false rather than failing the
whole run.
"""

from __future__ import annotations

import json
import operator
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from cloud.replenish.errors import RuleError

FACT_ROOTS = ("product", "supplier", "location", "stock", "order")
MAX_DEPTH = 32  # nesting of the raw document; deeper input is refused before validation
_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")

Scalar = str | int | float | bool
_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- conditions ------------------------------------------------------------------------------------


class Compare(_Strict):
    field: str
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"]
    value: Scalar | list[Scalar]

    @field_validator("field")
    @classmethod
    def _known_root(cls, path: str) -> str:
        if not _PATH.match(path):
            raise ValueError(f"{path!r} is not a dotted lower-case path like 'stock.available'")
        if path.split(".")[0] not in FACT_ROOTS:
            raise ValueError(f"{path!r} must start with one of {', '.join(FACT_ROOTS)}")
        return path

    @model_validator(mode="after")
    def _value_fits_op(self) -> Compare:
        is_list = isinstance(self.value, list)
        if self.op in ("in", "not_in") and not is_list:
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op not in ("in", "not_in") and is_list:
            raise ValueError(f"op {self.op!r} needs a single value, not a list")
        if self.op in _ORDERING and (isinstance(self.value, bool) or not isinstance(self.value, int | float)):
            raise ValueError(f"op {self.op!r} needs a number")
        return self

    def matches(self, facts: Mapping[str, Any]) -> bool:
        found, actual = _lookup(facts, self.field)
        if not found:
            return False
        if self.op == "eq":
            return bool(actual == self.value)
        if self.op == "ne":
            return bool(actual != self.value)
        if self.op == "in":
            return _hashable_in(actual, self.value)
        if self.op == "not_in":
            return not _hashable_in(actual, self.value)
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False  # "stock below 20" is false, not an error, when stock is unknown or text
        return _ORDERING[self.op](actual, self.value)


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return all(c.matches(facts) for c in self.all)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return any(c.matches(facts) for c in self.any)


class Not(_Strict):
    not_: Condition = Field(alias="not")

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return not self.not_.matches(facts)


def _condition_tag(raw: Any) -> str | None:
    """Pick the condition type from its keys, so errors speak about one type instead of all four."""
    keys = set(raw) if isinstance(raw, Mapping) else set(vars(raw)) if isinstance(raw, BaseModel) else set()
    for tag, key in (("all", "all"), ("any", "any"), ("not", "not"), ("not", "not_")):
        if key in keys:
            return tag
    return "compare" if keys else None


Condition = Annotated[
    Annotated[Compare, Tag("compare")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message="a condition is {field, op, value}, {all: [...]}, {any: [...]} or {not: ...}",
    ),
]


def _lookup(facts: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """Walk mappings only (never attributes), so a fact object cannot be made to run code."""
    node: Any = facts
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _hashable_in(actual: Any, options: Scalar | list[Scalar]) -> bool:
    return isinstance(options, list) and any(actual == o for o in options)


# --- actions ---------------------------------------------------------------------------------------


class CreateProposal(_Strict):
    action: Literal["create_proposal"]
    kind: Literal["purchase", "transfer"] = "purchase"


class Notify(_Strict):
    action: Literal["notify"]
    channel: str = Field(min_length=1, max_length=100)


class RequireApproval(_Strict):
    action: Literal["require_approval"]
    role: str = Field(min_length=1, max_length=100)
    level: int = Field(default=1, ge=1, le=10)


Action = Annotated[CreateProposal | Notify | RequireApproval, Field(discriminator="action")]


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    enabled: bool = True
    when: Condition
    then: list[Action] = Field(min_length=1)


class RuleSet(_Strict):
    rules: list[Rule]

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return rules

    def evaluate(self, facts: Mapping[str, Any]) -> list[Match]:
        """The enabled rules whose condition holds for ``facts``, in file order."""
        return [Match(r.name, tuple(r.then)) for r in self.rules if r.enabled and r.when.matches(facts)]

    def decide(self, facts: Mapping[str, Any]) -> Decision:
        return decide(self.evaluate(facts))


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    rule: str
    actions: tuple[CreateProposal | Notify | RequireApproval, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the matched rules ask for together, each entry with the rules that asked for it."""

    proposals: dict[str, tuple[str, ...]]  # kind -> rules
    notify: dict[str, tuple[str, ...]]  # channel -> rules
    approvals: tuple[tuple[int, str], ...]  # (level, role), ordered by level: approve level 1 first

    @property
    def needs_approval(self) -> bool:
        return bool(self.approvals)


def decide(matches: Sequence[Match]) -> Decision:
    """Merge matches: each proposal kind and channel once; approvals unique by (level, role)."""
    proposals: dict[str, list[str]] = {}
    notify: dict[str, list[str]] = {}
    approvals: set[tuple[int, str]] = set()
    for match in matches:
        for action in match.actions:
            if isinstance(action, CreateProposal):
                proposals.setdefault(action.kind, []).append(match.rule)
            elif isinstance(action, Notify):
                notify.setdefault(action.channel, []).append(match.rule)
            else:
                approvals.add((action.level, action.role))
    return Decision(
        proposals={k: tuple(v) for k, v in proposals.items()},
        notify={k: tuple(v) for k, v in notify.items()},
        approvals=tuple(sorted(approvals)),
    )


# --- loading ---------------------------------------------------------------------------------------


def _depth(node: Any, limit: int) -> int:
    if limit <= 0:
        return 1
    if isinstance(node, Mapping):
        return 1 + max((_depth(v, limit - 1) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_depth(v, limit - 1) for v in node), default=0)
    return 0


_CONDITION_KEYS = frozenset({"all", "any", "not"})
_TAGS = frozenset({"compare", "all", "any", "not", "create_proposal", "notify", "require_approval"})


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    """``rule 'name' (#2) when.all[1].op`` from a pydantic error location."""
    parts: list[str] = []
    prefix = ""
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "rules" and isinstance(rest[1], int):
        index = rest[1]
        rules = data.get("rules") if isinstance(data, Mapping) else None
        raw = rules[index] if isinstance(rules, list) and index < len(rules) else None
        name = raw.get("name") if isinstance(raw, Mapping) else None
        prefix = f"rule {name!r} (#{index + 1})" if isinstance(name, str) else f"rule #{index + 1}"
        rest = rest[2:]
    previous: int | str | None = None
    for item in rest:
        # pydantic inserts the union tag into the location ("compare", "all" before the field "all",
        # "notify" after "then[0]"): noise to a rule author, so drop it.
        is_tag = item in _TAGS and (item == "compare" or isinstance(previous, int) or item in _CONDITION_KEYS)
        if is_tag and not (item in _CONDITION_KEYS and previous == item):
            previous = item
            continue
        previous = item
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    field = "".join(parts).replace(".not_", ".not")
    return f"{prefix}: {field}" if prefix and field else prefix or field or "rule set"


def load_rules(data: Mapping[str, Any] | str, fmt: Literal["json", "toml"] = "json") -> RuleSet:
    """Validate a rule set given as a dict or as JSON/TOML text; raises :class:`RuleError`."""
    if isinstance(data, str):
        try:
            data = json.loads(data) if fmt == "json" else tomllib.loads(data)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RuleError(f"rule set is not valid {fmt.upper()}: {exc}") from None
    if not isinstance(data, Mapping):
        raise RuleError("rule set must be an object with a 'rules' list")
    if _depth(data, MAX_DEPTH + 1) > MAX_DEPTH:
        raise RuleError(f"rule set is nested deeper than {MAX_DEPTH} levels")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{_where(tuple(e['loc']), data)}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        ]
        raise RuleError("invalid rules: " + "; ".join(lines)) from None


def load_rules_file(path: Path) -> RuleSet:
    """Load ``.json`` or ``.toml`` by extension."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise RuleError(f"{path}: rules must be a .json or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from None
    return load_rules(text, "json" if suffix == ".json" else "toml")


AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()
Rule.model_rebuild()
