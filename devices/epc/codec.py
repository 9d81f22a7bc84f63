"""The one engine over :data:`devices.epc.schemes.SCHEMES`: EPC hex -> identity, tag URI -> hex."""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from devices.epc.fast96 import compile_fast96
from devices.epc.fields import BitReader, BitWriter, Invalid, Partitioned, String7, parse_uint, unescape
from devices.epc.schemes import BY_HEADER, BY_NAME, Scheme, header_problem
from devices.errors import DecodeError

__all__ = ["EpcIdentity", "decode_epc", "encode_sgtin96", "encode_tag_uri", "gs1_check_digit"]

_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")
_MAX_HEX: Final = 124  # 496 bits, the largest EPC a Gen2 PC word can announce


class EpcIdentity(NamedTuple):
    """What an EPC means.

    ``scheme`` is the tag encoding (``"sgtin-96"``, ``"gsrn-96"``, ``"adi-var"``, ... or ``"raw"``);
    ``uri`` the pure identity URI (``urn:epc:id:sgtin:0614141.812345.6789``); ``tag_uri`` adds the
    filter and encoding (``urn:epc:tag:sgtin-96:3.0614141.812345.6789``). ``gtin`` (14 digits:
    SGTIN, ITIP), ``sscc`` (18 digits), ``gln`` (13 digits, SGLN) carry their GS1 check digit.
    ``serial`` is the scheme's serial component (the SGLN extension, the GIAI asset reference),
    unescaped. ``raw_hex`` is the upper-case hex the identity was decoded from.

    A raw identity says why in ``reason``; ``error`` is set too when the EPC carries a GS1 header
    but is not a valid encoding (reserved header, partition 7, bad string, wrong length).
    """

    scheme: str
    uri: str
    tag_uri: str
    filter: int | None
    gtin: str | None
    sscc: str | None
    gln: str | None
    serial: str | None
    raw_hex: str
    company_prefix: str | None = None
    error: str | None = None
    reason: str | None = None


def gs1_check_digit(digits: str) -> str:
    """GS1 mod-10 check digit: weights 3,1,3,... from the rightmost digit (ASCII digits only)."""
    b = digits.encode("ascii")
    odd = b[-1::-2]
    even = b[-2::-2]
    total = 3 * (sum(odd) - 48 * len(odd)) + sum(even) - 48 * len(even)
    return str(-total % 10)


def _key(scheme: Scheme, parts: list[str]) -> tuple[str | None, str | None, str | None]:
    """(gtin, sscc, gln) with check digits; the indicator / extension digit moves to the front."""
    if scheme.key is None:
        return None, None, None
    cp, ref = parts[0], parts[1]
    if scheme.key == "gln":
        return None, None, cp + ref + gs1_check_digit(cp + ref)
    body = ref[:1] + cp + ref[1:]
    full = body + gs1_check_digit(body)
    return (full, None, None) if scheme.key == "gtin" else (None, full, None)


