"""The reader configuration in docs/readers.md is valid edge configuration (parsed by the same
models the edge uses), so the guide cannot drift from the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from shelfsense.config import EdgeSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "readers.md"


def _edge(snippets: list[str]) -> EdgeSettings:
    data = tomllib.loads("\n".join(snippets))
    return EdgeSettings(edge_id="edge-1", site_id="site-1", **data["edge"])


def test_documented_examples_are_valid_and_mean_what_the_text_says() -> None:
    snippets = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(snippets) == 2
    edge = _edge(snippets)
    (llrp,) = edge.llrp_readers
    assert llrp.logical_readers() == {"dock-1-outer": "dock", "dock-1-inner": "cold-room"}
    (portal,) = edge.portals
    assert {portal.outer_reader, portal.inner_reader} == set(llrp.logical_readers())
    (nfc,) = edge.nfc_readers
    assert (nfc.kind, nfc.baudrate, nfc.location) == ("pn532", 115200, "goods-in")
    rdm = _edge([snippets[1].replace('"pn532"', '"rdm6300"')]).nfc_readers[0]
    assert rdm.baudrate == 9600  # the documented module default


def test_documented_rules_are_enforced() -> None:
    snippets = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    with pytest.raises(ValidationError, match="antenna numbers must be unique"):
        _edge([snippets[0].replace("antenna = 2", "antenna = 1")])
    with pytest.raises(ValidationError, match="name different locations"):
        _edge([snippets[0].replace('reader_id = "dock-1-inner"', 'reader_id = "dock-1-outer"')])
