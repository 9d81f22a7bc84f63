"""Field codecs of the EPC binary encodings (TDS 2.x section 14.3), as small data objects.

A scheme (see :mod:`devices.epc.schemes`) is a header, a filter width and a tuple of these fields;
:mod:`devices.epc.codec` runs them in order over one ``int`` (decode: :class:`BitReader`, most
significant bit first) or over the dot-separated components of a tag URI (encode:
:class:`BitWriter`). Each field appends its URI components (already %-escaped) on decode and
consumes them on encode; a partitioned field yields two (company prefix and reference).

Encodings (TDS 14.3): *Integer* (decimal, no leading zeros), *Fixed-width integer* (zero-padded
digits), *Numeric string* (a leading ``1`` digit keeps the zeros: ``"04711"`` is ``104711``),
*String* (7-bit GS1 AI characters, zero-terminated, zero-padded), *6-bit variable string*
(ADI/CPI characters, always terminated by six zero bits), *6-/8-bit CAGE code* (5 or 6
characters, left-padded with a space), *Partition table* (table 14-2 and friends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BitReader",
    "BitWriter",
    "Cage6",
    "Cage8",
    "Field",
    "Fixed",
    "Integer",
    "Invalid",
    "NumericString",
    "Partition",
    "Partitioned",
    "Reserved",
    "String6",
    "String7",
    "escape",
    "unescape",
]

Partition = tuple[int, int, int, int]  # company prefix bits, digits; reference bits, digits/chars

# GS1 AI encodable character set 82 (TDS table A-1), the 7-bit String alphabet.
CS82: Final = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
# Characters of the ADI / CPI 6-bit alphabet these schemes allow (TDS table G-1 subset).
CS39: Final = frozenset("#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
CAGE: Final = frozenset("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")  # no I, no O
# What a URI component must %-escape (TDS section 5 / table A-1 "URI form").
_ESCAPES: Final = {
    '"': "%22", "#": "%23", "%": "%25", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"
}  # fmt: skip
_UNESCAPES: Final = {v: k for k, v in _ESCAPES.items()}


class Invalid(ValueError):
    """Bits or a URI component the standard does not allow; the message says which and why."""


def escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text) if any(c in _ESCAPES for c in text) else text


def unescape(text: str) -> str:
    """Undo :func:`escape`; refuses an unescaped reserved character or a needless escape."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            plain = _UNESCAPES.get(text[i : i + 3].upper())
            if plain is None:
                raise Invalid(f"invalid escape {text[i : i + 3]!r}")
            out.append(plain)
            i += 3
            continue
        if char in _ESCAPES:
            raise Invalid(f"character {char!r} must be %-escaped in a URI")
        out.append(char)
        i += 1
    return "".join(out)


_POW10: Final = tuple(10**n for n in range(32))


def digits(value: int, width: int) -> str:
    return "%0*d" % (width, value) if width else ""  # noqa: UP031 - fastest zero-padding here


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_uint(text: str, what: str) -> int:
    """A decimal component without leading zeros."""
    if not _is_digits(text) or (len(text) > 1 and text[0] == "0"):
        raise Invalid(f"{what} must be decimal digits without leading zeros, got {text!r}")
    return int(text)


class BitReader:
    """The EPC as one ``int``, read from the most significant bit down."""

    __slots__ = ("pos", "value")

    def __init__(self, value: int, pos: int) -> None:
        self.value = value
        self.pos = pos

    def take(self, n: int) -> int:
        self.pos -= n
        if self.pos < 0:
            raise Invalid("the EPC ends inside a field")
        return (self.value >> self.pos) & ((1 << n) - 1)


class BitWriter:
    __slots__ = ("bits", "value")

    def __init__(self) -> None:
        self.value = 0
        self.bits = 0

    def put(self, value: int, n: int) -> None:
        self.value = (self.value << n) | value
        self.bits += n


class Field:
    """One field of a scheme: ``arity`` URI components."""

    arity = 1

    def decode(self, bits: BitReader, out: list[str]) -> None:
        raise NotImplementedError

    def encode(self, parts: list[str], w: BitWriter) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Integer(Field):
    bits: int
    name: str = "serial"
    maximum: int | None = None

    def decode(self, bits: BitReader, out: list[str]) -> None:
        pos = bits.pos = bits.pos - self.bits  # BitReader.take inlined: the hot path of SGTIN-96
        if pos < 0:
            raise Invalid("the EPC ends inside a field")
        value = (bits.value >> pos) & ((1 << self.bits) - 1)
        if self.maximum is not None and value > self.maximum:
            raise Invalid(f"{self.name} {value} exceeds {self.maximum}")
        out.append(str(value))

    def encode(self, parts: list[str], w: BitWriter) -> None:
        value = parse_uint(parts[0], self.name)
        if value >> self.bits or (self.maximum is not None and value > self.maximum):
            raise Invalid(f"{self.name} {value} does not fit {self.bits} bits")
        w.put(value, self.bits)


