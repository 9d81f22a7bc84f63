"""``shelfsense decode ...`` and ``shelfsense sim ...`` run as real processes, as an engineer runs them."""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import serial
from paho.mqtt.enums import CallbackAPIVersion

from devices import chafon, pn532, rdm6300, uhf
from devices.modbus import crc16, read_input_registers_request
from devices.mqtt_registry import infer_format
from simulators.scenario import SCENARIO_DIR

SGTIN = "3074257BF7194E4000001A85"  # TDS example: urn:epc:id:sgtin:0614141.812345.6789, filter 3
SSCC = "3114257BF4B2F8B5C0000000"


def shelfsense(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shelfsense", *args],
        capture_output=True,
        text=True,
        timeout=30,
        input=stdin,
    )


def assert_bad_input(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --------------------------------------------------------------------------- decode epc


def test_decode_epc_prints_one_object_per_line() -> None:
    result = shelfsense("decode", "epc", "--json", SGTIN, SSCC.lower(), "E2801160600002054CC2096F")
    assert result.returncode == 0, result.stderr
    sgtin, sscc, raw = (json.loads(line) for line in result.stdout.splitlines())
    assert sgtin["scheme"] == "sgtin-96"
    assert sgtin["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"
    assert sgtin["tag_uri"] == "urn:epc:tag:sgtin-96:3.0614141.812345.6789"
    assert (sgtin["filter"], sgtin["gtin"], sgtin["serial"]) == (3, "80614141123458", "6789")
    assert "sscc" not in sgtin and "gln" not in sgtin
    assert sscc["scheme"] == "sscc-96" and len(sscc["sscc"]) == 18
    assert raw["scheme"] == "raw" and raw["uri"].startswith("urn:epc:raw:96.x")


@pytest.mark.parametrize("bad", ["zz", "307", ""])
def test_decode_epc_invalid_input_exits_2_with_one_line(bad: str) -> None:
    # All or nothing: a bad argument after a good one prints nothing at all.
    assert_bad_input(shelfsense("decode", "epc", "--json", SGTIN, bad), "EPC")


def test_decode_mqtt_partly_understood_payload_prints_what_it_can() -> None:
    payload = json.dumps({"temperature": 4.2, "humidity": 130, "battery": "37.00"})
    result = shelfsense("decode", "mqtt", "--json", "--topic", "zigbee2mqtt/door", "--payload", payload)
    assert result.returncode == 0, result.stderr
    assert [(r["quantity"], r["value"], r["battery"]) for r in json.loads(result.stdout)] == [
        ("temperature", 4.2, 37.0)
    ]
    assert "humidity: 130.0 outside the plausible humidity range" in result.stderr


def test_decode_epc_every_tds_scheme_and_raw_reasons() -> None:
    # GSRN-96 and ADI-var vectors of epcpy's test suite (see tests/devices/test_epc_schemes.py).
    result = shelfsense(
        "decode", "epc", "--json", "2D14257BF4499602D2000000", "3B157E316390F32CCE78D106310325CD06DD7200",
        "E2801160600002054CC2096F",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    gsrn, adi, raw = (json.loads(line) for line in result.stdout.splitlines())
    assert (gsrn["scheme"], gsrn["uri"]) == ("gsrn-96", "urn:epc:id:gsrn:0614141.1234567890")
    assert adi["tag_uri"] == "urn:epc:tag:adi-var:5.W81X9C.3KL984PX1.2WMA-52"
    assert "not a TDS binary encoding" in raw["reason"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("2D1C257BF4499602D2000000", "partition value 7"),
        ("120000000000000000000000", "reserved"),
        ("3714257BF40C0E7F4287118B266D1780000000000000", "GS1 character set"),
    ],
)
def test_decode_epc_invalid_gs1_exits_2_with_the_reason(bad: str, reason: str) -> None:
    assert_bad_input(shelfsense("decode", "epc", "--json", SGTIN, bad), reason)


# --------------------------------------------------------------------------- decode mqtt


def test_decode_mqtt_zigbee2mqtt_inferred_with_battery() -> None:
    payload = json.dumps({"temperature": 4.2, "humidity": 61.5, "battery": 97, "linkquality": 120})
    result = shelfsense(
        "decode", "mqtt", "--json", "--topic", "zigbee2mqtt/coldroom_door", "--payload", payload
    )
    assert result.returncode == 0, result.stderr
    readings = {r["quantity"]: r for r in json.loads(result.stdout)}
    assert set(readings) == {"temperature", "humidity", "linkquality"}
    assert readings["temperature"] == {
        "sensor": "coldroom_door",
        "quantity": "temperature",
        "value": 4.2,
        "unit": "degC",
        "battery": 97.0,
    }
    assert readings["humidity"]["unit"] == "%RH"


def test_decode_mqtt_tasmota_fahrenheit_from_stdin() -> None:
    payload = '{"Time":"2026-01-05T10:00:00","AM2301":{"Temperature":39.2,"Humidity":61.0},"TempUnit":"F"}'
    result = shelfsense(
        "decode", "mqtt", "--json", "--topic", "tele/coldroom_back/SENSOR", "--payload", "-", stdin=payload
    )
    assert result.returncode == 0, result.stderr
    (temperature,) = [r for r in json.loads(result.stdout) if r["quantity"] == "temperature"]
    assert temperature["sensor"] == "coldroom_back"
    assert temperature["value"] == pytest.approx(4.0)
    assert temperature["unit"] == "degC"
    assert "battery" not in temperature


def test_decode_mqtt_shelly_battery_rides_on_the_readings() -> None:
    status = {
        "ts": 1700000000.5,
        "temperature:0": {"id": 0, "tC": 5.2, "tF": 41.4},
        "humidity:0": {"id": 0, "rh": 63.1},
        "devicepower:0": {"id": 0, "battery": {"V": 5.8, "percent": 87}},
    }
    payload = json.dumps({"src": "shellyhtg3-1", "dst": "x", "method": "NotifyStatus", "params": status})
    result = shelfsense(
        "decode", "mqtt", "--json", "--topic", "shellyhtg3-1/events/rpc", "--payload", payload
    )
    assert result.returncode == 0, result.stderr
    readings = json.loads(result.stdout)
    assert {(r["quantity"], r["value"], r["battery"]) for r in readings} == {
        ("temperature", 5.2, 87.0),
        ("humidity", 63.1, 87.0),
    }
    assert {r["sensor"] for r in readings} == {"shellyhtg3-1"}


def test_decode_mqtt_esphome_plain_value_with_quantity_hint() -> None:
    topic = "coldroom/sensor/probe/state"
    result = shelfsense(
        "decode", "mqtt", "--json", "--topic", topic, "--payload", "4.5", "--quantity", "temperature"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"sensor": "coldroom/probe", "quantity": "temperature", "value": 4.5, "unit": "degC"}
    ]


def test_decode_mqtt_errors_exit_2() -> None:
    assert_bad_input(
        shelfsense(
            "decode", "mqtt", "--json", "--topic", "zigbee2mqtt/x", "--payload", '{"temperature": 4.2,'
        ),
        "JSON",
    )
    assert_bad_input(
        shelfsense("decode", "mqtt", "--json", "--topic", "some/other/thing", "--payload", "{}"), "--format"
    )
    assert_bad_input(
        shelfsense("decode", "mqtt", "--json", "--topic", "x", "--payload", "{}", "--format", "lorawan"),
        "not supported",
        "zigbee2mqtt",
    )


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("zigbee2mqtt/door", ("zigbee2mqtt", "door")),
        ("tele/back/SENSOR", ("tasmota", "back")),
        ("stat/back/STATUS10", ("tasmota", "back")),
        ("shellyhtg3-84fce63ad204/events/rpc", ("shelly", "shellyhtg3-84fce63ad204")),
        ("node1/sensor/room_temperature/state", ("esphome", "node1/room_temperature")),
        ("ruuvi/C8:25:2D:8E:9C:2C/F4:10:9B:EA:2C:7A", ("ruuvi", "F4:10:9B:EA:2C:7A")),
        ("shelfsense/site-1/sensors/probe-1", ("shelfsense", "probe-1")),
        ("zigbee2mqtt/bridge/state", (None, "zigbee2mqtt/bridge/state")),
    ],
)
def test_format_inference_from_topics(topic: str, expected: tuple[str | None, str]) -> None:
    assert infer_format(topic) == expected


