"""RS-485 Modbus RTU temperature/humidity probe (SHT20 / XY-MD02 register map) via pymodbus.

Every ``poll_interval_s`` the transport reads input registers 0x0001..0x0002 of its slave and turns
them into :class:`SensorReading` events. pymodbus' own reconnect is disabled
(``reconnect_delay=0``): :func:`edge.supervisor.supervise` owns the reconnect policy.

A probe that does not answer a few times in a row (``max_consecutive_failures``) is treated as
lost; a single garbled or out-of-range answer is counted as a bad frame and skipped.
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from devices.errors import DecodeError, TransportError
from devices.modbus import decode_th_registers
from edge.clock import Clock
from edge.supervisor import DeviceHealthState
from edge.transports import measurements_to_readings
from edge.transports.protocol import Emit, Events
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import ModbusProbeConfig

log = logging.getLogger(__name__)

TH_FIRST_REGISTER = 0x0001
TH_REGISTER_COUNT = 2


class ModbusProbeTransport:
    def __init__(
        self,
        config: ModbusProbeConfig,
        health: DeviceHealthState,
        emit: Emit,
        *,
        clock: Clock,
        timeout_s: float = 1.0,
        max_consecutive_failures: int = 3,
    ) -> None:
        self.config = config
        self.health = health
        self.emit = emit
        self.clock = clock
        self.timeout_s = timeout_s
        self.max_consecutive_failures = max_consecutive_failures

    async def run(self) -> None:
        cfg = self.config
        client = AsyncModbusSerialClient(
            port=cfg.port, baudrate=cfg.baudrate, timeout=self.timeout_s, retries=0, reconnect_delay=0
        )
        try:
            try:
                connected = await client.connect()
            except (ModbusException, OSError) as exc:
                raise TransportError(f"cannot open {cfg.port}: {exc}") from exc
            if not connected:
                raise TransportError(f"cannot open {cfg.port}")
            self.health.mark_connected()
            failures = 0
            while True:
                if await self._poll(client):
                    failures = 0
                else:
                    failures += 1
                    if failures >= self.max_consecutive_failures:
                        raise TransportError(f"probe {cfg.sensor_id} (slave {cfg.slave}) stopped answering")
                await asyncio.sleep(cfg.poll_interval_s)
        finally:
            client.close()

    async def _poll(self, client: AsyncModbusSerialClient) -> bool:
        """One read; True if the probe answered (even with a value we had to drop)."""
        cfg = self.config
        try:
            response = await client.read_input_registers(
                TH_FIRST_REGISTER, count=TH_REGISTER_COUNT, device_id=cfg.slave
            )
        except (ModbusException, OSError) as exc:
            # pymodbus discards a garbled answer (bad CRC) and times out, so a corrupt frame and
            # a missing one look alike here: both count as a bad frame for the health report.
            self.health.frame_bad()
            log.debug("probe %s: no valid answer: %s", cfg.sensor_id, exc)
            return False
        now = self.clock.now()
        if response.isError():
            self.health.frame_bad()
            log.debug("probe %s answered with a Modbus exception: %s", cfg.sensor_id, response)
            return True
        try:
            measurements = decode_th_registers(list(response.registers))
        except DecodeError as exc:
            self.health.frame_bad()
            log.debug("probe %s: %s", cfg.sensor_id, exc)
            return True
        self.health.frame_ok(1, now)
        await self.emit(Events(measurements_to_readings(measurements, cfg.sensor_id, cfg.zone, now)))
        return True


def _build(wiring: DeviceWiring, config: ModbusProbeConfig) -> Device:
    health = DeviceHealthState(config.sensor_id)
    return config.sensor_id, health, ModbusProbeTransport(config, health, wiring.emit, clock=wiring.clock)


register_transport("modbus", "modbus_probes", _build)