@dataclass(frozen=True, slots=True)
class Fixed(Field):
    """Fixed-width integer: exactly ``width`` digits, leading zeros kept (ITIP piece/total)."""

    bits: int
    width: int
    name: str

    def decode(self, bits: BitReader, out: list[str]) -> None:
        value = bits.take(self.bits)
        if value >= 10**self.width:
            raise Invalid(f"{self.name} {value} exceeds {self.width} digits")
        out.append(digits(value, self.width))

    def encode(self, parts: list[str], w: BitWriter) -> None:
        if len(parts[0]) != self.width or not _is_digits(parts[0]):
            raise Invalid(f"{self.name} must be {self.width} digits, got {parts[0]!r}")
        w.put(int(parts[0]), self.bits)


@dataclass(frozen=True, slots=True)
class NumericString(Field):
    """Numeric string (SGCN serial, GDTI-113): digits with leading zeros, stored as int("1" + digits)."""

    bits: int
    max_digits: int
    name: str = "serial"

    def decode(self, bits: BitReader, out: list[str]) -> None:
        text = str(bits.take(self.bits))
        if text[0] != "1" or len(text) < 2 or len(text) > self.max_digits + 1:
            raise Invalid(
                f"{self.name}: {text} is not a numeric-string encoding (a 1 and 1..{self.max_digits} digits)"
            )
        out.append(text[1:])

    def encode(self, parts: list[str], w: BitWriter) -> None:
        text = parts[0]
        if not _is_digits(text) or not 1 <= len(text) <= self.max_digits:
            raise Invalid(f"{self.name} must be 1..{self.max_digits} digits, got {text!r}")
        w.put(int("1" + text), self.bits)


@dataclass(frozen=True, slots=True)
class Reserved(Field):
    """Bits the identity does not use (SSCC-96, GSRN-96): skipped on decode, zero on encode."""

    bits: int
    arity = 0

    def decode(self, bits: BitReader, out: list[str]) -> None:
        bits.take(self.bits)

    def encode(self, parts: list[str], w: BitWriter) -> None:
        w.put(0, self.bits)


def decode_string7(value: int, nbits: int, max_chars: int, what: str) -> str:
    """TDS 14.3.2 String: 7-bit characters from the MSB, zero-terminated, zero-padded."""
    out: list[str] = []
    pos = nbits
    while pos >= 7 and len(out) < max_chars:
        pos -= 7
        code = (value >> pos) & 0x7F
        if code == 0:
            break
        char = chr(code)
        if char not in CS82:
            raise Invalid(f"{what} character 0x{code:02X} is not in the GS1 character set")
        out.append(char)
    else:
        pos = max(pos, 0)
    if value & ((1 << pos) - 1):
        raise Invalid(f"non-zero bits after the {what}'s end")
    if not out:
        raise Invalid(f"empty {what}")
    return "".join(out)


def encode_string7(text: str, nbits: int, max_chars: int, what: str) -> int:
    if not 1 <= len(text) <= max_chars or any(c not in CS82 for c in text):
        raise Invalid(f"{what} must be 1..{max_chars} GS1 characters, got {text!r}")
    packed = 0
    for char in text:
        packed = (packed << 7) | ord(char)
    return packed << (nbits - 7 * len(text))


@dataclass(frozen=True, slots=True)
class String7(Field):
    bits: int
    max_chars: int
    name: str = "serial"

    def decode(self, bits: BitReader, out: list[str]) -> None:
        out.append(escape(decode_string7(bits.take(self.bits), self.bits, self.max_chars, self.name)))

    def encode(self, parts: list[str], w: BitWriter) -> None:
        w.put(encode_string7(unescape(parts[0]), self.bits, self.max_chars, self.name), self.bits)


def _char6(code: int) -> str:
    return chr(code + 64) if code < 32 else chr(code)


def _code6(char: str) -> int:
    return ord(char) & 0x3F


@dataclass(frozen=True, slots=True)
class String6(Field):
    """6-bit variable-length string, terminated by six zero bits (ADI part/serial, CPI-var reference).

    ``hash_first_only``: '#' is allowed only as the first character (ADI serial number).
    """

    max_chars: int
    min_chars: int = 0
    name: str = "serial"
    hash_first_only: bool = False
    allow_hash: bool = True

    def decode(self, bits: BitReader, out: list[str]) -> None:
        chars: list[str] = []
        while (code := bits.take(6)) != 0:
            if len(chars) == self.max_chars:
                raise Invalid(f"{self.name} longer than {self.max_chars} characters or not terminated")
            chars.append(_char6(code))
        text = "".join(chars)
        self._check(text)
        out.append(escape(text))

    def _check(self, text: str) -> None:
        if not self.min_chars <= len(text) <= self.max_chars:
            raise Invalid(
                f"{self.name} must have {self.min_chars}..{self.max_chars} characters, got {len(text)}"
            )
        bad = [c for c in text if c not in CS39]
        if not self.allow_hash or self.hash_first_only:
            bad += [c for c in text[1 if self.hash_first_only and self.allow_hash else 0 :] if c == "#"]
        if self.hash_first_only and text == "#":
            bad.append("#")  # TDS ADI grammar: ( "%23" )? AdiChar+
        if bad:
            raise Invalid(f"{self.name} {text!r} has characters the scheme does not allow: {''.join(bad)!r}")

    def encode(self, parts: list[str], w: BitWriter) -> None:
        text = unescape(parts[0])
        self._check(text)
        for char in text:
            w.put(_code6(char), 6)
        w.put(0, 6)


