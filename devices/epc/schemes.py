"""Every EPC binary encoding of the GS1 Tag Data Standard 2.x (section 14), described as data.

A :class:`Scheme` is a header byte, a bit length (``None`` for the variable-length ADI-var and
CPI-var), a filter width and a tuple of fields (:mod:`devices.epc.fields`); :mod:`devices.epc.codec`
is the one engine that runs them. Partition tables are ``(company prefix bits, digits, reference
bits, reference digits or characters)`` for partition values 0..6 (value 7 is reserved).

Headers (TDS table 14-1): 0x00 marks an unprogrammed tag; 0x2C..0x41 are the schemes below; every
other value below 0xE0 is reserved (0x01..0x2B, 0x42..0x7F) or belongs to the withdrawn 64-bit
encodings (0x08..0x0F, 0x80..0xDF). 0xE0..0xFF are left to TDS 2.0's "+AIDC" encodings and to
tags still holding a chip maker's default EPC (very often its TID, ``E2...``): those stay raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from devices.epc.fields import (
    Cage6,
    Cage8,
    Field,
    Fixed,
    Integer,
    NumericString,
    Partition,
    Partitioned,
    Reserved,
    String6,
    String7,
)

__all__ = [
    "CPI96_PARTITIONS",
    "CPIVAR_PARTITIONS",
    "GIAI202_PARTITIONS",
    "GIAI_PARTITIONS",
    "GRAI_PARTITIONS",
    "SCHEMES",
    "SGLN_PARTITIONS",
    "SGTIN_PARTITIONS",
    "SSCC_PARTITIONS",
    "Scheme",
    "header_problem",
]

# TDS table 14-2 (SGTIN; also ITIP), 14-5 (SSCC; also GSRN, GSRNP), 14-8 (SGLN; also GDTI, SGCN),
# 14-11 (GRAI), 14-14 / 14-15 (GIAI-96 / GIAI-202), 14-22 / 14-23 (CPI-96 / CPI-var).
SGTIN_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 4, 1),
    (37, 11, 7, 2),
    (34, 10, 10, 3),
    (30, 9, 14, 4),
    (27, 8, 17, 5),
    (24, 7, 20, 6),
    (20, 6, 24, 7),
)
SSCC_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 18, 5),
    (37, 11, 21, 6),
    (34, 10, 24, 7),
    (30, 9, 28, 8),
    (27, 8, 31, 9),
    (24, 7, 34, 10),
    (20, 6, 38, 11),
)
SGLN_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 1, 0),
    (37, 11, 4, 1),
    (34, 10, 7, 2),
    (30, 9, 11, 3),
    (27, 8, 14, 4),
    (24, 7, 17, 5),
    (20, 6, 21, 6),
)
GRAI_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 4, 0),
    (37, 11, 7, 1),
    (34, 10, 10, 2),
    (30, 9, 14, 3),
    (27, 8, 17, 4),
    (24, 7, 20, 5),
    (20, 6, 24, 6),
)
GIAI_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 42, 13),
    (37, 11, 45, 14),
    (34, 10, 48, 15),
    (30, 9, 52, 16),
    (27, 8, 55, 17),
    (24, 7, 58, 18),
    (20, 6, 62, 19),
)
GIAI202_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 148, 18),
    (37, 11, 151, 19),
    (34, 10, 154, 20),
    (30, 9, 158, 21),
    (27, 8, 161, 22),
    (24, 7, 164, 23),
    (20, 6, 168, 24),
)
CPI96_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 11, 3),
    (37, 11, 14, 4),
    (34, 10, 17, 5),
    (30, 9, 21, 6),
    (27, 8, 24, 7),
    (24, 7, 27, 8),
    (20, 6, 31, 9),
)
CPIVAR_PARTITIONS: Final[tuple[Partition, ...]] = (
    (40, 12, 114, 18),
    (37, 11, 120, 19),
    (34, 10, 126, 20),
    (30, 9, 132, 21),
    (27, 8, 138, 22),
    (24, 7, 144, 23),
    (20, 6, 150, 24),
)


@dataclass(frozen=True, slots=True)
class Scheme:
    """One binary encoding. ``key`` names the GS1 key :class:`EpcIdentity` carries (``gtin``,
    ``sscc``, ``gln``); ``serial`` is the index of the URI component reported as the serial."""

    name: str
    identity: str
    header: int
    bits: int | None
    filter_bits: int
    fields: tuple[Field, ...]
    key: str | None = None
    serial: int | None = None

    @property
    def arity(self) -> int:
        return sum(field.arity for field in self.fields)


_SGTIN = Partitioned(SGTIN_PARTITIONS, ref_name="item reference")
_SGLN = Partitioned(SGLN_PARTITIONS, ref_name="location reference")
_GDTI = Partitioned(SGLN_PARTITIONS, ref_name="document type")
_GRAI = Partitioned(GRAI_PARTITIONS, ref_name="asset type")
_GSRN = Partitioned(SSCC_PARTITIONS, ref_name="service reference")
_PIECE_TOTAL = (Fixed(7, 2, "piece"), Fixed(7, 2, "total"))

SCHEMES: Final[tuple[Scheme, ...]] = (
    Scheme("gdti-96", "gdti", 0x2C, 96, 3, (_GDTI, Integer(41)), serial=2),
    Scheme("gsrn-96", "gsrn", 0x2D, 96, 3, (_GSRN, Reserved(24))),
    Scheme("gsrnp-96", "gsrnp", 0x2E, 96, 3, (_GSRN, Reserved(24))),
    Scheme("usdod-96", "usdod", 0x2F, 96, 4, (Cage8(), Integer(36)), serial=1),
    Scheme("sgtin-96", "sgtin", 0x30, 96, 3, (_SGTIN, Integer(38)), "gtin", 2),
    Scheme(
        "sscc-96",
        "sscc",
        0x31,
        96,
        3,
        (Partitioned(SSCC_PARTITIONS, ref_name="serial reference"), Reserved(24)),
        "sscc",
    ),
    Scheme("sgln-96", "sgln", 0x32, 96, 3, (_SGLN, Integer(41, "extension")), "gln", 2),
    Scheme("grai-96", "grai", 0x33, 96, 3, (_GRAI, Integer(38)), serial=2),
    Scheme(
        "giai-96", "giai", 0x34, 96, 3, (Partitioned(GIAI_PARTITIONS, "int", "asset reference"),), serial=1
    ),
    Scheme(
        "gid-96",
        "gid",
        0x35,
        96,
        0,
        (Integer(28, "general manager number"), Integer(24, "object class"), Integer(36)),
        serial=2,
    ),
    Scheme("sgtin-198", "sgtin", 0x36, 198, 3, (_SGTIN, String7(140, 20)), "gtin", 2),
    Scheme("grai-170", "grai", 0x37, 170, 3, (_GRAI, String7(112, 16)), serial=2),
    Scheme(
        "giai-202",
        "giai",
        0x38,
        202,
        3,
        (Partitioned(GIAI202_PARTITIONS, "str7", "asset reference"),),
        serial=1,
    ),
    Scheme("sgln-195", "sgln", 0x39, 195, 3, (_SGLN, String7(140, 20, "extension")), "gln", 2),
    Scheme(
        "gdti-113", "gdti", 0x3A, 113, 3, (_GDTI, NumericString(58, 17)), serial=2
    ),  # deprecated (TDS 1.9)
    Scheme(
        "adi-var",
        "adi",
        0x3B,
        None,
        6,
        (Cage6(), String6(32, name="part number", allow_hash=False), String6(30, 1, hash_first_only=True)),
        serial=2,
    ),
    Scheme(
        "cpi-96",
        "cpi",
        0x3C,
        96,
        3,
        (Partitioned(CPI96_PARTITIONS, "int", "component/part reference"), Integer(31)),
        serial=2,
    ),
    Scheme(
        "cpi-var",
        "cpi",
        0x3D,
        None,
        3,
        (Partitioned(CPIVAR_PARTITIONS, "str6", "component/part reference"), Integer(40, maximum=10**12 - 1)),
        serial=2,
    ),
    Scheme("gdti-174", "gdti", 0x3E, 174, 3, (_GDTI, String7(119, 17)), serial=2),
    Scheme(
        "sgcn-96",
        "sgcn",
        0x3F,
        96,
        3,
        (Partitioned(SGLN_PARTITIONS, ref_name="coupon reference"), NumericString(41, 12)),
        serial=2,
    ),
    Scheme("itip-110", "itip", 0x40, 110, 3, (_SGTIN, *_PIECE_TOTAL, Integer(38)), "gtin", 4),
    Scheme("itip-212", "itip", 0x41, 212, 3, (_SGTIN, *_PIECE_TOTAL, String7(140, 20)), "gtin", 4),
)

BY_HEADER: Final = {scheme.header: scheme for scheme in SCHEMES}
BY_NAME: Final = {scheme.name: scheme for scheme in SCHEMES}


def header_problem(header: int) -> tuple[bool, str]:
    """Why a header that is no scheme's stays raw: ``(is_error, reason)``."""
    if header == 0x00:
        return False, "header 0x00: unprogrammed tag"
    if header >= 0xE0:
        return False, (
            f"header 0x{header:02X} is not a TDS binary encoding this decoder knows "
            "(a chip maker's default or TID-style EPC, or a TDS 2.0 '+AIDC' encoding)"
        )
    if 0x08 <= header <= 0x0F or 0x80 <= header <= 0xDF:
        return True, f"header 0x{header:02X} belongs to the withdrawn 64-bit EPC encodings (TDS table 14-1)"
    return True, f"header 0x{header:02X} is reserved for future use (TDS table 14-1)"
