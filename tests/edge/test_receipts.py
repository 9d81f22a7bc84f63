"""The in-memory device-time window of the MQTT transport (edge.receipts.DeviceTimes), pure."""

from __future__ import annotations

from edge.receipts import DeviceTimes, digest


def test_a_key_is_new_once_and_forgotten_unless_its_batch_was_committed() -> None:
    times = DeviceTimes()
    assert times.first_time(("s", None, "temperature", 1))
    assert not times.first_time(("s", None, "temperature", 1))
    times.end_batch(1)
    assert times.first_time(("s", None, "temperature", 2))
    times.end_batch(2)
    times.confirm(1)  # batch 1 committed, batch 2 not
    times.forget_unconfirmed()  # the connection dropped
    assert not times.first_time(("s", None, "temperature", 1))
    assert times.first_time(("s", None, "temperature", 2))  # its redelivery is a first time again


def test_the_window_is_bounded() -> None:
    times = DeviceTimes(capacity=3)
    for n in range(5):
        assert times.first_time(("s", None, "humidity", n))
    assert times.first_time(("s", None, "humidity", 0))  # evicted: oldest first
    assert not times.first_time(("s", None, "humidity", 4))


def test_digest_depends_on_topic_and_payload() -> None:
    assert digest("a/b", b"{}") == digest("a/b", b"{}")
    assert len({digest("a/b", b"{}"), digest("a/c", b"{}"), digest("a/b", b"{ }")}) == 3