def _check_cage(text: str) -> str:
    if not 5 <= len(text) <= 6 or any(c not in CAGE for c in text):
        raise Invalid(f"CAGE/DODAAC code must be 5 or 6 of 0-9 A-Z without I and O, got {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class Cage8(Field):
    """USDOD-96: CAGE/DODAAC as six 8-bit ASCII characters, a 5-character code left-padded with a space."""

    def decode(self, bits: BitReader, out: list[str]) -> None:
        raw = bits.take(48).to_bytes(6, "big")
        text = raw[1:].decode("ascii", "replace") if raw[:1] == b" " else raw.decode("ascii", "replace")
        out.append(_check_cage(text))

    def encode(self, parts: list[str], w: BitWriter) -> None:
        w.put(int.from_bytes(_check_cage(parts[0]).rjust(6).encode("ascii"), "big"), 48)


@dataclass(frozen=True, slots=True)
class Cage6(Field):
    """ADI-var: CAGE/DODAAC as six 6-bit characters, a 5-character code left-padded with a space."""

    def decode(self, bits: BitReader, out: list[str]) -> None:
        text = "".join(_char6(bits.take(6)) for _ in range(6))
        out.append(_check_cage(text[1:] if text[0] == " " else text))

    def encode(self, parts: list[str], w: BitWriter) -> None:
        for char in _check_cage(parts[0]).rjust(6):
            w.put(_code6(char), 6)


@dataclass(frozen=True, slots=True)
class Partitioned(Field):
    """Partition value (3 bits), company prefix and reference (TDS 14.3.3 / 14.3.4 and tables 14-2..).

    ``ref`` is how the reference is stored: ``"digits"`` (zero-padded to the table's digit count),
    ``"int"`` (an integer of up to that many digits: GIAI-96, CPI-96), ``"str7"`` (7-bit string of up
    to that many characters: GIAI-202) or ``"str6"`` (6-bit variable string: CPI-var).
    """

    table: tuple[Partition, ...]
    ref: str = "digits"
    ref_name: str = "reference"
    arity = 2

    def decode(self, bits: BitReader, out: list[str]) -> None:
        value = bits.value
        pos = bits.pos - 3
        number = (value >> pos) & 7
        if number > 6:
            raise Invalid("partition value 7 is reserved")
        cp_bits, cp_digits, ref_bits, ref_len = self.table[number]
        if pos < cp_bits + (0 if self.ref == "str6" else ref_bits):
            raise Invalid("the EPC ends inside a field")
        pos -= cp_bits
        cp = (value >> pos) & ((1 << cp_bits) - 1)
        if cp >= _POW10[cp_digits]:
            raise Invalid(f"company prefix {cp} exceeds its {cp_digits} digits (partition {number})")
        out.append(digits(cp, cp_digits))
        kind = self.ref
        if kind == "str6":
            bits.pos = pos
            String6(ref_len, 1, name=self.ref_name).decode(bits, out)
            return
        pos -= ref_bits
        bits.pos = pos
        ref = (value >> pos) & ((1 << ref_bits) - 1)
        if kind == "str7":
            out.append(escape(decode_string7(ref, ref_bits, ref_len, self.ref_name)))
        elif ref >= _POW10[ref_len]:
            raise Invalid(f"{self.ref_name} {ref} exceeds its {ref_len} digits (partition {number})")
        else:
            out.append(digits(ref, ref_len) if kind == "digits" else str(ref))

    def encode(self, parts: list[str], w: BitWriter) -> None:
        cp, ref = parts
        if not _is_digits(cp):
            raise Invalid(f"company prefix must be digits, got {cp!r}")
        for number, (cp_bits, cp_digits, ref_bits, ref_len) in enumerate(self.table):
            if len(cp) == cp_digits:
                w.put(number, 3)
                w.put(int(cp), cp_bits)
                self._encode_ref(ref, ref_bits, ref_len, w)
                return
        raise Invalid(f"company prefix must have 6..12 digits, got {len(cp)}")

    def _encode_ref(self, ref: str, ref_bits: int, ref_len: int, w: BitWriter) -> None:
        kind = self.ref
        if kind == "str6":
            String6(ref_len, 1, name=self.ref_name).encode([ref], w)
        elif kind == "str7":
            w.put(encode_string7(unescape(ref), ref_bits, ref_len, self.ref_name), ref_bits)
        elif kind == "digits":
            if len(ref) != ref_len or (ref and not _is_digits(ref)):
                raise Invalid(f"this company prefix needs a {ref_len}-digit {self.ref_name}, got {ref!r}")
            w.put(int(ref) if ref else 0, ref_bits)
        else:
            value = parse_uint(ref, self.ref_name)
            if len(ref) > ref_len or value >> ref_bits:
                raise Invalid(f"{self.ref_name} {ref} exceeds {ref_len} digits / {ref_bits} bits")
            w.put(value, ref_bits)
