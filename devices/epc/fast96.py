"""A fast path for the 96-bit partitioned schemes, compiled from the same scheme data.

SGTIN-96, SSCC-96, SGLN-96, GRAI-96, GIAI-96, GDTI-96, GSRN-96, GSRNP-96 and CPI-96 are a filter, a
partition, a company prefix and reference, then an integer (or reserved bits) ending at bit 0. Most
tags in a store are one of these, so :func:`compile_fast96` turns such a scheme into one closure of
shifts and masks (no per-field objects). It returns ``None`` for anything out of range -- the
caller then runs the generic engine, which names the error -- so both paths agree by construction
(and ``tests/devices/test_epc_schemes.py`` checks that they do).
"""

from __future__ import annotations

from collections.abc import Callable

from devices.epc.fields import Integer, Partitioned, Reserved, digits
from devices.epc.schemes import Scheme

__all__ = ["FastDecoder", "compile_fast96"]

FastDecoder = Callable[[int], "tuple[int, list[str]] | None"]


def compile_fast96(scheme: Scheme) -> FastDecoder | None:
    """``v -> (filter, URI components)`` for a 96-bit partitioned scheme, else None (not eligible)."""
    first, rest = scheme.fields[0], scheme.fields[1:]
    if scheme.bits != 96 or scheme.filter_bits != 3 or not isinstance(first, Partitioned):
        return None
    if first.ref not in ("digits", "int") or len(rest) > 1:
        return None
    tail = rest[0] if rest else None
    if tail is not None and not (
        isinstance(tail, Reserved) or (isinstance(tail, Integer) and tail.maximum is None)
    ):
        return None
    tail_bits = tail.bits if tail is not None else 0
    rows = []
    for cp_bits, cp_digits, ref_bits, ref_len in first.table:
        if 14 + cp_bits + ref_bits + tail_bits != 96:
            return None
        rows.append(
            (
                82 - cp_bits,
                (1 << cp_bits) - 1,
                10**cp_digits,
                cp_digits,
                tail_bits,
                (1 << ref_bits) - 1,
                10**ref_len,
                ref_len,
            )
        )
    table = tuple(rows)
    padded = first.ref == "digits"
    int_tail = isinstance(tail, Integer)
    tail_mask = (1 << tail_bits) - 1

    def decode(v: int) -> tuple[int, list[str]] | None:
        number = (v >> 82) & 7
        if number > 6:
            return None
        cp_shift, cp_mask, cp_limit, cp_digits, ref_shift, ref_mask, ref_limit, ref_len = table[number]
        cp = (v >> cp_shift) & cp_mask
        ref = (v >> ref_shift) & ref_mask
        if cp >= cp_limit or ref >= ref_limit:
            return None
        parts = [digits(cp, cp_digits), digits(ref, ref_len) if padded else str(ref)]
        if int_tail:
            parts.append(str(v & tail_mask))
        return (v >> 85) & 7, parts

    return decode
