"""RuuviTag BLE advertisements against Ruuvi's official test vectors (docs.ruuvi.com)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.ruuvi import (
    RuuviData,
    advertisement,
    decode_advertisement,
    decode_manufacturer_data,
    encode_df5,
    find_ruuvi_manufacturer_data,
)

MAC = "CB:B8:33:4C:88:4F"

# https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2 "Test vectors"
DF5_VECTORS = {
    "valid": (
        "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",
        RuuviData(5, 24.3, 53.49, 100044, (4, -4, 1036), 2977, 4, 66, 205, MAC),
    ),
    "maximum": (
        "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F",
        RuuviData(5, 163.835, 163.835, 115534, (32767, 32767, 32767), 3646, 20, 254, 65534, MAC),
    ),
    "minimum": (
        "058001000000008001800180010000000000CBB8334C884F",
        RuuviData(5, -163.835, 0.0, 50000, (-32767, -32767, -32767), 1600, -40, 0, 0, MAC),
    ),
    "invalid": (
        "058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF",
        RuuviData(5, None, None, None, (None, None, None), None, None, None, None, None),
    ),
}


@pytest.mark.parametrize("name", list(DF5_VECTORS))
def test_data_format_5_official_vectors(name: str) -> None:
    raw, expected = DF5_VECTORS[name]
    assert decode_manufacturer_data(bytes.fromhex(raw)) == expected


@pytest.mark.parametrize("name", list(DF5_VECTORS))
def test_encoder_reproduces_official_vectors(name: str) -> None:
    raw, v = DF5_VECTORS[name]
    encoded = encode_df5(
        v.temperature_c,
        v.humidity,
        v.pressure_pa,
        acceleration_mg=v.acceleration_mg,
        battery_mv=v.battery_mv,
        tx_power_dbm=v.tx_power_dbm,
        movement_counter=v.movement_counter,
        sequence=v.sequence,
        mac=v.mac,
    )
    assert encoded.hex().upper() == raw


def test_data_format_3_official_vector() -> None:
    # https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-3-rawv1 "valid data"
    data = decode_manufacturer_data(bytes.fromhex("03291A1ECE1EFC18F94202CA0B53"))
    assert data == RuuviData(3, 26.3, 20.5, 102766, (-1000, -1726, 714), 2899)
    negative = decode_manufacturer_data(bytes.fromhex("03FF" + "8A32" + "0000000000000000000B53"[:20]))
    assert negative.temperature_c == -10.5


def test_advertisement_as_the_gateway_forwards_it() -> None:
    adv = bytes.fromhex("0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
    assert decode_advertisement(adv) == DF5_VECTORS["valid"][1]
    assert advertisement(bytes.fromhex(DF5_VECTORS["valid"][0])) == adv


def test_other_ble_devices_and_bad_structures() -> None:
    apple_ibeacon = bytes.fromhex("0201061AFF4C000215" + "00" * 21)
    assert decode_advertisement(apple_ibeacon) is None
    assert find_ruuvi_manufacturer_data(bytes.fromhex("0201060000")) is None  # zero padding
    with pytest.raises(DecodeError, match="claims"):
        decode_advertisement(bytes.fromhex("0201061BFF99040512FC"))  # truncated radio packet
    with pytest.raises(DecodeError, match="unsupported Ruuvi data format 0xE1"):
        decode_advertisement(advertisement(bytes.fromhex("E1") + b"\x00" * 10))
    with pytest.raises(DecodeError, match="needs 24 bytes"):
        decode_manufacturer_data(bytes.fromhex("0512FC"))
    with pytest.raises(DecodeError, match="fraction"):
        decode_manufacturer_data(bytes.fromhex("03291AFFCE1EFC18F94202CA0B53"))


@given(
    temperature=st.floats(-163.8, 163.8),
    humidity=st.floats(0, 163.8),
    pressure=st.integers(50000, 115534),
    battery=st.integers(1600, 3646),
    tx=st.integers(-20, 10).map(lambda x: 2 * x),
    seq=st.integers(0, 65534),
    movement=st.integers(0, 254),
    acc=st.tuples(*[st.integers(-32767, 32767)] * 3),
)
def test_df5_round_trip_within_resolution(
    temperature: float,
    humidity: float,
    pressure: int,
    battery: int,
    tx: int,
    seq: int,
    movement: int,
    acc: tuple[int, int, int],
) -> None:
    raw = encode_df5(
        temperature,
        humidity,
        pressure,
        acceleration_mg=acc,
        battery_mv=battery,
        tx_power_dbm=tx,
        movement_counter=movement,
        sequence=seq,
    )
    data = decode_advertisement(advertisement(raw))
    assert data is not None
    assert data.temperature_c is not None and abs(data.temperature_c - temperature) <= 0.0025 + 1e-9
    assert data.humidity is not None and abs(data.humidity - humidity) <= 0.00125 + 1e-9
    assert (data.pressure_pa, data.battery_mv, data.tx_power_dbm) == (pressure, battery, tx)
    assert (data.sequence, data.movement_counter, data.acceleration_mg) == (seq, movement, acc)


@given(st.binary(max_size=64))
def test_random_advertisements_never_crash(adv: bytes) -> None:
    try:
        result = decode_advertisement(adv)
    except DecodeError:
        return
    assert result is None or isinstance(result, RuuviData)


@given(st.binary(min_size=24, max_size=24))
def test_any_df5_body_decodes_to_values_in_the_encodable_range(body: bytes) -> None:
    data = decode_manufacturer_data(b"\x05" + body[1:])
    assert data.temperature_c is None or -163.84 <= data.temperature_c <= 163.835
    assert data.battery_mv is None or 1600 <= data.battery_mv <= 3646
    assert data.tx_power_dbm is None or -40 <= data.tx_power_dbm <= 20
