"""Every TDS binary scheme: published vectors, errors with reasons, and property-tested round trips.

Vectors: the tag URI / hex pairs of nedap's ``epcpy`` test suite (github.com/nedap/retail-epcpy,
tests/epc_schemes/test_<scheme>.py at commit 4fbb8b0, which works from the GS1 EPC Tag Data Standard
2.x appendix E examples), and the GSRN-96 / GSRNP-96 tests of the Java ``epcGS1coder`` library
(org/java/epcGS1coder/gsrn/Gsrn96Test.java, Gsrnp96Test.java). ``epcpy`` (PyPI) then acts as an
independent oracle for hypothesis-generated identities of every scheme it implements.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.epc import SCHEMES, decode_epc, encode_tag_uri
from devices.epc.fields import (
    CAGE,
    CS39,
    CS82,
    Cage6,
    Cage8,
    Field,
    Fixed,
    Integer,
    NumericString,
    Partitioned,
    Reserved,
    String6,
    String7,
    escape,
)
from devices.errors import DecodeError

epcpy = pytest.importorskip("epcpy")

# (tag URI, hex, pure identity URI) -- source in the module docstring.
VECTORS = [
    (
        "urn:epc:tag:gsrn-96:0.0614141.1234567890",
        "2D14257BF4499602D2000000",
        "urn:epc:id:gsrn:0614141.1234567890",
    ),
    (
        "urn:epc:tag:gsrn-96:5.999999999999.99999",
        "2DA3A352943FFD869F000000",
        "urn:epc:id:gsrn:999999999999.99999",
    ),
    (
        "urn:epc:tag:gsrn-96:0.8434567.8901234567",
        "2D1602CE1E128E0F87000000",
        "urn:epc:id:gsrn:8434567.8901234567",
    ),
    (
        "urn:epc:tag:gsrnp-96:0.8434567.8901234567",
        "2E1602CE1E128E0F87000000",
        "urn:epc:id:gsrnp:8434567.8901234567",
    ),
    (
        "urn:epc:tag:gsrnp-96:0.012345678901.01234",
        "2E000B7F7070D404D2000000",
        "urn:epc:id:gsrnp:012345678901.01234",
    ),
    (
        "urn:epc:tag:gdti-96:2.0614141.12345.2199023255551",
        "2C54257BF46073FFFFFFFFFF",
        "urn:epc:id:gdti:0614141.12345.2199023255551",
    ),
    (
        "urn:epc:tag:gdti-174:0.0614141.12345.ABCD1234%2F",
        "3E14257BF460730614388C593368BC00000000000000",
        "urn:epc:id:gdti:0614141.12345.ABCD1234%2F",
    ),
    (
        "urn:epc:tag:gdti-174:2.0614141.12345.2199023255552",
        "3E54257BF46072C98B972C193364D5AB56AC80000000",
        "urn:epc:id:gdti:0614141.12345.2199023255552",
    ),
    ("urn:epc:tag:cpi-96:1.0614141.123456.0", "3C34257BF400F12000000000", "urn:epc:id:cpi:0614141.123456.0"),
    (
        "urn:epc:tag:cpi-var:0.0614141.12-456.123456789",
        "3D14257BF71CADD35D8000075BCD1500",
        "urn:epc:id:cpi:0614141.12-456.123456789",
    ),
    (
        "urn:epc:tag:cpi-var:5.0614141.123467890.100000000000",
        "3DB4257BF71CB3D36DF8E70005D21DBA0000",
        "urn:epc:id:cpi:0614141.123467890.100000000000",
    ),
    (
        "urn:epc:tag:sgcn-96:0.4012345.67890.04711",
        "3F14F4E4E612640000019907",
        "urn:epc:id:sgcn:4012345.67890.04711",
    ),
    ("urn:epc:tag:sgcn-96:7.401234512345..1", "3FE175ADC32764000000000B", "urn:epc:id:sgcn:401234512345..1"),
    (
        "urn:epc:tag:itip-110:7.4012345.012345.01.02.987",
        "40F4F4E4E40C0E40820000000F6C",
        "urn:epc:id:itip:4012345.012345.01.02.987",
    ),
    (
        "urn:epc:tag:itip-212:0.012345678901.0.00.00.ABCDEFGHIJKLMNOP%2FRST",
        "41000B7F7070D40000830A1C48B1A3C8932A5CC9B3A7D05F4A9D4000",
        "urn:epc:id:itip:012345678901.0.00.00.ABCDEFGHIJKLMNOP%2FRST",
    ),
    (
        "urn:epc:tag:giai-202:1.0614141.12345400",
        "3834257BF58B266D1AB460C00000000000000000000000000000",
        "urn:epc:id:giai:0614141.12345400",
    ),
    (
        "urn:epc:tag:giai-202:4.061411.01ABc%2FD",
        "38983BF8D831830B1AF880000000000000000000000000000000",
        "urn:epc:id:giai:061411.01ABc%2FD",
    ),
    (
        "urn:epc:tag:giai-202:1.012345.012345678901234567890123",
        "38380C0E583164CDA356CDDC3960C593368D5B3770E583164CC0",
        "urn:epc:id:giai:012345.012345678901234567890123",
    ),
    (
        "urn:epc:tag:sgln-195:0.061411123456..A%2F-BCDEFGHIJKLMNOPQR",
        "390039318D8401057AD850E2458D1E449952E64D9D3E851A4000",
        "urn:epc:id:sgln:061411123456..A%2F-BCDEFGHIJKLMNOPQR",
    ),
    (
        "urn:epc:tag:sgln-195:0.0614141.12345.01",
        "3914257BF46072C1880000000000000000000000000000000000",
        "urn:epc:id:sgln:0614141.12345.01",
    ),
    (
        "urn:epc:tag:grai-170:0.0614141.12345.ABCD1234%2F",
        "3714257BF40C0E60C287118B266D1780000000000000",
        "urn:epc:id:grai:0614141.12345.ABCD1234%2F",
    ),
    (
        "urn:epc:tag:grai-170:0.061414113245..01",
        "3700393243FF74183100000000000000000000000000",
        "urn:epc:id:grai:061414113245..01",
    ),
    (
        "urn:epc:tag:usdod-96:0.2S194.12345678901",
        "2F02032533139342DFDC1C35",
        "urn:epc:id:usdod:2S194.12345678901",
    ),
    (
        "urn:epc:tag:usdod-96:15.2S194.68719476735",
        "2FF203253313934FFFFFFFFF",
        "urn:epc:id:usdod:2S194.68719476735",
    ),
    (
        "urn:epc:tag:adi-var:5.W81X9C.3KL984PX1.2WMA-52",
        "3B157E316390F32CCE78D106310325CD06DD7200",
        "urn:epc:id:adi:W81X9C.3KL984PX1.2WMA-52",
    ),
    (
        "urn:epc:tag:adi-var:23.2S194..12345678901",
        "3B5E0C93C79D00C72CF4D76DF8E70C40",
        "urn:epc:id:adi:2S194..12345678901",
    ),
    (
        "urn:epc:tag:adi-var:1.W81X9C.3KL984PX1.%232WM%2FA52",
        "3B057E316390F32CCE78D10631023C9736F075C80000",
        "urn:epc:id:adi:W81X9C.3KL984PX1.%232WM%2FA52",
    ),
    (
        "urn:epc:tag:gid-96:95100000.12345.400",
        "355AB1C60003039000000190",
        "urn:epc:id:gid:95100000.12345.400",
    ),
    (
        "urn:epc:tag:sgtin-198:1.50712192365.88..%25:.13%26",
        "362579D5D4ADB6172574B98B34C0000000000000000000000000",
        "urn:epc:id:sgtin:50712192365.88..%25:.13%26",
    ),
    (
        "urn:epc:tag:sscc-96:0.061414123456.12345",
        "31003932449F003039000000",
        "urn:epc:id:sscc:061414123456.12345",
    ),
]


@pytest.mark.parametrize(("tag_uri", "hex_", "uri"), VECTORS)
def test_published_vectors_decode_and_encode(tag_uri: str, hex_: str, uri: str) -> None:
    identity = decode_epc(hex_)
    assert (identity.tag_uri, identity.uri, identity.reason) == (tag_uri, uri, None)
    assert identity.scheme == tag_uri.split(":")[3]
    assert encode_tag_uri(tag_uri) == hex_
    assert epcpy.hex_to_tag_encodable(hex_).epc_uri == uri


def test_every_scheme_has_a_vector() -> None:
    covered = {tag_uri.split(":")[3] for tag_uri, _, _ in VECTORS} | {
        "sgtin-96",
        "sgln-96",
        "grai-96",
        "giai-96",
    }
    assert covered | {"gdti-113"} == {scheme.name for scheme in SCHEMES}  # gdti-113: deprecated, no vector


def test_identity_fields_of_new_schemes() -> None:
    itip = decode_epc("40F4F4E4E40C0E40820000000F6C")
    assert (itip.gtin, itip.serial, itip.company_prefix, itip.filter) == (
        "04012345123456",
        "987",
        "4012345",
        7,
    )
    assert decode_epc("3B057E316390F32CCE78D10631023C9736F075C80000").serial == "#2WM/A52"
    assert decode_epc("3F14F4E4E612640000019907").serial == "04711"  # numeric string keeps leading zeros
    assert decode_epc("2D14257BF4499602D2000000").company_prefix == "0614141"


@pytest.mark.parametrize(
    ("hex_", "reason"),
    [
        ("2D1C257BF4499602D2000000", "partition value 7"),
        ("3F14F4E4E612640000000000", "numeric-string"),  # SGCN serial 0: no leading 1
        # gdti-174 serial "AB", then a 1 bit after its terminating zero character
        ("3E14257BF46073061000200000000000000000000000", "non-zero bits after"),
        ("3E14257BF460730614380000000000000000000000", "needs 174 bits"),
        ("3834257BF4" + "0" * 42, "empty asset reference"),  # giai-202 vector, string zeroed
        ("3714257BF40C0E7F4287118B266D1780000000000000", "not in the GS1 character set"),  # '~' first
        ("2F0203253313949000000000", "CAGE"),  # " 2S19I": no letter I in CAGE codes
        ("3B157E316390F32CCE78D106310325CD06DD7201", "not zero padding"),  # adi-var vector, pad bit set
        ("120000000000000000000000", "reserved for future use"),
        ("0A0000000000000000000000", "64-bit"),
        ("D00000000000000000000000", "64-bit"),
    ],
)
def test_invalid_gs1_is_an_error_with_its_reason(hex_: str, reason: str) -> None:
    identity = decode_epc(hex_)
    assert identity.scheme == "raw" and identity.uri == f"urn:epc:raw:{len(hex_) * 4}.x{hex_}"
    assert identity.error is not None and reason in identity.error
    assert identity.reason == identity.error
    with pytest.raises(DecodeError, match=reason):
        decode_epc(hex_, strict=True)


@pytest.mark.parametrize(
    ("hex_", "reason"),
    [("000000000000000000000000", "unprogrammed"), ("E2801160600002054CC2096F", "TID-style")],
)
def test_non_gs1_tags_stay_raw_and_say_why(hex_: str, reason: str) -> None:
    for strict in (False, True):
        identity = decode_epc(hex_, strict=strict)
        assert (identity.scheme, identity.error) == ("raw", None)
        assert identity.reason is not None and reason in identity.reason


@pytest.mark.parametrize(
    "uri",
    [
        "urn:epc:tag:usdod-96:16.2S194.1",  # filter is 4 bits
        "urn:epc:tag:usdod-96:0.2S1O4.1",  # no letter O in CAGE codes
        "urn:epc:tag:adi-var:64.W81X9C.1.2",  # filter is 6 bits
        "urn:epc:tag:adi-var:1.W81X9C.1.2#",  # '#' must be escaped ...
        "urn:epc:tag:adi-var:1.W81X9C.1.2%23",  # ... and only leads a serial
        "urn:epc:tag:adi-var:1.W81X9C.%231.2",  # never in a part number
        "urn:epc:tag:adi-var:1.W81X9C.1.",  # serial of 1..30 characters
        "urn:epc:tag:adi-var:1.W81X9C.1.%23",  # ... and more than a '#'
        "urn:epc:tag:cpi-96:1.0614141.0123456.0",  # integer reference: no leading zeros
        "urn:epc:tag:cpi-var:1.0614141.12a.0",  # lower case outside the 6-bit alphabet
        "urn:epc:tag:sgcn-96:0.4012345.67890.1234567890123",  # 13 digits
        "urn:epc:tag:itip-110:0.4012345.012345.1.02.987",  # piece needs 2 digits
        "urn:epc:tag:gsrn-96:0.0614141.123456789",  # service reference digits
        "urn:epc:tag:giai-202:1.0614141.%7E",  # escape of no reserved character
        "urn:epc:tag:gdti-174:0.0614141.12345.ABCDEFGHIJKLMNOPQ1",  # 18 > 17 characters
    ],
)
def test_encode_refuses_what_the_tds_does_not_allow(uri: str) -> None:
    with pytest.raises(ValueError):
        encode_tag_uri(uri)


# --------------------------------------------------------------------------- properties

_digits = "0123456789"


def _text(alphabet: str | frozenset[str], lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(sorted(alphabet), min_size=lo, max_size=hi)


def _uint(bits: int, maximum: int | None = None) -> st.SearchStrategy[str]:
    top = (1 << bits) - 1 if maximum is None else min(maximum, (1 << bits) - 1)
    return st.integers(0, top).map(str)


@st.composite
def _partitioned(draw: st.DrawFn, field: Partitioned) -> list[str]:
    _, cp_digits, ref_bits, ref_len = draw(st.sampled_from(field.table))
    cp = draw(_text(_digits, cp_digits, cp_digits))
    if field.ref == "digits":
        ref = draw(_text(_digits, ref_len, ref_len))
    elif field.ref == "int":
        ref = draw(st.integers(0, min(10**ref_len - 1, (1 << ref_bits) - 1)).map(str))
    elif field.ref == "str7":
        ref = escape(draw(_text(CS82, 1, ref_len)))
    else:
        ref = escape(draw(_text(CS39, 1, ref_len)))
    return [cp, ref]


def _field(field: Field) -> st.SearchStrategy[list[str]]:
    one: st.SearchStrategy[str]
    if isinstance(field, Partitioned):
        return _partitioned(field)
    if isinstance(field, Reserved):
        return st.just([])
    if isinstance(field, Integer):
        one = _uint(field.bits, field.maximum)
    elif isinstance(field, Fixed):
        one = _text(_digits, field.width, field.width)
    elif isinstance(field, NumericString):
        one = _text(_digits, 1, field.max_digits)
    elif isinstance(field, String7):
        one = _text(CS82, 1, field.max_chars).map(escape)
    elif isinstance(field, (Cage6, Cage8)):
        one = _text(CAGE, 5, 6)
    else:
        assert isinstance(field, String6)
        body = _text(CS39 - {"#"}, max(field.min_chars, 1) - 1, field.max_chars - 1)
        lead = st.sampled_from(sorted(CS39 if field.allow_hash else CS39 - {"#"}))
        one = st.tuples(lead, body).map("".join).filter(lambda text: text != "#")
        if field.min_chars == 0:
            one = st.one_of(st.just(""), one)
        one = one.map(escape)
    return one.map(lambda text: [text])


@st.composite
def tag_uris(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(SCHEMES))
    parts = [str(draw(st.integers(0, (1 << scheme.filter_bits) - 1)))] if scheme.filter_bits else []
    for field in scheme.fields:
        parts += draw(_field(field))
    return f"urn:epc:tag:{scheme.name}:{'.'.join(parts)}"


# epcpy 0.1.x gaps, found by these tests (ours follows the TDS there): it has no GDTI-113; it only
# unescapes %DD with decimal digits (%2F, %3C, %3E, %3F break it); and it checks a string's length
# on its escaped text (a 16-character GRAI serial with a '&' is refused); and it finds ADI-var's
# terminating six zero bits anywhere, not on 6-bit boundaries (part number "0" = 110000 000000 is
# read as an empty part). Those cases are covered by the published vectors above instead.
_ORACLE_SKIP = ("gdti-113", "adi-var", "%")


@settings(max_examples=300, deadline=None)
@given(tag_uris())
def test_every_scheme_round_trips_and_epcpy_agrees(tag_uri: str) -> None:
    hex_ = encode_tag_uri(tag_uri)
    assert len(hex_) % 4 == 0  # padded to whole 16-bit words, as an EPC bank holds it
    identity = decode_epc(hex_, strict=True)
    assert (identity.tag_uri, identity.reason) == (tag_uri, None)
    body = tag_uri.split(":", 4)[4]
    pure_body = body if identity.filter is None else body.split(".", 1)[1]
    assert identity.uri == f"urn:epc:id:{identity.scheme.split('-')[0]}:{pure_body}"
    if any(marker in tag_uri for marker in _ORACLE_SKIP):
        return
    assert epcpy.hex_to_tag_encodable(hex_).epc_uri == identity.uri


@settings(deadline=None)
@given(st.sampled_from([s for s in SCHEMES if s.bits]), st.data())
def test_any_bits_after_a_gs1_header_decode_or_say_why(scheme: object, data: st.DataObject) -> None:
    from devices.epc.schemes import Scheme

    assert isinstance(scheme, Scheme) and scheme.bits
    words = -(-scheme.bits // 16)
    rest = data.draw(st.integers(0, (1 << (scheme.bits - 8)) - 1))
    hex_ = f"{((scheme.header << (scheme.bits - 8)) | rest) << (words * 16 - scheme.bits):0{words * 4}X}"
    identity = decode_epc(hex_)
    assert identity.raw_hex == hex_
    if identity.scheme == "raw":
        assert identity.error and identity.error == identity.reason
        return
    again = encode_tag_uri(identity.tag_uri)
    assert decode_epc(again).tag_uri == identity.tag_uri
    if not any(isinstance(f, Reserved) for f in scheme.fields):
        assert again == hex_


def test_epcis_export_keeps_the_gs1_identity() -> None:
    from cloud.replenish.epcis import epc_uri

    assert epc_uri("2D14257BF4499602D2000000") == "urn:epc:id:gsrn:0614141.1234567890"
    assert epc_uri("E2801160600002054CC2096F") == "urn:epc:raw:96.xE2801160600002054CC2096F"


def _generic(hex_: str) -> object:
    """decode_epc without the 96-bit fast path (devices/epc/fast96.py)."""
    from devices.epc import codec

    saved = dict(codec._FAST)
    codec._FAST.clear()
    try:
        return decode_epc(hex_)
    finally:
        codec._FAST.update(saved)


@settings(deadline=None)
@given(st.sampled_from([0x2C, 0x2D, 0x2E, 0x30, 0x31, 0x32, 0x33, 0x34, 0x3C]), st.integers(0, 2**88 - 1))
def test_fast_path_agrees_with_the_generic_engine(header: int, rest: int) -> None:
    hex_ = f"{(header << 88) | rest:024X}"
    assert decode_epc(hex_) == _generic(hex_)
