"""What the MQTT transport does with one received message: sensor lookup, decode, reject, dedup.

Separate from :mod:`edge.transports.mqtt` (the connection, flow control and acknowledgements):
this part is pure per-message work, tested without a broker (tests/edge/test_mqtt_decode.py).

Every failure to turn a message into contract readings -- a packet over the size limit, a payload
the format decoder refuses (:class:`DecodeError`, including hostile numbers), decoded values the
contract refuses (pydantic ``ValidationError``, e.g. a Tasmota channel name that is no valid id) --
is counted, noted for the reject store (:mod:`edge.rejects`) and dropped; nothing escapes to stop
the receive loop. Readings with a device time are one per (sensor, quantity, device time).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from pydantic import ValidationError

from devices.errors import DecodeError
from devices.mqtt_packets import OversizedPublish, Publish, topic_matches
from devices.mqtt_registry import decode_payload
from devices.readings import Measurement
from edge.receipts import DeviceTimes
from edge.rejects import Rejected, Rejects
from edge.supervisor import DeviceHealthState
from edge.transports import measurements_to_readings
from shelfsense.config import MqttSensorConfig
from shelfsense.contract import Event

log = logging.getLogger(__name__)

TOPIC_CACHE_MAX: Final = 10_000


class MqttIntake:
    def __init__(
        self,
        sensors: Sequence[MqttSensorConfig],
        health: DeviceHealthState,
        counters: Counter[str],
        max_packet_bytes: int,
    ) -> None:
        self.sensors = list(sensors)
        self.health = health
        self.counters = counters
        self.max_packet_bytes = max_packet_bytes
        self.device_times = DeviceTimes()
        self._topic_cache: dict[str, MqttSensorConfig | None] = {}

    def sensor_for(self, topic: str) -> MqttSensorConfig | None:
        # Topics repeat: remember the answer of the linear scan over the sensor map (bounded: a
        # flood of distinct unknown topics only clears the cache).
        try:
            return self._topic_cache[topic]
        except KeyError:
            pass
        found = next((s for s in self.sensors if topic_matches(s.topic, topic)), None)
        if len(self._topic_cache) >= TOPIC_CACHE_MAX:
            self._topic_cache.clear()
        self._topic_cache[topic] = found
        return found

    def decode(self, msg: Publish, received_at: datetime, rejects: Rejects) -> list[Event] | None:
        """The readings of one message; None when it is not a reading (unknown topic, rejected)."""
        if isinstance(msg, OversizedPublish):
            self.counters["mqtt_oversized"] += 1
            reason = f"MQTT packet of {msg.size} bytes exceeds the {self.max_packet_bytes}-byte limit"
            self._reject(msg, reason, rejects, msg.size)
            return None
        sensor = self.sensor_for(msg.topic)
        if sensor is None:
            self.counters["mqtt_unknown_topic"] += 1
            return None
        try:
            measurements = decode_payload(sensor.format, msg.topic, msg.payload, quantity=sensor.quantity)
            # A payload partly understood: its usable values go on, the rest is counted (Decoded.rejected).
            self.counters["mqtt_values_rejected"] += len(getattr(measurements, "rejected", ()))
            if measurements and measurements[0].time is not None:
                measurements = self._first_readings(sensor.sensor_id, measurements)
            return list(measurements_to_readings(measurements, sensor.sensor_id, sensor.zone, received_at))
        except DecodeError as exc:
            reason = str(exc)
        except ValidationError as exc:  # decoded, but not a valid contract reading (e.g. its channel id)
            reason = f"not a valid reading: {exc.errors()[0]['msg']}"
        self.counters["mqtt_malformed"] += 1
        self._reject(msg, reason, rejects)
        return None

    def _first_readings(self, sensor_id: str, measurements: list[Measurement]) -> list[Measurement]:
        """Drop readings already received with the same device time (a publisher's re-send)."""
        first = [
            m
            for m in measurements
            if m.time is None or self.device_times.first_time((sensor_id, m.channel, m.quantity, m.time))
        ]
        if len(first) < len(measurements):
            self.counters["mqtt_repeated_readings"] += len(measurements) - len(first)
        return first

    def _reject(self, msg: Publish, reason: str, rejects: Rejects, size: int | None = None) -> None:
        self.health.frame_bad()
        rejects.items.append(Rejected.of(msg.topic, reason, msg.payload, size))
        log.debug("dropping the message on %s: %s", msg.topic, reason)
