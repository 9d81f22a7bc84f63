"""EPCIS identifiers: EPC URIs <-> the hex the edges report, and GLN <-> SGLN URIs (GS1 TDS 2.x).

A pure-identity EPC URI (``urn:epc:id:sgtin:0614141.112345.400``) does not carry the filter value
that the tag's binary encoding does, so one URI stands for up to eight hex encodings (filter 0..7).
:func:`epc_hex_candidates` lists them; a caller that knows which tags exist picks the known one and
otherwise :func:`preferred_hex` (TDS §10: filter 1 "point of sale item" for SGTIN, 0 "all others"
elsewhere). Tag URIs (``urn:epc:tag:...``) and raw URIs name exactly one encoding.
"""

from __future__ import annotations

import re
from typing import Final

from devices.epc import decode_epc, encode_tag_uri, gs1_check_digit
from devices.errors import DecodeError

_HEX_RE: Final = re.compile(r"^(?:[0-9A-Fa-f]{4}){2,31}$")  # whole 16-bit words, 32..496 bits
OWN_TAG_PREFIX: Final = "urn:shelfsense:tag:"
# pure-identity scheme -> (96-bit tag scheme, whether its binary encoding has a filter value)
_SCHEMES: Final = {
    "sgtin": ("sgtin-96", True),
    "sscc": ("sscc-96", True),
    "sgln": ("sgln-96", True),
    "grai": ("grai-96", True),
    "giai": ("giai-96", True),
    "gid": ("gid-96", False),
}
_DEFAULT_FILTER: Final = {"sgtin": 1}


def epc_uri(epc_hex: str) -> str:
    """The pure-identity URI of a tag (``urn:epc:raw:...`` for non-GS1 tags)."""
    try:
        return decode_epc(epc_hex).uri
    except DecodeError:
        return f"{OWN_TAG_PREFIX}{epc_hex}"


def epc_hex_candidates(text: str) -> list[str]:
    """Every upper-case hex encoding ``text`` may name: hex itself, a tag / raw URI, our own
    ``urn:shelfsense:tag:`` or a pure-identity URI (all filter values, the preferred one first).
    Empty if ``text`` names no EPC we can encode (an EPC class, an unsupported scheme)."""
    text = text.strip()
    if _HEX_RE.fullmatch(text):
        return [text.upper()]
    if text.startswith(OWN_TAG_PREFIX):
        rest = text[len(OWN_TAG_PREFIX) :]
        return [rest.upper()] if _HEX_RE.fullmatch(rest) else []
    if text.startswith(("urn:epc:tag:", "urn:epc:raw:")):
        try:
            return [encode_tag_uri(text)]
        except ValueError:
            return []
    if not text.startswith("urn:epc:id:"):
        return []
    scheme, _, body = text[len("urn:epc:id:") :].partition(":")
    known = _SCHEMES.get(scheme)
    if known is None or not body:
        return []
    tag_scheme, has_filter = known
    if not has_filter:
        return _encode_all([f"urn:epc:tag:{tag_scheme}:{body}"])
    preferred = _DEFAULT_FILTER.get(scheme, 0)
    filters = [preferred, *(f for f in range(8) if f != preferred)]
    return _encode_all([f"urn:epc:tag:{tag_scheme}:{f}.{body}" for f in filters])


def _encode_all(tag_uris: list[str]) -> list[str]:
    out = []
    for uri in tag_uris:
        try:
            out.append(encode_tag_uri(uri))
        except ValueError:
            return []  # the body itself is invalid (digit counts, range): no filter fixes that
    return out


def preferred_hex(candidates: list[str], known: set[str]) -> str | None:
    """The candidate a site knows, else the preferred encoding (the first); None if no candidate."""
    for hex_epc in candidates:
        if hex_epc in known:
            return hex_epc
    return candidates[0] if candidates else None


def gln_valid(gln: str) -> bool:
    return len(gln) == 13 and gln.isdigit() and gs1_check_digit(gln[:12]) == gln[12]


def sgln_uri(gln: str, company_prefix_length: int, extension: str = "0") -> str:
    """``urn:epc:id:sgln:<company prefix>.<location reference>.<extension>`` (TDS §6.3.3)."""
    if not gln_valid(gln):
        raise ValueError(f"not a GLN (13 digits with a valid check digit): {gln!r}")
    if not 6 <= company_prefix_length <= 12:
        raise ValueError("a GS1 company prefix has 6 to 12 digits")
    return f"urn:epc:id:sgln:{gln[:company_prefix_length]}.{gln[company_prefix_length:12]}.{extension}"


def parse_sgln(uri: str) -> tuple[str, str] | None:
    """``(GLN with check digit, extension)`` of an SGLN pure-identity URI, or None."""
    if not uri.startswith("urn:epc:id:sgln:"):
        return None
    parts = uri[len("urn:epc:id:sgln:") :].split(".")
    if len(parts) != 3 or not (parts[0] + parts[1]).isdigit() or len(parts[0] + parts[1]) != 12:
        return None
    if not parts[2]:
        return None
    body = parts[0] + parts[1]
    return body + gs1_check_digit(body), parts[2]


__all__ = [
    "epc_hex_candidates",
    "epc_uri",
    "gln_valid",
    "parse_sgln",
    "preferred_hex",
    "sgln_uri",
]