# --------------------------------------------------------------------------- decode frame


def decode_frame(protocol: str, *hex_parts: str) -> dict[str, Any]:
    result = shelfsense("decode", "frame", "--json", "--protocol", protocol, *hex_parts)
    assert result.returncode == 0, result.stderr
    decoded: dict[str, Any] = json.loads(result.stdout)
    assert decoded["protocol"] == protocol
    return decoded


def test_decode_frame_uhf_notification_and_error() -> None:
    wire = uhf.tag_notification(SGTIN, -55) + uhf.error_response(uhf.ERR_NO_TAG)
    notification, error = decode_frame("uhf", wire.hex())["frames"]
    assert notification["tag"] == {"epc": SGTIN, "rssi": -55.0, "pc": "0x3000"}
    assert (error["error_code"], error["error"]) == ("0x15", "no tag (inventory failed)")


def test_decode_frame_pn532_with_spaces_between_bytes() -> None:
    wire = pn532.ACK_FRAME + pn532.inlist_response([pn532.nfc_tag("DEADBEEF")])
    decoded = decode_frame("pn532", *(f"{b:02X}" for b in wire))
    ack, response = decoded["frames"]
    assert ack == {"kind": "ack"}
    assert response["targets"] == [{"uid_hex": "DEADBEEF", "atqa": 4, "sak": 8, "target": 1, "ats": ""}]
    assert decoded["frames_bad"] == 0


