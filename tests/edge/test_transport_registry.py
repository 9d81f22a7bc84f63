"""The agent's devices come from the transport registry: every configured reader is built by the
kind its module registered, and a new reader type needs no edit of edge/agent.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from edge.agent import EdgeAgent
from edge.supervisor import DeviceHealthState
from edge.transports import registry
from edge.transports.chafon import ChafonSerialTransport
from edge.transports.llrp import LlrpTransport
from edge.transports.modbus import ModbusProbeTransport
from edge.transports.mqtt import MqttTransport
from edge.transports.pn532 import Pn532Transport
from edge.transports.rdm6300 import Rdm6300Transport
from edge.transports.registry import Device, DeviceWiring, register_transport
from edge.transports.serial_uhf import UhfSerialTransport
from shelfsense.config import EdgeSettings, Settings


def _edge(tmp_path: Path, **devices: object) -> EdgeSettings:
    return EdgeSettings.model_validate({"db_path": tmp_path / "edge.db", **devices})


def test_every_configured_device_is_built_by_its_registered_transport(tmp_path: Path) -> None:
    edge = _edge(
        tmp_path,
        uhf_readers=[
            {"id": "dock-outer", "port": "/dev/null"},
            {"id": "dock-inner", "port": "/dev/null", "protocol": "chafon"},
        ],
        modbus_probes=[{"sensor_id": "probe-1", "port": "/dev/null"}],
        llrp_readers=[{"id": "impinj-1", "host": "127.0.0.1"}],
        nfc_readers=[
            {"id": "desk-pn532", "port": "/dev/null", "kind": "pn532"},
            {"id": "desk-rdm", "port": "/dev/null", "kind": "rdm6300"},
        ],
        mqtt={"url": "mqtt://127.0.0.1:1883", "sensors": []},
    )
    agent = EdgeAgent(Settings(edge=edge))
    built = {device_id: type(transport) for device_id, _health, transport in registry.build_devices(agent)}
    assert built == {
        "dock-outer": UhfSerialTransport,
        "dock-inner": ChafonSerialTransport,
        "probe-1": ModbusProbeTransport,
        "impinj-1": LlrpTransport,
        "desk-pn532": Pn532Transport,
        "desk-rdm": Rdm6300Transport,
        "mqtt": MqttTransport,
    }
    # in the order of EdgeSettings' fields, whatever order the modules were imported in
    assert list(built) == [
        *("dock-outer", "dock-inner", "probe-1", "mqtt", "impinj-1", "desk-pn532", "desk-rdm")
    ]
    assert "impinj-1" in agent.smoothers  # the LLRP factory set up its logical reader's smoother


class ToyReaderConfig(BaseModel):
    id: str


class ToyEdgeSettings(EdgeSettings):
    toy_readers: list[ToyReaderConfig] = []


class ToyTransport:
    def __init__(self, config: ToyReaderConfig, health: DeviceHealthState) -> None:
        self.config, self.health = config, health

    async def run(self) -> None:
        return None


def _build_toy(wiring: DeviceWiring, config: ToyReaderConfig) -> Device:
    health = DeviceHealthState(config.id)
    return config.id, health, ToyTransport(config, health)


@pytest.fixture
def toy_kind() -> Iterator[None]:
    register_transport("toy", "toy_readers", _build_toy)
    yield
    registry._KINDS.pop("toy")


def test_a_new_reader_type_is_one_registration_and_its_config(tmp_path: Path, toy_kind: object) -> None:
    edge = ToyEdgeSettings.model_validate({"db_path": tmp_path / "edge.db", "toy_readers": [{"id": "toy-1"}]})
    agent = EdgeAgent(Settings(edge=edge))
    ((device_id, health, run),) = agent._devices()
    assert device_id == "toy-1" and health.device_id == "toy-1"
    assert run.__self__.config.id == "toy-1"  # type: ignore[attr-defined]


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_transport("mqtt", "mqtt", _build_toy)
