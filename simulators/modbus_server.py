"""XY-MD02 / SHT20 Modbus RTU probes served by pymodbus' own RTU server on a ``socat`` pty link.

A second implementation of the probe bus next to :mod:`simulators.modbus_probe` (which answers with
our sans-I/O codec and injects faults). This one checks the edge against pymodbus on *both* ends,
as issue 3 asks: ``socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`` makes a linked pair of
serial-port paths, :class:`pymodbus.server.ModbusSerialServer` opens ``A`` and the client (the
edge) opens :attr:`PymodbusProbeServer.port` (``B``)::

    server = PymodbusProbeServer({1: lambda: (4.0, 60.0), 7: lambda: (-12.5, 40.0)})
    await server.start()          # socat links exist and the server listens
    task = asyncio.create_task(server.run())
    ...                           # ModbusProbeTransport(port=server.port, slave=7, ...)
    task.cancel(); server.close()

Register map, as on the real probe: input registers 0x0001 (temperature x10, signed, sent as a
uint16 two's complement) and 0x0002 (humidity x10), refreshed from the probe's callable before
every read; holding registers 0x0101..0x0104 (slave id, baud code, two corrections) are readable.
Everything else is refused as on the probe: other addresses -> exception 0x02, other functions
(writes included) -> exception 0x01. A slave id nobody has gets silence, as on RS-485 (pymodbus
would answer it with an exception, so such requests are dropped in its ``trace_pdu`` hook).

Built on pymodbus 3.16's ``SimDevice``/``SimData`` datastore (``ModbusDeviceContext`` and
``ModbusServerContext`` are deprecated there and convert to it anyway); its ``action`` hook runs
before each access and may rewrite the registers in place, which is where the values come from.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.errors import TransportError
from devices.modbus import (
    FN_READ_HOLDING_REGISTERS,
    FN_READ_INPUT_REGISTERS,
    REG_HUMIDITY,
    REG_TEMPERATURE,
    encode_th_registers,
)

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[float, float]]

HOLDING_FIRST = 0x0101  # slave id, baud code, temperature correction, humidity correction
BAUD_CODE_9600 = 0
BAUDRATE = 9600
LINK_TIMEOUT_S = 5.0
LINK_POLL_S = 0.02
HEALTH_CHECK_S = 0.5


class PymodbusProbeServer:
    """One RS-485 bus of simulated probes answered by pymodbus' RTU server; see the module docstring."""

    def __init__(self, probes: dict[int, Probe]) -> None:
        for slave in probes:
            if not 1 <= slave <= 247:
                raise ValueError(f"slave id must be 1..247, got {slave}")
        if not probes:
            raise ValueError("a bus needs at least one probe")
        self._probes = dict(probes)
        # The link paths are fixed now so that .port can be handed out before start().
        self._folder = Path(tempfile.mkdtemp(prefix="shelfsense-modbus-"))
        self._server_path = self._folder / "server"
        self._client_path = self._folder / "client"
        self._socat: subprocess.Popen[bytes] | None = None
        self._server: ModbusSerialServer | None = None
        self.requests_answered = 0
        self.requests_refused = 0  # writes and other functions: answered with exception 0x01
        self.requests_ignored = 0  # for slaves that are not on this bus

    @property
    def port(self) -> str:
        """The client-side serial port path (the edge opens this one)."""
        return str(self._client_path)

    @property
    def server_port(self) -> str:
        """The path pymodbus' server opens."""
        return str(self._server_path)

    @property
    def slaves(self) -> list[int]:
        return sorted(self._probes)

    async def start(self) -> None:
        """Start socat and the pymodbus server (idempotent); afterwards :attr:`port` can be opened."""
        if self._server is not None:
            return
        await self._start_socat()
        devices = [self._device(slave) for slave in self.slaves]
        self._server = ModbusSerialServer(
            devices,
            port=self.server_port,
            baudrate=BAUDRATE,
            # pymodbus types the hook as returning a PDU, but a received PDU replaced by None is
            # simply not handled (ServerRequestHandler.handle_request returns early): silence.
            trace_pdu=self._filter_pdu,  # type: ignore[arg-type]
            reconnect_delay=0,
        )
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus' way of saying it could not open the port
            raise TransportError(f"pymodbus server cannot open {self.server_port}: {exc}") from exc
        log.info("pymodbus probe server for slaves %s on %s", self.slaves, self.port)

    async def run(self) -> None:
        """Serve until cancelled; raises :class:`TransportError` if socat goes away."""
        await self.start()
        try:
            while self._socat is not None and self._socat.poll() is None:
                await asyncio.sleep(HEALTH_CHECK_S)
            raise TransportError("socat pty link of the pymodbus probe server exited")
        finally:
            if self._server is not None:
                await self._server.shutdown()

    def close(self) -> None:
        """Stop the server and socat, remove the links (idempotent); cancel :meth:`run` first."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._socat is not None:
            self._socat.terminate()
            try:
                self._socat.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._socat.kill()
                self._socat.wait()
            self._socat = None
        shutil.rmtree(self._folder, ignore_errors=True)

    # --------------------------------------------------------------- plumbing

    async def _start_socat(self) -> None:
        links = [f"pty,raw,echo=0,link={path}" for path in (self._server_path, self._client_path)]
        try:
            self._socat = subprocess.Popen(
                ["socat", *links], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except FileNotFoundError as exc:
            raise TransportError("socat is not installed (apt-get install socat)") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINK_TIMEOUT_S
        while not (self._server_path.exists() and self._client_path.exists()):
            if self._socat.poll() is not None or loop.time() > deadline:
                stderr = b""
                if self._socat.poll() is not None and self._socat.stderr is not None:
                    stderr = self._socat.stderr.read()
                self.close()
                raise TransportError(f"socat did not create its pty links: {stderr.decode(errors='replace')}")
            await asyncio.sleep(LINK_POLL_S)

    def _device(self, slave: int) -> SimDevice:
        # Separate blocks per table (the probe's input and holding registers are different things);
        # pymodbus wants coil and discrete-input blocks too, the action refuses them.
        bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        holding = [SimData(HOLDING_FIRST, values=[slave, BAUD_CODE_9600, 0, 0], datatype=DataType.REGISTERS)]
        inputs = [SimData(REG_TEMPERATURE, values=[0, 0], datatype=DataType.REGISTERS)]
        return SimDevice(
            id=slave,
            simdata=(bits, list(bits), holding, inputs),
            action=functools.partial(self._access, slave),
        )

    def _filter_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """Drop requests for slaves not on this bus: on RS-485 nobody answers them."""
        if not sending and pdu.dev_id not in self._probes:
            self.requests_ignored += 1
            return None
        return pdu

    async def _access(
        self,
        slave: int,
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus' SimDevice action: runs before each (already address-checked) access."""
        readable = (FN_READ_INPUT_REGISTERS, FN_READ_HOLDING_REGISTERS)
        if set_values is not None or function_code not in readable:
            self.requests_refused += 1
            return ExcCodes.ILLEGAL_FUNCTION
        if function_code == FN_READ_INPUT_REGISTERS:
            offset = REG_TEMPERATURE - start_address
            temperature, humidity = self._probes[slave]()
            registers[offset : offset + REG_HUMIDITY - REG_TEMPERATURE + 1] = encode_th_registers(
                temperature, humidity
            )
        self.requests_answered += 1
        return None