def test_decode_frame_rdm6300_and_modbus() -> None:
    (card,) = decode_frame("rdm6300", rdm6300.encode_frame("62E3086CED").hex())["frames"]
    assert card == {
        "version": "0x62",
        "tag_id": "0xE3086CED",
        "card_hex": "62E3086CED",
        "card_number": "3808980205",
    }
    (request,) = decode_frame("modbus", read_input_registers_request(1, 1, 2).hex())["frames"]
    assert (request["slave"], request["kind"], request["address"], request["count"]) == (1, "request", 1, 2)


def test_decode_frame_chafon_answers_and_host_commands() -> None:
    # A UHFReader18 answer (github.com/wabson/chafon-rfid tests) and a UHFReader288 capture
    # (github.com/Timereversal/rfidtime), see tests/devices/test_chafon.py.
    (answer,) = decode_frame("chafon", "13000103010c0000000000000000000003133f39")["frames"]
    assert (answer["command"], answer["status"], answer["status_name"]) == (
        "0x01",
        "0x03",
        "more frames follow",
    )
    assert answer["tags"] == [{"epc": "000000000000000000000313", "rssi": None, "antenna": 1}]
    result = shelfsense(
        "decode",
        "frame",
        "--json",
        "--protocol",
        "chafon",
        "--variant",
        "288",
        "0d000103010104111001ba465d27",
    )
    (capture,) = json.loads(result.stdout)["frames"]
    assert capture["tags"] == [{"epc": "111001BA", "rssi": -70.0, "antenna": 1}]
    result = shelfsense("decode", "frame", "--json", "--protocol", "chafon", "--from-host", "04 FF 01 1B B4")
    (command,) = json.loads(result.stdout)["frames"]
    assert command == {"address": "0xFF", "command": "0x01", "data": ""}
    assert_bad_input(
        shelfsense("decode", "frame", "--json", "--protocol", "chafon", "04FF011BB5"), "no valid frame"
    )


