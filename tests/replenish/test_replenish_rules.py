"""Rules engine: the issue's examples, validation errors that name rule and field, no code execution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.replenish.errors import RuleError
from cloud.replenish.rules import RuleSet, load_rules, load_rules_file

ISSUE_RULES_TOML = """
[[rules]]
name = "low stock of X from A"
when = { all = [
    { field = "product.sku", op = "eq", value = "X" },
    { field = "stock.available", op = "lt", value = 20 },
    { field = "supplier.id", op = "eq", value = "A" },
] }
then = [ { action = "create_proposal", kind = "purchase" }, { action = "notify", channel = "buyer" } ]

[[rules]]
name = "big orders need finance"
when = { field = "order.value", op = "gt", value = 100000 }
then = [ { action = "require_approval", role = "finance", level = 2 } ]

[[rules]]
name = "every order is approved by the buyer"
when = { field = "order.value", op = "gt", value = 0 }
then = [ { action = "require_approval", role = "buyer" } ]
"""


def facts(sku: str = "X", available: Any = 12, supplier: str = "A", value: float = 500.0) -> dict[str, Any]:
    return {
        "product": {"sku": sku, "category": "dairy"},
        "stock": {"available": available},
        "supplier": {"id": supplier},
        "location": {"id": "store-1"},
        "order": {"value": value},
    }


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    path = tmp_path / "rules.toml"
    path.write_text(ISSUE_RULES_TOML)
    return load_rules_file(path)


def test_stock_of_x_below_20_from_a_creates_po_and_notifies_buyer(rules: RuleSet) -> None:
    decision = rules.decide(facts())
    assert decision.proposals == {"purchase": ("low stock of X from A",)}
    assert decision.notify == {"buyer": ("low stock of X from A",)}
    # each condition of the "all" matters
    for changed in (facts(available=20), facts(supplier="B"), facts(sku="Y")):
        assert rules.decide(changed).proposals == {}


def test_orders_over_100000_need_finance(rules: RuleSet) -> None:
    assert rules.decide(facts(value=100_000)).approvals == ((1, "buyer"),)
    big = rules.decide(facts(value=100_000.01))
    assert big.approvals == ((1, "buyer"), (2, "finance"))  # multi-level, ordered by level
    assert big.needs_approval


def test_same_rules_from_json_and_dict() -> None:
    data = {
        "rules": [
            {
                "name": "slow dairy",
                "when": {
                    "any": [
                        {"field": "product.category", "op": "in", "value": ["dairy", "meat"]},
                        {"not": {"field": "location.id", "op": "eq", "value": "store-1"}},
                    ]
                },
                "then": [{"action": "create_proposal", "kind": "transfer"}],
            }
        ]
    }
    for loaded in (load_rules(data), load_rules(json.dumps(data), "json")):
        assert [m.rule for m in loaded.evaluate(facts())] == ["slow dairy"]
        other = facts()
        other["product"]["category"] = "bakery"
        assert loaded.evaluate(other) == []  # not in list and location is store-1
        other["location"]["id"] = "store-2"
        assert loaded.decide(other).proposals == {"transfer": ("slow dairy",)}


def test_missing_or_mistyped_facts_are_false_not_errors(rules: RuleSet) -> None:
    assert rules.decide({"product": {"sku": "X"}, "supplier": {"id": "A"}}).proposals == {}
    assert rules.decide(facts(available="lots")).proposals == {}
    assert rules.decide(facts(available=True)).proposals == {}  # a bool is not a quantity
    assert rules.decide({}).approvals == ()


def test_disabled_rule_does_not_fire() -> None:
    loaded = load_rules(
        {
            "rules": [
                {
                    "name": "off",
                    "enabled": False,
                    "when": {"field": "stock.available", "op": "lt", "value": 99},
                    "then": [{"action": "notify", "channel": "x"}],
                }
            ]
        }
    )
    assert loaded.evaluate(facts()) == []


OK = {"field": "order.value", "op": "gt", "value": 1}


def _rule(when: Any, then: Any = None, name: str = "r1") -> dict[str, Any]:
    return {"rules": [{"name": name, "when": when, "then": then or [{"action": "notify", "channel": "b"}]}]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_rule({"field": "stok.x", "op": "lt", "value": 1}), "rule 'r1' (#1): when.field: 'stok.x' must"),
        (_rule({"field": "stock.level", "op": "below", "value": 1}), "rule 'r1' (#1): when.op"),
        (_rule({"field": "stock.level", "op": "lt", "value": "20"}), "when: op 'lt' needs a number"),
        (_rule({"field": "stock.level", "op": "in", "value": 3}), "op 'in' needs a list value"),
        (_rule({"all": [{"field": "stock.level", "op": "lt"}]}), "when.all[0].value: Field required"),
        (_rule({"all": []}), "when.all: List should have at least 1 item"),
        (_rule({"stock": 1}), "when.stock: Extra inputs are not permitted"),
        (_rule(7), "when: a condition is {field, op, value}"),
        (_rule(OK, [{"action": "exec", "code": "x"}]), "then[0]: Input tag 'exec'"),
        (_rule(OK, [{"action": "notify"}]), "then[0].channel"),
        (
            _rule(OK, [{"action": "require_approval", "role": "f", "level": 0}]),
            "then[0].level: Input should be greater than or equal to 1",
        ),
        (_rule({"field": "__class__.mro", "op": "eq", "value": 1}), "must start with one of"),
        (_rule({"field": "stock.Level", "op": "eq", "value": 1}), "is not a dotted lower-case path"),
        ({"rules": [_rule(OK)["rules"][0], _rule(OK)["rules"][0]]}, "rule name 'r1' is used twice"),
        ({"rule": []}, "rules: Field required"),
    ],
)
def test_validation_errors_name_rule_and_field(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(RuleError) as info:
        load_rules(data)
    assert expected in str(info.value)


def test_bad_documents(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not valid TOML"):
        load_rules("[[rules]\nname=", "toml")
    with pytest.raises(RuleError, match="not valid JSON"):
        load_rules("{", "json")
    with pytest.raises(RuleError, match="object with a 'rules' list"):
        load_rules("[1, 2]", "json")
    deep: Any = {"field": "stock.x", "op": "eq", "value": 1}
    for _ in range(40):
        deep = {"not": deep}
    with pytest.raises(RuleError, match="nested deeper"):
        load_rules(_rule(deep))
    with pytest.raises(RuleError, match=r"\.json or \.toml"):
        load_rules_file(tmp_path / "rules.yaml")
    with pytest.raises(RuleError, match="cannot read"):
        load_rules_file(tmp_path / "missing.json")


def test_a_rule_cannot_run_code() -> None:
    # Values are data: a string that looks like code is compared, never evaluated; fact objects are only
    # walked through mappings, so attributes such as __class__ are unreachable.
    loaded = load_rules(_rule({"field": "product.sku", "op": "eq", "value": "__import__('os').system('x')"}))
    assert loaded.evaluate(facts(sku="__import__('os').system('x')"))[0].rule == "r1"

    class Sneaky:
        sku = "X"

    sku_rule = load_rules(_rule({"field": "product.sku", "op": "eq", "value": "X"}))
    assert sku_rule.evaluate({"product": {"sku": "X"}}) != []
    assert sku_rule.evaluate({"product": Sneaky()}) == []


@given(st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_comparisons_agree_with_python(stock: int, threshold: int) -> None:
    ops = {
        "lt": stock < threshold,
        "le": stock <= threshold,
        "gt": stock > threshold,
        "ge": stock >= threshold,
        "eq": stock == threshold,
        "ne": stock != threshold,
    }
    for op, expected in ops.items():
        loaded = load_rules(_rule({"field": "stock.available", "op": op, "value": threshold}))
        assert bool(loaded.evaluate({"stock": {"available": stock}})) is expected
