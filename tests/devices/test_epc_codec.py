"""GS1 EPC decoding: TDS examples, round trips, and epcpy as an independent oracle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.epc import (
    GIAI_PARTITIONS,
    GRAI_PARTITIONS,
    SGLN_PARTITIONS,
    SGTIN_PARTITIONS,
    SSCC_PARTITIONS,
    decode_epc,
    encode_sgtin96,
    encode_tag_uri,
    gs1_check_digit,
)
from devices.errors import DecodeError

epcpy = pytest.importorskip("epcpy")

# (hex, pure identity URI, tag URI, GS1 key) -- the SGTIN, SSCC, SGLN, GRAI and GIAI examples of
# the GS1 EPC Tag Data Standard (the SGTIN-96 one is TDS section 14.5.1 / appendix E).
TDS_EXAMPLES = [
    (
        "3074257BF7194E4000001A85",
        "urn:epc:id:sgtin:0614141.812345.6789",
        "urn:epc:tag:sgtin-96:3.0614141.812345.6789",
        "80614141123458",
    ),
    (
        "3174257BF4499602D2000000",
        "urn:epc:id:sscc:0614141.1234567890",
        "urn:epc:tag:sscc-96:3.0614141.1234567890",
        "106141412345678908",
    ),
    (
        "3274257BF46072000000162E",
        "urn:epc:id:sgln:0614141.12345.5678",
        "urn:epc:tag:sgln-96:3.0614141.12345.5678",
        "0614141123452",
    ),
    (
        "3374257BF40C0E400000162E",
        "urn:epc:id:grai:0614141.12345.5678",
        "urn:epc:tag:grai-96:3.0614141.12345.5678",
        None,
    ),
    ("3474257BF400000000000A81", "urn:epc:id:giai:0614141.2689", "urn:epc:tag:giai-96:3.0614141.2689", None),
    (
        "3674257BF6B7A659B2C2BF100000000000000000000000000000",
        "urn:epc:id:sgtin:0614141.712345.32a%2Fb",
        "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb",
        "70614141123451",
    ),
]


@pytest.mark.parametrize(("hex_", "uri", "tag_uri", "key"), TDS_EXAMPLES)
def test_tds_examples(hex_: str, uri: str, tag_uri: str, key: str | None) -> None:
    identity = decode_epc(hex_.lower())
    assert (identity.uri, identity.tag_uri, identity.raw_hex, identity.filter) == (uri, tag_uri, hex_, 3)
    assert key in (identity.gtin, identity.sscc, identity.gln)
    assert encode_tag_uri(tag_uri) == hex_
    assert epcpy.hex_to_tag_encodable(hex_).epc_uri == uri


def test_sgtin96_fields() -> None:
    identity = decode_epc("3074257BF7194E4000001A85")
    assert identity.scheme == "sgtin-96"
    assert identity.gtin == "80614141123458"
    assert identity.serial == "6789"
    assert identity.company_prefix == "0614141"
    assert (identity.sscc, identity.gln, identity.error) == (None, None, None)
    assert encode_sgtin96("0614141", "812345", 6789, filter_value=3) == "3074257BF7194E4000001A85"


def test_sgtin198_serial_characters() -> None:
    identity = decode_epc("3674257BF6B7A659B2C2BF100000000000000000000000000000")
    assert identity.serial == "32a/b"
    assert encode_tag_uri("urn:epc:tag:sgtin-198:1.0614141.712345.a.b%26c") == encode_tag_uri(
        "urn:epc:tag:sgtin-198:1.0614141.712345.a.b%26c"
    )
    assert decode_epc(encode_tag_uri("urn:epc:tag:sgtin-198:1.0614141.712345.a.b%26c")).serial == "a.b&c"


@pytest.mark.parametrize(
    ("hex_", "error"),
    [
        ("E2801160600002054CC2096F", None),  # a chip maker's TID-style EPC, not GS1
        ("000000000000000000000000", None),  # unprogrammed
        ("30751FEB705C", "needs 96 bits"),
        ("307F257BF7194E4000001A85", "partition value 7"),
        ("30000000000003C000000000", "exceeds"),  # partition 0, item reference 15 > 9
        ("36000000000000000000000000000000000000000000000000000000", "needs 198 bits"),
    ],
)
def test_non_gs1_and_invalid_gs1_keep_the_raw_identity(hex_: str, error: str | None) -> None:
    identity = decode_epc(hex_)
    assert identity.scheme == "raw"
    assert identity.uri == identity.tag_uri == f"urn:epc:raw:{len(hex_) * 4}.x{hex_}"
    assert (identity.gtin, identity.filter, identity.serial) == (None, None, None)
    if error is None:
        assert identity.error is None
    else:
        assert identity.error is not None and error in identity.error
    assert encode_tag_uri(identity.tag_uri) == hex_


@pytest.mark.parametrize("bad", ["", "307", "30G4", "0x3074", " 3074", "3074 ", "30_74", "+3074", "AB" * 63])
def test_invalid_hex_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        decode_epc(bad)


@pytest.mark.parametrize(
    "uri",
    [
        "urn:epc:tag:sgtin-96:8.0614141.812345.6789",  # filter
        "urn:epc:tag:sgtin-96:3.0614141.81234.6789",  # item reference digits
        "urn:epc:tag:sgtin-96:3.0614141.812345.06789",  # leading zero in a numeric serial
        "urn:epc:tag:sgtin-96:3.0614141.812345.274877906944",  # 2^38
        "urn:epc:tag:sgtin-96:3.06141.8123456.1",  # 5-digit company prefix
        "urn:epc:tag:sgtin-198:3.0614141.812345.a/b",  # unescaped '/'
        "urn:epc:tag:sgtin-198:3.0614141.812345.abcdefghijklmnopqrstu",  # 21 characters
        "urn:epc:tag:sgtin-198:3.0614141.812345.%41",  # escape of a character that needs none
        "urn:epc:tag:sgtin-96:3.0614141.812345",
        "urn:epc:tag:foo-96:3.1.2",
        "urn:epc:id:sgtin:0614141.812345.6789",
        "urn:epc:raw:96.x3074",
    ],
)
def test_encode_refuses_invalid_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        encode_tag_uri(uri)


def test_check_digit() -> None:
    assert gs1_check_digit("8061414112345") == "8"
    assert gs1_check_digit("10614141234567890") == "8"
    assert gs1_check_digit("061414112345") == "2"


# --------------------------------------------------------------------------- properties


@st.composite
def partitioned(draw: st.DrawFn, table: tuple[tuple[int, int, int, int], ...]) -> tuple[str, str]:
    _, cp_digits, _, ref_digits = table[draw(st.integers(0, 6))]
    cp = draw(st.text("0123456789", min_size=cp_digits, max_size=cp_digits))
    ref = draw(st.text("0123456789", min_size=ref_digits, max_size=ref_digits))
    return cp, ref


filter_st = st.integers(0, 7)
cs82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
escapes = {'"': "%22", "%": "%25", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"}


@st.composite
def tag_uris(draw: st.DrawFn) -> str:
    f = draw(filter_st)
    kind = draw(
        st.sampled_from(["sgtin-96", "sscc-96", "sgln-96", "grai-96", "giai-96", "gid-96", "sgtin-198"])
    )
    if kind == "sgtin-96":
        cp, ref = draw(partitioned(SGTIN_PARTITIONS))
        return f"urn:epc:tag:sgtin-96:{f}.{cp}.{ref}.{draw(st.integers(0, 2**38 - 1))}"
    if kind == "sscc-96":
        cp, ref = draw(partitioned(SSCC_PARTITIONS))
        return f"urn:epc:tag:sscc-96:{f}.{cp}.{ref}"
    if kind == "sgln-96":
        cp, ref = draw(partitioned(SGLN_PARTITIONS))
        return f"urn:epc:tag:sgln-96:{f}.{cp}.{ref}.{draw(st.integers(0, 2**41 - 1))}"
    if kind == "grai-96":
        cp, ref = draw(partitioned(GRAI_PARTITIONS))
        return f"urn:epc:tag:grai-96:{f}.{cp}.{ref}.{draw(st.integers(0, 2**38 - 1))}"
    if kind == "giai-96":
        part = draw(st.integers(0, 6))
        _, cp_digits, ref_bits, _ = GIAI_PARTITIONS[part]
        cp = draw(st.text("0123456789", min_size=cp_digits, max_size=cp_digits))
        return f"urn:epc:tag:giai-96:{f}.{cp}.{draw(st.integers(0, 2**ref_bits - 1))}"
    if kind == "gid-96":
        m, c, s = (
            draw(st.integers(0, 2**28 - 1)),
            draw(st.integers(0, 2**24 - 1)),
            draw(st.integers(0, 2**36 - 1)),
        )
        return f"urn:epc:tag:gid-96:{m}.{c}.{s}"
    cp, ref = draw(partitioned(SGTIN_PARTITIONS))
    serial = "".join(escapes.get(c, c) for c in draw(st.text(cs82, min_size=1, max_size=20)))
    return f"urn:epc:tag:sgtin-198:{f}.{cp}.{ref}.{serial}"


@given(tag_uris())
def test_tag_uri_round_trip_and_epcpy_agrees(tag_uri: str) -> None:
    hex_ = encode_tag_uri(tag_uri)
    identity = decode_epc(hex_)
    assert identity.tag_uri == tag_uri
    assert identity.error is None
    assert encode_tag_uri(identity.tag_uri) == hex_
    if identity.scheme == "sgtin-198" and any(c in (identity.serial or "") for c in "/<>?"):
        return  # epcpy 0.1.8 only unescapes %DD with decimal digits (%2F, %3C, %3E, %3F break it)
    oracle = epcpy.hex_to_tag_encodable(hex_)
    assert oracle.epc_uri == identity.uri
    if identity.gtin or identity.sscc or identity.gln:
        assert oracle.gs1_key() in (identity.gtin, identity.sscc, identity.gln)


@given(
    cp_digits=st.integers(6, 12),
    data=st.data(),
    serial=st.integers(0, 2**38 - 1),
    filter_value=filter_st,
)
def test_encode_sgtin96_round_trip(
    cp_digits: int, data: st.DataObject, serial: int, filter_value: int
) -> None:
    cp = data.draw(st.text("0123456789", min_size=cp_digits, max_size=cp_digits))
    item = data.draw(st.text("0123456789", min_size=13 - cp_digits, max_size=13 - cp_digits))
    identity = decode_epc(encode_sgtin96(cp, item, serial, filter_value))
    assert identity.scheme == "sgtin-96"
    assert identity.uri == f"urn:epc:id:sgtin:{cp}.{item}.{serial}"
    assert identity.filter == filter_value
    assert identity.gtin is not None
    assert identity.gtin[:13] == item[0] + cp + item[1:]
    assert gs1_check_digit(identity.gtin[:13]) == identity.gtin[13]


@given(st.sampled_from([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0xE2, 0x00]), st.integers(0, 2**88 - 1))
def test_any_96_bit_value_decodes_without_raising(header: int, rest: int) -> None:
    hex_ = f"{(header << 88) | rest:024X}"
    identity = decode_epc(hex_)
    assert identity.raw_hex == hex_
    if identity.scheme != "raw":
        again = encode_tag_uri(identity.tag_uri)
        if identity.scheme == "sscc-96":  # 24 reserved bits are not part of the identity
            hex_ = hex_[:18] + "000000"
        assert again == hex_
    else:
        assert (header not in range(0x30, 0x36)) == (identity.error is None)


@given(st.text(max_size=40))
def test_arbitrary_text_decodes_or_raises_decode_error(text: str) -> None:
    try:
        identity = decode_epc(text)
    except DecodeError:
        return
    assert identity.raw_hex == text.upper()