def test_decode_frame_bad_input_exits_2() -> None:
    assert_bad_input(shelfsense("decode", "frame", "--json", "--protocol", "uhf", "BB0222"), "no valid frame")
    assert_bad_input(shelfsense("decode", "frame", "--json", "--protocol", "pn532", "xyz"), "not hex")
    bad_crc = bytearray(read_input_registers_request(1, 1, 2))
    bad_crc[-1] ^= 0xFF
    assert_bad_input(shelfsense("decode", "frame", "--json", "--protocol", "modbus", bad_crc.hex()), "CRC")


# --------------------------------------------------------------------------- sim


@contextmanager
def sim(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``shelfsense sim ...``; yield the process and its first stdout line; terminate it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shelfsense", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "simulator printed nothing"
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield proc, line
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def read_until(port: serial.Serial, decoder: Any, count: int, timeout: float = 5.0) -> list[Any]:
    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        assert time.monotonic() < deadline, f"got only {frames}"
        frames += decoder.feed(port.read(4096))
    return frames


def test_sim_pn532_answers_on_its_pty() -> None:
    with sim("pn532", "--tags", "04A1B2C3D4E5F6,DEADBEEF") as (_, port):
        assert os.path.exists(port)
        with serial.Serial(port, 115200, timeout=0.05) as ser:
            ser.write(pn532.with_wakeup(pn532.sam_configuration_command()))
            ser.write(pn532.in_list_passive_target_command(max_targets=2))
            frames = read_until(ser, pn532.Pn532FrameDecoder(), 4)
    assert [f.kind for f in frames] == ["ack", "info", "ack", "info"]
    assert [t.uid_hex for t in pn532.parse_inlist_response(frames[3])] == ["04A1B2C3D4E5F6", "DEADBEEF"]


def test_sim_rdm6300_streams_its_card() -> None:
    with (
        sim("rdm6300", "--card", "0A00001234", "--interval", "0.02") as (_, port),
        serial.Serial(port, 9600, timeout=0.05) as ser,
    ):
        frames = read_until(ser, rdm6300.Rdm6300Decoder(), 3)
    assert {f.card_hex for f in frames} == {"0A00001234"}


def test_sim_uhf_single_poll_reports_the_tags() -> None:
    other = "E2801160600002054CC2096F"
    with (
        sim("uhf", "--tags", f"{SGTIN},{other}", "--rssi", "-48") as (_, port),
        serial.Serial(port, 115200, timeout=0.05) as ser,
    ):
        ser.write(uhf.single_poll_command())
        frames = read_until(ser, uhf.UhfFrameDecoder(), 2)
    reads = {uhf.parse_tag_notification(f) for f in frames}
    assert {(r.epc, r.rssi) for r in reads if r} == {(SGTIN, -48.0), (other, -48.0)}


def test_sim_chafon_answers_inventory_at_its_address() -> None:
    other = "E2801160600002054CC2096F"
    gsrn = "urn:epc:tag:gsrn-96:0.0614141.1234567890"  # tags may be given as GS1 tag URIs
    with (
        sim("chafon", "--tags", f"{SGTIN},{other},{gsrn}", "--address", "0x05", "--variant", "288") as (
            _,
            port,
        ),
        serial.Serial(port, 57600, timeout=0.05) as ser,
    ):
        ser.write(chafon.inventory_command(0x05))
        (frame,) = read_until(ser, chafon.ChafonDecoder(), 1)
    assert frame.address == 0x05 and chafon.is_final_inventory(frame)
    reads = chafon.parse_inventory(frame, "288") or []
    assert {(r.epc, r.rssi) for r in reads} == {
        (SGTIN, -60.0),
        (other, -60.0),
        ("2D14257BF4499602D2000000", -60.0),
    }


def test_sim_modbus_answers_for_its_slave() -> None:
    with (
        sim("modbus", "--slave", "7", "--temperature", "-18.5", "--humidity", "40") as (_, port),
        serial.Serial(port, 9600, timeout=0.05) as ser,
    ):
        ser.write(read_input_registers_request(7, 1, 2))
        answer = b""
        deadline = time.monotonic() + 5
        while len(answer) < 9 and time.monotonic() < deadline:
            answer += ser.read(64)
    assert answer[:3] == bytes([7, 4, 4])
    assert crc16(answer[:-2]) == answer[-2] | answer[-1] << 8
    assert int.from_bytes(answer[3:5], "big", signed=True) == -185
    assert int.from_bytes(answer[5:7], "big") == 400


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
def test_sim_modbus_pymodbus_server_answers_and_cleans_up() -> None:
    with (
        sim("modbus", "--server", "pymodbus", "--slave", "3", "--temperature", "-12.5") as (_, port),
        serial.Serial(port, 9600, timeout=0.05) as ser,
    ):
        ser.write(read_input_registers_request(3, 1, 2))
        answer = b""
        deadline = time.monotonic() + 5
        while len(answer) < 9 and time.monotonic() < deadline:
            answer += ser.read(64)
    assert answer[:3] == bytes([3, 4, 4])
    assert crc16(answer[:-2]) == answer[-2] | answer[-1] << 8
    assert int.from_bytes(answer[3:5], "big", signed=True) == -125
    assert int.from_bytes(answer[5:7], "big") == 600
    assert not os.path.exists(port), "the socat link must go with the simulator"
    assert_bad_input(
        shelfsense("sim", "modbus", "--server", "pymodbus", "--corrupt-every", "1"), "--server codec"
    )


def test_sim_uhf_with_a_bad_epc_exits_2() -> None:
    assert_bad_input(shelfsense("sim", "uhf", "--tags", "30742"), "EPC")


def test_sim_scenario_prints_its_ports_and_the_probe_answers() -> None:
    with sim("scenario", "--json", str(SCENARIO_DIR / "dock.toml")) as (_, line):
        where = json.loads(line)
        assert where["scenario"] == "dock"
        assert set(where["portals"]) == {"dock-1", "dock-2"}
        ports = [p for readers in where["portals"].values() for p in readers.values()]
        assert len(set(ports)) == 4 and all(os.path.exists(p) for p in ports)
        assert where["mqtt"] is None
        with serial.Serial(where["modbus"]["port"], 9600, timeout=0.05) as ser:
            ser.write(read_input_registers_request(1, 1, 2))
            answer = b""
            deadline = time.monotonic() + 5
            while len(answer) < 9 and time.monotonic() < deadline:
                answer += ser.read(64)
    temperature = int.from_bytes(answer[3:5], "big", signed=True) / 10
    assert 2.0 < temperature < 12.0  # the scenario's cold room


def test_sim_scenario_with_a_bad_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('cycle_s = -1\nname = "x"\n')
    assert_bad_input(shelfsense("sim", "scenario", str(bad)), "cycle_s")
    assert_bad_input(shelfsense("sim", "scenario", str(tmp_path / "missing.toml")), "not found")


def test_sim_mqtt_publishes_on_the_printed_topic(mosquitto_broker: Any) -> None:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, bytes(msg.payload)))
    client.connect(mosquitto_broker.host, mosquitto_broker.port)
    client.subscribe("tele/#", qos=1)
    client.loop_start()
    try:
        args = (
            "mqtt",
            "--url",
            mosquitto_broker.url,
            "--format",
            "tasmota",
            "--topic",
            "tele/cli_probe/SENSOR",
        )
        with sim(*args, "--temperature", "5.5", "--interval", "0.2") as (_, topic):
            assert topic == "tele/cli_probe/SENSOR"
            got_topic, payload = received.get(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()
    assert got_topic == topic
    decoded = shelfsense("decode", "mqtt", "--json", "--topic", topic, "--payload", payload.decode())
    assert {r["quantity"]: r["value"] for r in json.loads(decoded.stdout)}["temperature"] == 5.5
