"""GS1 EPC binary encodings (EPC Tag Data Standard 2.x) to identities, and back.

Every binary scheme of TDS section 14 is decoded and encoded: SGTIN-96/198, SSCC-96,
SGLN-96/195, GRAI-96/170, GIAI-96/202, GID-96, GSRN-96, GSRNP-96, GDTI-96/113/174, CPI-96/var,
SGCN-96, ITIP-110/212, USDOD-96 and ADI-var. The schemes are data (:mod:`devices.epc.schemes`:
headers, partition tables, field layouts); one engine (:mod:`devices.epc.codec`) runs them, with the
field encodings of TDS 14.3 in :mod:`devices.epc.fields` (7-bit and 6-bit strings, numeric
strings, CAGE codes, %-escapes).

A tag that is not GS1-encoded (unprogrammed 0x00, a chip maker's TID-style default ``E2...``)
keeps its raw hex as its identity, ``urn:epc:raw:<bits>.x<HEX>``, with ``reason`` saying why. A
reserved header, partition value 7, a bad string or a wrong length is an error: ``reason`` and
``error`` say which, and ``decode_epc(h, strict=True)`` raises :class:`DecodeError` instead.

Why not wrap ``epcpy`` (PyPI): it decodes the standard's examples correctly, but goes through
binary *strings* and regular expressions (about 55k SGTIN-96 decodes/s on one core here, below
the 200k/s the edge budgets). This engine works on one ``int`` with shifts and masks; ``epcpy`` is
used in the test suite as an independent oracle.
"""

from devices.epc.codec import EpcIdentity, decode_epc, encode_sgtin96, encode_tag_uri, gs1_check_digit
from devices.epc.schemes import (
    CPI96_PARTITIONS,
    CPIVAR_PARTITIONS,
    GIAI202_PARTITIONS,
    GIAI_PARTITIONS,
    GRAI_PARTITIONS,
    SCHEMES,
    SGLN_PARTITIONS,
    SGTIN_PARTITIONS,
    SSCC_PARTITIONS,
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
    "EpcIdentity",
    "decode_epc",
    "encode_sgtin96",
    "encode_tag_uri",
    "gs1_check_digit",
]
