"""``shelfsense sim ...``: device simulators until Ctrl-C / SIGTERM (moved from cli_tools).

The first stdout line says where they listen (a pty path, the MQTT topic, or for ``sim scenario``
a JSON object), flushed at once so a parent process can read it from a pipe.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shelfsense.cli_tools import BadInput, _guarded

if TYPE_CHECKING:
    pass


# --- sim ----------------------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _epcs(text: str) -> list[str]:
    """EPCs given as hex or as GS1 tag URIs (``urn:epc:tag:gsrn-96:0.0614141.1234567890``), as hex."""
    from devices.epc import encode_tag_uri

    return [encode_tag_uri(part) if part.startswith("urn:") else part.upper() for part in _csv(text)]


def _serve(
    simulators: Sequence[Any], banner: str | Callable[[], str], args: argparse.Namespace | None = None
) -> int:
    """Run the simulators until Ctrl-C or SIGTERM, after printing ``banner`` as the first line.

    Simulators with an async ``start()`` (network servers) are started first, so a callable
    ``banner`` can name the port they got.
    """
    import asyncio
    import contextlib
    import signal

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        for sim in simulators:
            if hasattr(sim, "start"):
                await sim.start()
        runs = [asyncio.create_task(sim.run()) for sim in simulators]
        if args is not None:
            runs.append(asyncio.create_task(_inject_faults(simulators, args)))
        print(banner if isinstance(banner, str) else banner(), flush=True)
        try:
            # A simulator that fails (its pty vanished) ends the command with its error.
            done, _ = await asyncio.wait(runs, return_when=asyncio.FIRST_EXCEPTION)
            for finished in done:
                finished.result()
        finally:
            for run in runs:
                run.cancel()
            await asyncio.gather(*runs, return_exceptions=True)

    try:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(main())
    finally:
        for sim in simulators:
            if hasattr(sim, "close"):
                sim.close()
    return 0


async def _inject_faults(simulators: Sequence[Any], args: argparse.Namespace) -> None:
    """``--noise-every`` / ``--corrupt-every``: periodic faults on every simulator that supports them."""
    import asyncio

    faults = [
        (period, method, argument)
        for period, method, argument in (
            (getattr(args, "noise_every", None), "inject_noise", 16),
            (getattr(args, "corrupt_every", None), "corrupt_next", 1),
        )
        if period
    ]
    if not faults:
        return

    async def every(period: float, method: str, argument: int) -> None:
        while True:
            await asyncio.sleep(period)
            for sim in simulators:
                if hasattr(sim, method):
                    getattr(sim, method)(argument)

    await asyncio.gather(*(every(*fault) for fault in faults))


def cmd_sim_uhf(args: argparse.Namespace) -> int:
    from devices.uhf import tag_notification
    from simulators.uhf_reader import UhfReaderSimulator

    tags = [(epc, args.rssi) for epc in _epcs(args.tags)]
    for epc, rssi in tags:
        tag_notification(epc, rssi)  # validate now: a bad EPC is an error here, not in the loop
    sim = UhfReaderSimulator(lambda: tags, reads_per_s=args.rate)
    return _serve([sim], sim.port, args)


def cmd_sim_chafon(args: argparse.Namespace) -> int:
    from devices.chafon import active_tag_frame
    from simulators.chafon_reader import ChafonReaderSimulator

    tags = [(epc, args.rssi) for epc in _epcs(args.tags)]
    for epc, _ in tags:
        active_tag_frame(0, epc)  # validate now: a bad EPC is an error here, not in the loop
    sim = ChafonReaderSimulator(
        lambda: tags, address=args.address, variant=args.variant, mode=args.mode, reads_per_s=args.rate
    )
    return _serve([sim], sim.port, args)


def cmd_sim_pn532(args: argparse.Namespace) -> int:
    from devices.pn532 import nfc_tag
    from simulators.pn532_reader import Pn532ReaderSimulator

    tags = [nfc_tag(uid) for uid in _csv(args.tags)]
    sim = Pn532ReaderSimulator(lambda: tags, require_wakeup=not args.no_wakeup)
    return _serve([sim], sim.port, args)


def cmd_sim_rdm6300(args: argparse.Namespace) -> int:
    from devices.rdm6300 import encode_frame
    from simulators.rdm6300_reader import Rdm6300ReaderSimulator

    card: str | None = args.card
    if card is not None:
        encode_frame(card)  # validate now
    sim = Rdm6300ReaderSimulator(lambda: card, repeat_s=args.interval)
    return _serve([sim], sim.port, args)


def parse_llrp_tags(text: str, rssi: int) -> list[tuple[str, int, int]]:
    """``EPC[:ANTENNA],...`` -> ``(epc, rssi, antenna)`` for the LLRP simulator (antenna default 1)."""
    tags = []
    for item in _csv(text):
        epc, _, antenna = item.partition(":")
        epc = epc.upper()
        if not epc or len(epc) % 4 or any(c not in "0123456789ABCDEF" for c in epc):
            raise BadInput(f"EPC {epc!r} is not whole 16-bit words of hex")
        if antenna and not (antenna.isdigit() and 1 <= int(antenna) <= 64):
            raise BadInput(f"antenna {antenna!r} of {item!r} must be 1..64")
        tags.append((epc, rssi, int(antenna or 1)))
    return tags


def cmd_sim_llrp(args: argparse.Namespace) -> int:
    from simulators.llrp_reader import LlrpReaderSimulator

    tags = parse_llrp_tags(args.tags, args.rssi)
    if not 0 <= args.port <= 65535:
        raise BadInput(f"port must be 0..65535, got {args.port}")
    sim = LlrpReaderSimulator(lambda: tags, host=args.host, port=args.port, reads_per_s=args.rate)
    return _serve([sim], lambda: f"{sim.host}:{sim.port}", args)


def cmd_sim_modbus(args: argparse.Namespace) -> int:
    from simulators.modbus_probe import ModbusProbeSimulator
    from simulators.modbus_server import PymodbusProbeServer

    reading = (args.temperature, args.humidity)
    probes = {slave: (lambda: reading) for slave in args.slave or [1]}
    if args.server == "codec":
        sim = ModbusProbeSimulator(probes)
        return _serve([sim], sim.port, args)
    if args.noise_every or args.corrupt_every:
        raise BadInput("--noise-every / --corrupt-every need --server codec (pymodbus injects no faults)")
    server = PymodbusProbeServer(probes)  # a bad slave id: ValueError, reported by _guarded
    return _serve([server], server.port)


def cmd_sim_mqtt(args: argparse.Namespace) -> int:
    from devices.mqtt_registry import mqtt_format
    from simulators.mqtt_sensors import MqttSensorSimulator, SimulatedMqttSensor

    topic: str = args.topic or mqtt_format(args.format).sim_topic or ""  # every sim format has one
    reading = (args.temperature, args.humidity)
    sensor = SimulatedMqttSensor(topic, args.format, lambda: reading, battery=args.battery)
    sim = MqttSensorSimulator(args.url, [sensor], interval_s=args.interval)
    return _serve([sim], topic)


def cmd_sim_scenario(args: argparse.Namespace) -> int:
    from simulators.faults import FaultScheduler
    from simulators.modbus_probe import ModbusProbeSimulator
    from simulators.mqtt_sensors import MqttSensorSimulator, SimulatedMqttSensor
    from simulators.scenario import ScenarioRunner, load_scenario
    from simulators.uhf_reader import UhfReaderSimulator

    scenario = load_scenario(args.file)
    runner = ScenarioRunner(scenario)
    simulators: list[Any] = []
    targets: dict[str, list[Any]] = {}  # fault-event target name -> simulators
    portals: dict[str, dict[str, str]] = {}
    for portal in scenario.spec.portals:
        readers = {
            zone: UhfReaderSimulator(runner.field_source(zone, portal.id)) for zone in ("outer", "inner")
        }
        simulators += readers.values()
        portals[portal.id] = {zone: reader.port for zone, reader in readers.items()}
        targets.update({f"{portal.id}.{zone}": [reader] for zone, reader in readers.items()})
    probe = ModbusProbeSimulator({1: runner.cold_room})
    simulators.append(probe)
    targets["probe"] = [probe]
    where: dict[str, Any] = {
        "scenario": scenario.spec.name,
        "portals": portals,
        "modbus": {"port": probe.port, "slaves": [1]},
        "mqtt": None,
    }
    if args.mqtt_url:
        sensors = [
            SimulatedMqttSensor("zigbee2mqtt/coldroom", "zigbee2mqtt", runner.cold_room, battery=96),
            SimulatedMqttSensor("tele/coldroom/SENSOR", "tasmota", runner.cold_room),
        ]
        simulators.append(MqttSensorSimulator(args.mqtt_url, sensors, interval_s=args.interval))
        targets["mqtt"] = [simulators[-1]]
        where["mqtt"] = {"url": args.mqtt_url, "topics": [s.topic for s in sensors]}
    else:
        targets["mqtt"] = []  # no broker: MQTT faults of the scenario have nothing to hit
    if scenario.spec.events:
        try:
            simulators.append(FaultScheduler(runner, targets))
        except ValueError:
            for sim in simulators:
                sim.close()
            raise
        where["events"] = len(scenario.spec.events)
    return _serve(simulators, json.dumps(where) if args.json else _where_text(where), args)


def _where_text(where: dict[str, Any]) -> str:
    """Where ``sim scenario`` listens, on one line (``--json``: the same as one JSON object)."""
    portals = "; ".join(
        f"portal {name}: " + ", ".join(f"{zone} {port}" for zone, port in zones.items())
        for name, zones in where["portals"].items()
    )
    mqtt = f"mqtt {where['mqtt']['url']}" if where["mqtt"] else "no mqtt"
    return f"scenario {where['scenario']}: {portals}; modbus probe {where['modbus']['port']}; {mqtt}"


# --- parser -------------------------------------------------------------------------------------


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--noise-every", type=float, metavar="S", help="16 bytes of line noise every S seconds"
    )
    parser.add_argument(
        "--corrupt-every", type=float, metavar="S", help="one frame with a bad checksum every S s"
    )


def _add_sim_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from devices.mqtt_registry import sim_format_names

    sim = commands.add_parser("sim", help="run a device simulator until Ctrl-C").add_subparsers(
        dest="sim_command", required=True
    )
    uhf = sim.add_parser("uhf", help="M100/R200 UHF reader on a pty")
    uhf.add_argument("--tags", default="", help="EPCs in the field (hex or tag URIs), comma separated")
    uhf.add_argument("--rssi", type=int, default=-55, help="RSSI of every tag in dBm (default -55)")
    uhf.add_argument("--rate", type=float, default=20.0, help="inventory rounds per second")
    uhf.set_defaults(handler=_guarded(cmd_sim_uhf))

    cf = sim.add_parser("chafon", help="Chafon / UHFReader18-family reader on a pty")
    cf.add_argument("--tags", default="", help="EPCs in the field (hex or tag URIs), comma separated")
    cf.add_argument("--rssi", type=int, default=-60, help="RSSI of every tag in dBm (variant 288)")
    cf.add_argument("--address", type=lambda text: int(text, 0), default=0, help="reader address (0..254)")
    cf.add_argument("--variant", choices=["18", "288"], default="18")
    cf.add_argument("--mode", choices=["answer", "active"], default="answer")
    cf.add_argument("--rate", type=float, default=10.0, help="active mode: rounds per second")
    cf.set_defaults(handler=_guarded(cmd_sim_chafon))

    pn532 = sim.add_parser("pn532", help="PN532 NFC reader (HSU) on a pty")
    pn532.add_argument("--tags", default="", help="UIDs in the field (4, 7 or 10 bytes hex), comma separated")
    pn532.add_argument("--no-wakeup", action="store_true", help="answer without the HSU wake-up preamble")
    pn532.set_defaults(handler=_guarded(cmd_sim_pn532))

    rdm = sim.add_parser("rdm6300", help="RDM6300 125 kHz reader on a pty")
    rdm.add_argument("--card", help="card in the field: 10 hex characters (version byte + 4-byte id)")
    rdm.add_argument("--interval", type=float, default=0.1, help="seconds between repeated frames")
    rdm.set_defaults(handler=_guarded(cmd_sim_rdm6300))

    llrp = sim.add_parser("llrp", help="LLRP fixed reader (Impinj/Zebra-like) on TCP; prints host:port")
    llrp.add_argument(
        "--port", type=int, default=0, help="TCP port (default: any free one; real readers: 5084)"
    )
    llrp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    llrp.add_argument("--tags", default="", help="EPC[:ANTENNA] in the field, comma separated (antenna 1)")
    llrp.add_argument("--rssi", type=int, default=-55, help="peak RSSI of every tag in dBm (default -55)")
    llrp.add_argument("--rate", type=float, default=10.0, help="inventory rounds per second")
    llrp.set_defaults(handler=_guarded(cmd_sim_llrp))

    modbus = sim.add_parser("modbus", help="XY-MD02 Modbus RTU probe(s) on a pty")
    modbus.add_argument("--slave", type=int, action="append", help="slave id (repeatable, default 1)")
    modbus.add_argument("--temperature", type=float, default=4.0, help="degC")
    modbus.add_argument("--humidity", type=float, default=60.0, help="%%RH")
    modbus.add_argument(
        "--server",
        choices=["codec", "pymodbus"],
        default="codec",
        help="codec: our RTU codec on a pty (faults); pymodbus: pymodbus' RTU server on a socat link",
    )
    modbus.set_defaults(handler=_guarded(cmd_sim_modbus))
    for parser in (uhf, cf, llrp, pn532, rdm, modbus):
        _add_fault_flags(parser)

    mqtt = sim.add_parser("mqtt", help="an MQTT temperature/humidity sensor")
    mqtt.add_argument("--url", required=True, help="broker, mqtt://host:port")
    mqtt.add_argument("--format", choices=sim_format_names(), default="zigbee2mqtt")
    mqtt.add_argument("--topic", help="default: per format, e.g. zigbee2mqtt/shelfsense_sim")
    mqtt.add_argument("--temperature", type=float, default=4.0, help="degC")
    mqtt.add_argument("--humidity", type=float, default=60.0, help="%%RH")
    mqtt.add_argument("--battery", type=int, help="battery %% (zigbee2mqtt)")
    mqtt.add_argument("--interval", type=float, default=1.0, help="seconds between messages")
    mqtt.set_defaults(handler=_guarded(cmd_sim_mqtt))

    scenario = sim.add_parser("scenario", help="a whole site from a scenario file (simulators/scenarios/)")
    scenario.add_argument("file", help="scenario TOML file")
    scenario.add_argument("--mqtt-url", help="also publish the cold room's MQTT sensors to this broker")
    scenario.add_argument("--interval", type=float, default=1.0, help="MQTT publish interval in seconds")
    _add_fault_flags(scenario)
    scenario.set_defaults(handler=_guarded(cmd_sim_scenario))