def _byte_or_word_padded(bits: int) -> tuple[int, int]:
    """Hex lengths a reader may report for ``bits``: padded to a byte, or to 16-bit words."""
    return -(-bits // 8) * 2, -(-bits // 16) * 4


# Per scheme, precomputed: the hex lengths a fixed-length scheme accepts, whether it has a company prefix.
_LENGTHS: Final = {s.name: _byte_or_word_padded(s.bits) if s.bits else () for s in BY_HEADER.values()}
_HAS_COMPANY_PREFIX: Final = {s.name: s.fields[0].arity == 2 for s in BY_HEADER.values()}


_FAST: Final = {s.header: f for s in BY_HEADER.values() if (f := compile_fast96(s)) is not None}


def _decode(scheme: Scheme, h: str) -> EpcIdentity:
    fast = _FAST.get(scheme.header)
    if fast is not None and len(h) == 24 and (got := fast(int(h, 16))) is not None:
        return _identity(scheme, h, *got)
    total = len(h) * 4
    if scheme.bits is not None and len(h) not in _LENGTHS[scheme.name]:
        raise Invalid(f"needs {scheme.bits} bits, got {total}")
    reader = BitReader(int(h, 16), total - 8)
    filter_value = reader.take(scheme.filter_bits) if scheme.filter_bits else None
    parts: list[str] = []
    for field in scheme.fields:
        field.decode(reader, parts)
    if scheme.bits is None:
        used = total - reader.pos
        if len(h) not in _byte_or_word_padded(used) or reader.value & ((1 << reader.pos) - 1):
            raise Invalid(f"{used} bits of fields, then {reader.pos} bits that are not zero padding")
    return _identity(scheme, h, filter_value, parts)


def _identity(scheme: Scheme, h: str, filter_value: int | None, parts: list[str]) -> EpcIdentity:
    body = ".".join(parts)
    tag_body = body if filter_value is None else f"{filter_value}.{body}"
    serial = parts[scheme.serial] if scheme.serial is not None else None
    if serial is not None and "%" in serial:
        serial = unescape(serial)
    company_prefix = parts[0] if _HAS_COMPANY_PREFIX[scheme.name] else None
    return EpcIdentity(
        scheme.name,
        f"urn:epc:id:{scheme.identity}:{body}",
        f"urn:epc:tag:{scheme.name}:{tag_body}",
        filter_value, *_key(scheme, parts), serial, h, company_prefix,
    )  # fmt: skip


def _raw(h: str, reason: str, error: bool) -> EpcIdentity:
    uri = f"urn:epc:raw:{len(h) * 4}.x{h}"
    return EpcIdentity(
        "raw", uri, uri, None, None, None, None, None, h, None, reason if error else None, reason
    )


def decode_epc(epc_hex: str, *, strict: bool = False) -> EpcIdentity:
    """Identity of an EPC given as hex (either case).

    Text that is not hex (odd length, empty, over 496 bits) raises :class:`DecodeError`. Hex that
    is not a GS1 encoding decodes to ``scheme="raw"`` with ``reason`` saying why; when it carries
    a reserved or GS1 header but breaks the standard, ``error`` says how -- or, with
    ``strict=True``, :class:`DecodeError` is raised with that reason (the CLI's choice; a reader
    stream keeps the tag as raw instead).
    """
    if not isinstance(epc_hex, str) or not _HEX_RE.fullmatch(epc_hex):
        raise DecodeError(f"EPC must be a non-empty hex string, got {epc_hex!r}")
    if len(epc_hex) % 2:
        raise DecodeError(f"EPC hex has an odd number of digits ({len(epc_hex)})")
    if len(epc_hex) > _MAX_HEX:
        raise DecodeError(f"EPC of {len(epc_hex) * 4} bits exceeds the 496-bit maximum")
    h = epc_hex.upper()
    header = int(h[:2], 16)
    scheme = BY_HEADER.get(header)
    if scheme is None:
        is_error, reason = header_problem(header)
    else:
        try:
            return _decode(scheme, h)
        except Invalid as exc:
            is_error, reason = True, f"invalid {scheme.name}: {exc}"
    if strict and is_error:
        raise DecodeError(reason)
    return _raw(h, reason, is_error)


def encode_sgtin96(company_prefix: str, item_reference: str, serial: int, filter_value: int = 1) -> str:
    """SGTIN-96 hex for a GTIN's company prefix and item reference (indicator digit first).

    ``company_prefix`` has 6..12 digits and ``item_reference`` 13 minus that many;
    ``serial`` is 0..2^38-1. Raises ``ValueError`` otherwise.
    """
    return encode_tag_uri(f"urn:epc:tag:sgtin-96:{filter_value}.{company_prefix}.{item_reference}.{serial}")


def encode_tag_uri(tag_uri: str) -> str:
    """Upper-case hex of an EPC tag URI (any scheme :func:`decode_epc` decodes, including raw).

    The inverse of ``decode_epc(h).tag_uri``, padded to 16-bit words as a tag's EPC bank holds it;
    raises ``ValueError`` for a URI the standard does not allow (wrong digit counts, leading zeros
    in a numeric serial, characters outside the scheme's alphabet, values that do not fit).
    """
    if tag_uri.startswith("urn:epc:raw:"):
        return _encode_raw(tag_uri)
    prefix = "urn:epc:tag:"
    if not tag_uri.startswith(prefix) or ":" not in tag_uri[len(prefix) :]:
        raise ValueError(f"not an EPC tag URI: {tag_uri!r}")
    name, _, body = tag_uri[len(prefix) :].partition(":")
    scheme = BY_NAME.get(name)
    if scheme is None:
        raise ValueError(f"unsupported EPC scheme {name!r}")
    parts = body.split(".")
    wanted = scheme.arity + (1 if scheme.filter_bits else 0)
    if len(parts) > wanted and _ends_in_string7(scheme):
        parts[wanted - 1 :] = [".".join(parts[wanted - 1 :])]  # '.' is a legal serial character
    if len(parts) != wanted:
        raise ValueError(f"{name} tag URI needs {wanted} dot-separated fields, got {len(parts)}")
    try:
        return _encode(scheme, parts)
    except Invalid as exc:
        raise ValueError(f"{name}: {exc}") from None


def _ends_in_string7(scheme: Scheme) -> bool:
    last = scheme.fields[-1]
    return isinstance(last, String7) or (isinstance(last, Partitioned) and last.ref == "str7")


def _encode(scheme: Scheme, parts: list[str]) -> str:
    w = BitWriter()
    w.put(scheme.header, 8)
    if scheme.filter_bits:
        filter_value = parse_uint(parts.pop(0), "filter")
        if filter_value >> scheme.filter_bits:
            raise Invalid(f"filter must be 0..{(1 << scheme.filter_bits) - 1}, got {filter_value}")
        w.put(filter_value, scheme.filter_bits)
    for field in scheme.fields:
        field.encode(parts[: field.arity], w)
        del parts[: field.arity]
    pad = -w.bits % 16
    return "%0*X" % ((w.bits + pad) // 4, w.value << pad)  # noqa: UP031


def _encode_raw(uri: str) -> str:
    bits, _, hexpart = uri[len("urn:epc:raw:") :].partition(".x")
    if not bits.isdigit() or not _HEX_RE.fullmatch(hexpart) or int(bits) != len(hexpart) * 4:
        raise ValueError(f"malformed raw EPC URI {uri!r}")
    return hexpart.upper()
