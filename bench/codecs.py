"""Throughput of the devices/ codecs on one core.

Run: ``.venv/bin/python bench/codecs.py [--frames N] [--repeat R]``. Each codec gets a stream of N
(default 100k) frames or payloads; the best of R runs is reported, one line per codec, and the last
line is one JSON object (``uhf_frames_per_s``, ``epc_decodes_per_s``, ...) for scripts to read.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices import epc, modbus, mqtt_formats, mqtt_registry, uhf

CHUNK = 4096  # bytes per serial read, about what a 115200-baud port delivers in 0.35 s


def best_rate(count: int, repeat: int, run: Callable[[], int]) -> float:
    """Items per second of the fastest of ``repeat`` runs; ``run`` returns how many it handled."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        handled = run()
        elapsed = time.perf_counter() - start
        if handled != count:
            raise SystemExit(f"benchmark handled {handled} items, expected {count}")
        best = min(best, elapsed)
    return count / best


def chunks(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_uhf(n: int, repeat: int, epcs: list[str]) -> tuple[float, float]:
    rng = random.Random(1)
    stream = chunks(b"".join(uhf.tag_notification(e, rng.randint(-80, -30)) for e in epcs))

    def frames_only() -> int:
        decoder = uhf.UhfFrameDecoder()
        return sum(len(decoder.feed(c)) for c in stream)

    def frames_and_reads() -> int:
        decoder = uhf.UhfFrameDecoder()
        parse = uhf.parse_tag_notification
        return sum(1 for c in stream for f in decoder.feed(c) if parse(f) is not None)

    return best_rate(n, repeat, frames_only), best_rate(n, repeat, frames_and_reads)


def bench_epc(n: int, repeat: int, epcs: list[str]) -> tuple[float, float]:
    decode = epc.decode_epc

    def sgtin() -> int:
        return sum(1 for h in epcs if decode(h).gtin)

    mixed_uris = [
        "urn:epc:tag:sscc-96:3.0614141.1234567890",
        "urn:epc:tag:sgln-96:3.0614141.12345.5678",
        "urn:epc:tag:grai-96:3.0614141.12345.5678",
        "urn:epc:tag:giai-96:3.0614141.2689",
        "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb",
    ]
    mixed = [epc.encode_tag_uri(u) for u in mixed_uris] + ["E2801160600002054CC2096F"]
    mixed_stream = (mixed * (n // len(mixed) + 1))[:n]

    def mixed_schemes() -> int:
        return sum(1 for h in mixed_stream if decode(h).uri)

    return best_rate(n, repeat, sgtin), best_rate(n, repeat, mixed_schemes)


def bench_modbus(n: int, repeat: int) -> tuple[float, float]:
    stream = chunks(b"".join(modbus.read_input_registers_request(1 + i % 247, 1, 2) for i in range(n)), 256)
    responses = [
        modbus.read_input_registers_response(1, modbus.encode_th_registers(-20 + (i % 400) / 10, 50.0))
        for i in range(n)
    ]

    def requests() -> int:
        decoder = modbus.RtuRequestDecoder()
        return sum(len(decoder.feed(c)) for c in stream)

    def responses_to_measurements() -> int:
        return sum(
            1 for r in responses if modbus.decode_th_registers(modbus.decode_rtu_frame(r)["registers"])
        )

    return best_rate(n, repeat, requests), best_rate(n, repeat, responses_to_measurements)


def bench_mqtt(n: int, repeat: int) -> tuple[float, float]:
    z2m = [mqtt_formats.encode_zigbee2mqtt(4 + (i % 50) / 10, 60.0, 97, 120) for i in range(n)]
    at = datetime(2026, 11, 25, 10, 0)
    tasmota = [mqtt_formats.encode_tasmota(at, 4 + (i % 50) / 10, 61.0, "AM2301", "F") for i in range(n)]
    decode = mqtt_registry.decode_payload

    def run_z2m() -> int:
        return sum(1 for p in z2m if decode("zigbee2mqtt", "zigbee2mqtt/cold_1", p))

    def run_tasmota() -> int:
        return sum(1 for p in tasmota if decode("tasmota", "tele/cold_2/SENSOR", p))

    return best_rate(n, repeat, run_z2m), best_rate(n, repeat, run_tasmota)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n, repeat = args.frames, args.repeat
    epcs = [epc.encode_sgtin96("0614141", "812345", serial, 1) for serial in range(n)]

    uhf_frames, uhf_reads = bench_uhf(n, repeat, epcs)
    epc_sgtin, epc_mixed = bench_epc(n, repeat, epcs)
    mb_requests, mb_responses = bench_modbus(n, repeat)
    z2m, tasmota = bench_mqtt(n, repeat)
    results = {
        "frames": n,
        "uhf_frames_per_s": round(uhf_frames),
        "uhf_tag_reads_per_s": round(uhf_reads),
        "epc_decodes_per_s": round(epc_sgtin),
        "epc_mixed_decodes_per_s": round(epc_mixed),
        "modbus_requests_per_s": round(mb_requests),
        "modbus_responses_per_s": round(mb_responses),
        "mqtt_zigbee2mqtt_per_s": round(z2m),
        "mqtt_tasmota_per_s": round(tasmota),
    }
    labels = {
        "uhf_frames_per_s": "UHF notification frames (decoder only, 4 KiB chunks)",
        "uhf_tag_reads_per_s": "UHF frames -> TagRead (incl. EPC CRC check)",
        "epc_decodes_per_s": "EPC SGTIN-96 decode_epc",
        "epc_mixed_decodes_per_s": "EPC mixed schemes decode_epc",
        "modbus_requests_per_s": "Modbus RTU requests (RtuRequestDecoder)",
        "modbus_responses_per_s": "Modbus RTU response -> Measurements",
        "mqtt_zigbee2mqtt_per_s": "MQTT zigbee2mqtt payload -> Measurements",
        "mqtt_tasmota_per_s": "MQTT tasmota payload -> Measurements (degF)",
    }
    for key, label in labels.items():
        print(f"{label:<58} {results[key]:>12,} /s")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
