"""LLRP 1.0.1 ROSpec / AISpec triggers and the reader events that report them, sans-I/O.

What a reader needs to run a ROSpec the way the client asked (section numbers of LLRP 1.0.1):

* ROSpecStartTrigger (16.2.4.1.1.1, type 179): 0 Null (START_ROSPEC starts it), 1 Immediate (as
  soon as it is enabled), 2 Periodic (PeriodicTriggerValue 16.2.4.1.1.1.1, type 180: first run
  ``Offset`` ms after enabling, then every ``Period`` ms), 3 GPI (16.2.4.1.1.1.2, type 181).
* ROSpecStopTrigger (16.2.4.1.1.2, type 182): 0 Null (runs until its AISpecs are done or it is
  stopped), 1 Duration (``DurationTriggerValue`` ms), 2 GPI with timeout.
* AISpecStopTrigger (16.2.4.2.1, type 184): 0 Null (ends with the ROSpec), 1 Duration, 2 GPI with
  timeout, 3 Tag observation: TagObservationTrigger (16.2.4.2.1.1, type 185) -- 0 upon N tags,
  1 upon no new tag for T ms, 2 upon N attempts (inventory rounds), 3 upon N unique tags, 4 upon no
  new unique tag for T ms -- each with a ``Timeout`` ms (0 = none).
* READER_EVENT_NOTIFICATION (13.2.6.x) with ROSpecEvent (16.2.7.6.3, type 249: 0 start, 1 end,
  2 preempted) and AISpecEvent (16.2.7.6.7, type 254: 0 end of AISpec), sent only for event types
  the client enabled in SET_READER_CONFIG's ReaderEventNotificationSpec (16.2.6.3, type 244, with
  EventNotificationState 16.2.6.3.1, type 245: 2 = ROSpec event, 6 = AISpec event).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from devices.errors import DecodeError
from devices.llrp import LlrpMessage, MsgType, Param, ParamType, encode_message, iter_params, tlv

__all__ = [
    "AiSpecTrigger",
    "RoSpecTriggers",
    "StartTrigger",
    "StopTrigger",
    "TagObservation",
    "aispec_event",
    "notification_states",
    "parse_triggers",
    "rospec_event",
]

START_NULL: Final = 0
START_IMMEDIATE: Final = 1
START_PERIODIC: Final = 2
START_GPI: Final = 3
STOP_NULL: Final = 0
STOP_DURATION: Final = 1
STOP_GPI: Final = 2
AI_STOP_NULL: Final = 0
AI_STOP_DURATION: Final = 1
AI_STOP_GPI: Final = 2
AI_STOP_TAG_OBSERVATION: Final = 3
OBS_N_TAGS: Final = 0
OBS_SILENCE: Final = 1
OBS_N_ATTEMPTS: Final = 2
OBS_N_UNIQUE: Final = 3
OBS_UNIQUE_SILENCE: Final = 4
ROSPEC_STARTED: Final = 0
ROSPEC_ENDED: Final = 1
EVENT_ROSPEC: Final = 2
EVENT_AISPEC: Final = 6

PERIODIC_TRIGGER_VALUE: Final = 180
GPI_TRIGGER_VALUE: Final = 181
AISPEC_STOP_TRIGGER: Final = 184
TAG_OBSERVATION_TRIGGER: Final = 185
READER_EVENT_NOTIFICATION_SPEC: Final = 244
EVENT_NOTIFICATION_STATE: Final = 245
ROSPEC_EVENT: Final = 249
AISPEC_EVENT: Final = 254


@dataclass(frozen=True, slots=True)
class StartTrigger:
    kind: int = START_NULL
    offset_ms: int = 0
    period_ms: int = 0


@dataclass(frozen=True, slots=True)
class StopTrigger:
    kind: int = STOP_NULL
    duration_ms: int = 0  # Duration; for GPI, the GPI timeout


@dataclass(frozen=True, slots=True)
class TagObservation:
    kind: int
    n_tags: int
    n_attempts: int
    t_ms: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class AiSpecTrigger:
    kind: int = AI_STOP_NULL
    duration_ms: int = 0  # Duration; for GPI, the GPI timeout
    observation: TagObservation | None = None


@dataclass(frozen=True, slots=True)
class RoSpecTriggers:
    start: StartTrigger = StartTrigger()
    stop: StopTrigger = StopTrigger()
    aispecs: tuple[AiSpecTrigger, ...] = field(default_factory=tuple)


def _sub(params: list[Param], ptype: int) -> Param | None:
    return next((p for p in params if p.type == ptype), None)


def _gpi_timeout(params: list[Param]) -> int:
    gpi = _sub(params, GPI_TRIGGER_VALUE)
    if gpi is None or len(gpi.value) < 7:
        return 0
    return int(struct.unpack_from(">HBI", gpi.value)[2])


def _start(param: Param | None) -> StartTrigger:
    if param is None or not param.value:
        return StartTrigger()
    kind = param.value[0]
    if kind == START_PERIODIC:
        periodic = _sub(list(iter_params(param.value[1:])), PERIODIC_TRIGGER_VALUE)
        if periodic is None or len(periodic.value) < 8:
            raise DecodeError("a Periodic ROSpecStartTrigger needs a PeriodicTriggerValue")
        offset, period = struct.unpack_from(">II", periodic.value)
        return StartTrigger(kind, offset, period)
    return StartTrigger(kind)


def _stop(param: Param | None) -> StopTrigger:
    if param is None or len(param.value) < 5:
        return StopTrigger()
    kind, duration = struct.unpack_from(">BI", param.value)
    if kind == STOP_GPI:
        duration = _gpi_timeout(list(iter_params(param.value[5:])))
    return StopTrigger(kind, duration)


def _aispec_trigger(aispec: Param) -> AiSpecTrigger:
    count = int.from_bytes(aispec.value[:2], "big")
    subs = list(iter_params(aispec.value[2 + 2 * count :]))
    stop = _sub(subs, AISPEC_STOP_TRIGGER)
    if stop is None or len(stop.value) < 5:
        return AiSpecTrigger()
    kind, duration = struct.unpack_from(">BI", stop.value)
    inner = list(iter_params(stop.value[5:]))
    if kind == AI_STOP_GPI:
        return AiSpecTrigger(kind, _gpi_timeout(inner))
    if kind == AI_STOP_TAG_OBSERVATION:
        obs = _sub(inner, TAG_OBSERVATION_TRIGGER)
        if obs is None or len(obs.value) < 12:
            raise DecodeError("a Tag observation AISpecStopTrigger needs a TagObservationTrigger")
        o_kind, _, n_tags, n_attempts, t_ms, timeout = struct.unpack_from(">BBHHHI", obs.value)
        return AiSpecTrigger(kind, 0, TagObservation(o_kind, n_tags, n_attempts, t_ms, timeout))
    return AiSpecTrigger(kind, duration)


def parse_triggers(msg: LlrpMessage) -> RoSpecTriggers:
    """The start / stop triggers of an ADD_ROSPEC's ROSpec and each AISpec's stop trigger."""
    rospec = next((p for p in iter_params(msg.body) if p.type == ParamType.ROSPEC), None)
    if rospec is None or len(rospec.value) < 6:
        raise DecodeError("ADD_ROSPEC without a ROSpec parameter")
    subs = list(iter_params(rospec.value[6:]))
    boundary = _sub(subs, ParamType.RO_BOUNDARY_SPEC)
    start, stop = StartTrigger(), StopTrigger()
    if boundary is not None:
        inner = list(iter_params(boundary.value))
        start = _start(_sub(inner, ParamType.ROSPEC_START_TRIGGER))
        stop = _stop(_sub(inner, ParamType.ROSPEC_STOP_TRIGGER))
    aispecs = tuple(_aispec_trigger(p) for p in subs if p.type == ParamType.AISPEC)
    return RoSpecTriggers(start, stop, aispecs)


def notification_states(msg: LlrpMessage) -> dict[int, bool]:
    """Event type -> enabled, from a SET_READER_CONFIG's ReaderEventNotificationSpec (if any)."""
    states: dict[int, bool] = {}
    if len(msg.body) < 1:
        return states
    for param in iter_params(msg.body[1:]):
        if param.type != READER_EVENT_NOTIFICATION_SPEC:
            continue
        for state in iter_params(param.value):
            if state.type == EVENT_NOTIFICATION_STATE and len(state.value) >= 3:
                event_type, flags = struct.unpack_from(">HB", state.value)
                states[event_type] = bool(flags & 0x80)
    return states


def _notification(message_id: int, utc_us: int, event: bytes) -> bytes:
    data = tlv(ParamType.UTC_TIMESTAMP, struct.pack(">Q", utc_us)) + event
    return encode_message(
        MsgType.READER_EVENT_NOTIFICATION, message_id, tlv(ParamType.READER_EVENT_NOTIFICATION_DATA, data)
    )


def rospec_event(message_id: int, utc_us: int, event_type: int, rospec_id: int) -> bytes:
    """READER_EVENT_NOTIFICATION with a ROSpecEvent (start / end of a ROSpec)."""
    return _notification(message_id, utc_us, tlv(ROSPEC_EVENT, struct.pack(">BII", event_type, rospec_id, 0)))


def aispec_event(message_id: int, utc_us: int, rospec_id: int, spec_index: int) -> bytes:
    """READER_EVENT_NOTIFICATION with an AISpecEvent (end of the AISpec at 1-based ``spec_index``)."""
    return _notification(message_id, utc_us, tlv(AISPEC_EVENT, struct.pack(">BIH", 0, rospec_id, spec_index)))
