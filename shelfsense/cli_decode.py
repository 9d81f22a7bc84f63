"""``shelfsense decode ...``: device bytes and payloads -> what they mean (moved from cli_tools).

Human text by default, ``--json`` for machines; bad input is a one-line error, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shelfsense.cli_tools import BadInput, _guarded
from shelfsense.output import cell, emit, key_values, table

if TYPE_CHECKING:
    from devices.readings import Measurement


def _hex_bytes(parts: Sequence[str]) -> bytes:
    """Hex given as one or more arguments; spaces, colons and dashes between bytes are allowed."""
    text = re.sub(r"[\s:\-]", "", "".join(parts))
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise BadInput(f"not hex: {' '.join(parts)!r}") from None
    if not data:
        raise BadInput("no bytes given")
    return data


# --- decode epc ---------------------------------------------------------------------------------


def cmd_decode_epc(args: argparse.Namespace) -> int:
    from devices.epc import decode_epc

    # All or nothing: validate before printing. Strict: a reserved header, partition 7 or a bad
    # string is an error (exit 2 with the reason); a tag that is not GS1-encoded prints as raw.
    identities = [decode_epc(text, strict=True) for text in args.hex]
    views = []
    for identity in identities:
        view: dict[str, Any] = {
            "scheme": identity.scheme,
            "uri": identity.uri,
            "tag_uri": identity.tag_uri,
            "filter": identity.filter,
        }
        for key in ("gtin", "sscc", "gln", "serial", "reason"):
            if getattr(identity, key) is not None:
                view[key] = getattr(identity, key)
        view["hex"] = identity.raw_hex
        views.append(view)
    if args.json:  # one object per line
        print("\n".join(json.dumps(view) for view in views))
    else:
        rows = [(v["scheme"], v["uri"], v.get("serial"), v.get("reason"), v["hex"]) for v in views]
        print(table(["scheme", "identity", "serial", "note", "hex"], rows))
    return 0


# --- decode mqtt --------------------------------------------------------------------------------


def readings_view(sensor: str, measurements: Sequence[Measurement]) -> list[dict[str, Any]]:
    """Normalized readings: the battery level rides on every other reading of the same message."""
    battery = next((m.value for m in measurements if m.quantity == "battery"), None)
    others = [m for m in measurements if m.quantity != "battery"] or list(measurements)
    out = []
    for m in others:
        view: dict[str, Any] = {"sensor": sensor, "quantity": m.quantity, "value": m.value, "unit": m.unit}
        if m.channel is not None:
            view["channel"] = m.channel
        if m.time is not None:
            view["time"] = m.time.isoformat()
        if battery is not None and m.quantity != "battery":
            view["battery"] = battery
        out.append(view)
    return out


def _readings_table(views: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            v["sensor"],
            v["quantity"],
            cell(v["value"], v["unit"] or ""),
            cell(v.get("battery"), "%"),
            v.get("time"),
        )
        for v in views
    ]
    return table(["sensor", "quantity", "value", "battery", "time"], rows)


def cmd_decode_mqtt(args: argparse.Namespace) -> int:
    from devices.mqtt_registry import decode_payload, format_names, infer_format

    inferred, sensor = infer_format(args.topic)
    fmt = args.format or inferred
    if fmt is None:
        raise BadInput(f"cannot infer the payload format from topic {args.topic!r}; pass --format")
    if fmt not in format_names():
        raise BadInput(f"payload format {fmt!r} is not supported; supported: {', '.join(format_names())}")
    payload = (
        sys.stdin.buffer.read() if args.payload == "-" else args.payload.encode("utf-8", "surrogateescape")
    )
    measurements = decode_payload(fmt, args.topic, payload, quantity=args.quantity)
    emit(args, readings_view(sensor, measurements), _readings_table)
    for reason in getattr(measurements, "rejected", ()):  # partly understood: say what was left out
        print(f"shelfsense: value not taken: {reason}", file=sys.stderr)
    return 0


# --- decode frame -------------------------------------------------------------------------------


def _decode_stream(decoder: Any, data: bytes, view: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    frames = decoder.feed(data)
    if not frames:
        raise BadInput(
            f"no valid frame in {len(data)} bytes ({decoder.frames_bad} bad candidates, "
            f"{decoder.buffered} bytes of an incomplete frame)"
        )
    return {
        "frames": [view(f) for f in frames],
        "frames_bad": decoder.frames_bad,
        "bytes_skipped": decoder.bytes_skipped,
        "trailing_bytes": decoder.buffered,
    }


def _uhf_view(frame: Any) -> dict[str, Any]:
    from devices import uhf

    view: dict[str, Any] = {
        "frame_type": frame.frame_type,
        "command": f"0x{frame.command:02X}",
        "params": frame.params.hex().upper(),
    }
    if uhf.is_tag_notification(frame):
        read = uhf.parse_tag_notification(frame)
        view["tag"] = None if read is None else {"epc": read.epc, "rssi": read.rssi, "pc": f"0x{read.pc:04X}"}
        if read is None:
            view["error"] = "corrupt tag read (PC length or EPC CRC-16 mismatch)"
    code = uhf.parse_error(frame)
    if code is not None:
        view["error_code"] = f"0x{code:02X}"
        view["error"] = uhf.ERROR_NAMES.get(code, "unknown")
    return view


def _rdm6300_view(frame: Any) -> dict[str, Any]:
    return {
        "version": f"0x{frame.version:02X}",
        "tag_id": f"0x{frame.tag_id:08X}",
        "card_hex": frame.card_hex,
        "card_number": frame.card_number,
    }


def _frames_text(result: dict[str, Any]) -> str:
    frames = result["frames"]
    parts = [f"{result['protocol']}: {len(frames)} frame(s)"]
    parts += [f"\nframe {i}\n{key_values(frame)}" for i, frame in enumerate(frames, start=1)]
    return "\n".join(parts)


def cmd_decode_frame(args: argparse.Namespace) -> int:
    data = _hex_bytes(args.hex)
    result: dict[str, Any] = {"protocol": args.protocol}
    if args.protocol == "uhf":
        from devices.uhf import UhfFrameDecoder

        result.update(_decode_stream(UhfFrameDecoder(), data, _uhf_view))
    elif args.protocol == "pn532":
        from devices.pn532 import Pn532FrameDecoder, frame_to_dict

        result.update(_decode_stream(Pn532FrameDecoder(), data, frame_to_dict))
    elif args.protocol == "rdm6300":
        from devices.rdm6300 import Rdm6300Decoder

        result.update(_decode_stream(Rdm6300Decoder(), data, _rdm6300_view))
    elif args.protocol == "chafon":
        from devices import chafon

        decoder = chafon.ChafonDecoder(responses=not args.from_host)
        result.update(_decode_stream(decoder, data, lambda frame: chafon.frame_to_dict(frame, args.variant)))
    else:
        from devices.modbus import decode_rtu_frame

        result["frames"] = [decode_rtu_frame(data)]
    emit(args, result, _frames_text)
    return 0


# --- parser -------------------------------------------------------------------------------------


def _add_decode_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from devices.mqtt_registry import format_names

    decode = commands.add_parser(
        "decode", help="decode EPCs, MQTT payloads and serial frames"
    ).add_subparsers(dest="decode_command", required=True)
    epc = decode.add_parser("epc", help="GS1 EPC hex -> identity (one JSON object per line)")
    epc.add_argument("hex", nargs="+", help="EPC as hex, e.g. 3074257BF7194E4000001A85")
    epc.set_defaults(handler=_guarded(cmd_decode_epc))

    mqtt = decode.add_parser("mqtt", help="an MQTT sensor message -> normalized readings (JSON list)")
    mqtt.add_argument("--topic", required=True)
    mqtt.add_argument("--payload", required=True, help="the payload text, or - to read it from stdin")
    mqtt.add_argument(
        "--format", help=f"firmware format: {', '.join(format_names())} (default: inferred from the topic)"
    )
    mqtt.add_argument("--quantity", help="what a plain-value payload measures (ESPHome), e.g. temperature")
    mqtt.set_defaults(handler=_guarded(cmd_decode_mqtt))

    frame = decode.add_parser("frame", help="serial bytes (hex) -> decoded frames (JSON)")
    frame.add_argument("--protocol", required=True, choices=["uhf", "pn532", "rdm6300", "modbus", "chafon"])
    frame.add_argument("--variant", choices=["18", "288"], default="18", help="chafon: tag list layout")
    frame.add_argument("--from-host", action="store_true", help="chafon: host commands, not reader answers")
    frame.add_argument("hex", nargs="+", help="the bytes as hex; spaces or colons between bytes are fine")
    frame.set_defaults(handler=_guarded(cmd_decode_frame))
