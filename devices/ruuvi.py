"""RuuviTag BLE advertisements (sans-I/O): data format 5 (RAWv2) and 3 (RAWv1).

A Ruuvi Gateway forwards each advertisement it hears as hex in its MQTT JSON (``"data"``); see
:func:`devices.mqtt_formats.decode_ruuvi`. The advertisement is a sequence of BLE AD structures
``len type data[len-1]``; the RuuviTag payload is the manufacturer-specific one (type ``0xFF``)
whose company id is Ruuvi Innovations' ``0x0499`` (little endian on air: ``99 04``). Its first byte
is the data format.

Data format 5 (https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2),
24 bytes, big endian:

====== ===============================================================================
offset field
====== ===============================================================================
0      format (5)
1-2    temperature, int16, 0.005 degC steps; ``0x8000`` = invalid
3-4    humidity, uint16, 0.0025 % steps; ``0xFFFF`` = invalid
5-6    pressure, uint16, Pa above 50000; ``0xFFFF`` = invalid
7-12   acceleration x, y, z, int16 mG each; ``0x8000`` = invalid
13-14  power info: first 11 bits battery mV above 1600 (2047 = invalid), last 5 bits TX power in
       2 dBm steps above -40 dBm (31 = invalid)
15     movement counter, uint8 (255 = invalid)
16-17  measurement sequence, uint16 (65535 = invalid)
18-23  MAC address (``FF:FF:FF:FF:FF:FF`` = invalid)
====== ===============================================================================

Invalid markers decode to ``None`` ("value absent"), never to a number: a tag whose humidity sensor
failed still reports its temperature.

Data format 3 (deprecated, still sent by old firmware), 14 bytes: humidity uint8 0.5 % steps,
temperature as sign bit + 7-bit integer part + uint8 hundredths, pressure uint16 Pa above 50000,
acceleration 3 x int16 mG, battery uint16 mV. It has no invalid markers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from devices.errors import DecodeError

__all__ = [
    "RUUVI_COMPANY_ID",
    "RuuviData",
    "advertisement",
    "decode_advertisement",
    "decode_manufacturer_data",
    "encode_df5",
    "find_ruuvi_manufacturer_data",
]

RUUVI_COMPANY_ID: Final = 0x0499
AD_MANUFACTURER_SPECIFIC: Final = 0xFF
AD_FLAGS: Final = 0x01

_DF5: Final = struct.Struct(">BhHHhhhHBH6s")
_DF3: Final = struct.Struct(">BBBBHhhhH")
_INVALID_I16: Final = -0x8000
_INVALID_U16: Final = 0xFFFF
_INVALID_BATTERY: Final = 2047
_INVALID_TX: Final = 31
_INVALID_MOVEMENT: Final = 255
_INVALID_MAC: Final = b"\xff" * 6


@dataclass(frozen=True, slots=True)
class RuuviData:
    """One decoded RuuviTag advertisement; ``None`` = the tag marked the value invalid (or lacks it)."""

    data_format: int
    temperature_c: float | None
    humidity: float | None  # %RH; the sensor may report > 100 % (condensation), not clipped here
    pressure_pa: int | None
    acceleration_mg: tuple[int | None, int | None, int | None]
    battery_mv: int | None
    tx_power_dbm: int | None = None
    movement_counter: int | None = None
    sequence: int | None = None
    mac: str | None = None  # "AA:BB:CC:DD:EE:FF"


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw)


def _decode_df5(data: bytes) -> RuuviData:
    if len(data) < _DF5.size:
        raise DecodeError(f"Ruuvi data format 5 needs {_DF5.size} bytes, got {len(data)}")
    _, temp, hum, pres, ax, ay, az, power, movement, seq, mac = _DF5.unpack_from(data)
    battery, tx = power >> 5, power & 0x1F
    return RuuviData(
        data_format=5,
        temperature_c=None if temp == _INVALID_I16 else round(temp * 0.005, 3),
        humidity=None if hum == _INVALID_U16 else round(hum * 0.0025, 4),
        pressure_pa=None if pres == _INVALID_U16 else pres + 50000,
        acceleration_mg=tuple(None if a == _INVALID_I16 else a for a in (ax, ay, az)),  # type: ignore[arg-type]
        battery_mv=None if battery == _INVALID_BATTERY else battery + 1600,
        tx_power_dbm=None if tx == _INVALID_TX else tx * 2 - 40,
        movement_counter=None if movement == _INVALID_MOVEMENT else movement,
        sequence=None if seq == _INVALID_U16 else seq,
        mac=None if mac == _INVALID_MAC else _mac_text(mac),
    )


def _decode_df3(data: bytes) -> RuuviData:
    if len(data) < _DF3.size:
        raise DecodeError(f"Ruuvi data format 3 needs {_DF3.size} bytes, got {len(data)}")
    _, hum, temp_int, temp_frac, pres, ax, ay, az, battery = _DF3.unpack_from(data)
    # Not two's complement: bit 7 is the sign, bits 0..6 the integer part.
    if temp_frac > 99:
        raise DecodeError(f"Ruuvi data format 3: temperature fraction {temp_frac} > 99")
    magnitude = (temp_int & 0x7F) + temp_frac / 100.0
    return RuuviData(
        data_format=3,
        temperature_c=round(-magnitude if temp_int & 0x80 else magnitude, 2),
        humidity=hum * 0.5,
        pressure_pa=pres + 50000,
        acceleration_mg=(ax, ay, az),
        battery_mv=battery,
    )


def decode_manufacturer_data(data: bytes) -> RuuviData:
    """Decode the Ruuvi payload that follows the company id (its first byte is the format)."""
    if not data:
        raise DecodeError("empty Ruuvi manufacturer data")
    fmt = data[0]
    if fmt == 5:
        return _decode_df5(data)
    if fmt == 3:
        return _decode_df3(data)
    raise DecodeError(f"unsupported Ruuvi data format 0x{fmt:02X}")


def find_ruuvi_manufacturer_data(adv: bytes) -> bytes | None:
    """The bytes after ``FF 99 04`` in the advertisement's AD structures; ``None`` if not a RuuviTag.

    Raises :class:`DecodeError` when an AD structure's length runs past the end (truncated packet).
    """
    i = 0
    while i < len(adv):
        length = adv[i]
        if length == 0:  # zero padding ends the significant part (Core spec, vol 3 part C 11)
            return None
        end = i + 1 + length
        if end > len(adv):
            raise DecodeError(
                f"BLE AD structure at byte {i} claims {length} bytes, only {len(adv) - i - 1} left"
            )
        if adv[i + 1] == AD_MANUFACTURER_SPECIFIC and length >= 3:
            company = adv[i + 2] | adv[i + 3] << 8
            if company == RUUVI_COMPANY_ID:
                return bytes(adv[i + 4 : end])
        i = end
    return None


def decode_advertisement(adv: bytes) -> RuuviData | None:
    """Decode a whole BLE advertisement; ``None`` when it carries no Ruuvi manufacturer data."""
    data = find_ruuvi_manufacturer_data(adv)
    return None if data is None else decode_manufacturer_data(data)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def encode_df5(
    temperature_c: float | None,
    humidity: float | None,
    pressure_pa: int | None,
    *,
    acceleration_mg: tuple[int | None, int | None, int | None] = (0, 0, 1000),
    battery_mv: int | None = 3000,
    tx_power_dbm: int | None = 4,
    movement_counter: int | None = 0,
    sequence: int | None = 0,
    mac: str | None = "C0:FF:EE:00:00:01",
) -> bytes:
    """The 24-byte data format 5 payload (format byte first); ``None`` writes the invalid marker.

    Values are clamped to the encodable range, as the tag's firmware does.
    """
    temp = _INVALID_I16 if temperature_c is None else _clamp(round(temperature_c / 0.005), -32767, 32767)
    hum = _INVALID_U16 if humidity is None else _clamp(round(humidity / 0.0025), 0, 65534)
    pres = _INVALID_U16 if pressure_pa is None else _clamp(pressure_pa - 50000, 0, 65534)
    acc = [_INVALID_I16 if a is None else _clamp(a, -32767, 32767) for a in acceleration_mg]
    battery = _INVALID_BATTERY if battery_mv is None else _clamp(battery_mv - 1600, 0, 2046)
    tx = _INVALID_TX if tx_power_dbm is None else _clamp((tx_power_dbm + 40) // 2, 0, 30)
    movement = _INVALID_MOVEMENT if movement_counter is None else movement_counter % 255
    seq = _INVALID_U16 if sequence is None else sequence % 65535
    mac_raw = _INVALID_MAC if mac is None else bytes.fromhex(mac.replace(":", ""))
    if len(mac_raw) != 6:
        raise ValueError(f"MAC must have 6 bytes, got {mac!r}")
    return _DF5.pack(5, temp, hum, pres, *acc, battery << 5 | tx, movement, seq, mac_raw)


def advertisement(manufacturer_payload: bytes) -> bytes:
    """A BLE advertisement as a RuuviTag sends it: flags ``02 01 06`` then ``len FF 99 04 payload``."""
    body = bytes([AD_MANUFACTURER_SPECIFIC]) + RUUVI_COMPANY_ID.to_bytes(2, "little") + manufacturer_payload
    if len(body) > 254:
        raise ValueError("manufacturer payload too long for one AD structure")
    return bytes([2, AD_FLAGS, 0x06, len(body)]) + body
