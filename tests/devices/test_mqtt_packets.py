"""The sans-I/O MQTT codec: round trips in any split, malformed streams, paho as the oracle."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.mqtt_packets import (
    MQTT_V5,
    MQTT_V311,
    PUBACK,
    PUBREL,
    Ack,
    Connack,
    Disconnect,
    MqttPacketDecoder,
    OversizedPublish,
    Pingresp,
    Publish,
    Suback,
    encode_ack,
    encode_connect,
    encode_publish,
    encode_subscribe,
    topic_matches,
)

topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"), max_size=40)
publishes = st.builds(
    Publish,
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.integers(0, 2),
    packet_id=st.integers(1, 0xFFFF),
    retain=st.booleans(),
)


def _wire(p: Publish, version: int) -> bytes:
    return encode_publish(
        p.topic, p.payload, qos=p.qos, packet_id=p.packet_id, retain=p.retain, version=version
    )


def _expected(p: Publish) -> Publish:
    return Publish(p.topic, p.payload, p.qos, p.packet_id if p.qos else 0, p.retain)


@settings(max_examples=200, deadline=None)
@given(st.lists(publishes, max_size=20), st.sampled_from([MQTT_V311, MQTT_V5]), st.data())
def test_publishes_round_trip_whatever_the_read_boundaries(
    packets: list[Publish], version: int, data: st.DataObject
) -> None:
    stream = b"".join(_wire(p, version) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = MqttPacketDecoder(version)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == [_expected(p) for p in packets]
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([MQTT_V311, MQTT_V5]))
def test_garbage_is_a_decode_error_or_incomplete_never_a_crash(noise: bytes, version: int) -> None:
    decoder = MqttPacketDecoder(version, max_packet_bytes=1000)
    try:
        packets = decoder.feed(noise)
    except DecodeError:
        return
    assert all(isinstance(p, Publish | Connack | Ack | Suback | Pingresp | Disconnect) for p in packets)
    assert decoder.buffered <= len(noise)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.builds(Publish, topic=topics, payload=st.binary(max_size=3000), qos=st.integers(0, 2),
                       packet_id=st.integers(1, 0xFFFF), retain=st.booleans()), max_size=8),
    st.sampled_from([MQTT_V311, MQTT_V5]),
    st.data(),
)  # fmt: skip
def test_oversized_publishes_are_read_past_and_reported_whatever_the_read_boundaries(
    packets: list[Publish], version: int, data: st.DataObject
) -> None:
    """A PUBLISH over the limit does not end the stream (it did: the edge reconnected forever);
    it comes out as an OversizedPublish with its topic, QoS, id, size and first bytes, and its
    payload is never buffered."""
    limit = 1000
    wires = [_wire(p, version) for p in packets]
    stream = b"".join(wires)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = MqttPacketDecoder(version, max_packet_bytes=limit)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
        assert decoder.buffered <= limit + 2 + 4 + len(stream[start:end])
    expected: list[Publish] = []
    for p, wire in zip(packets, wires, strict=True):
        header = 2 if len(wire) - 2 < 128 else 3 if len(wire) - 3 < 16384 else 4
        size = len(wire) - header
        if size > limit:
            pid = p.packet_id if p.qos else 0
            expected.append(OversizedPublish(p.topic, p.payload[:256], p.qos, pid, p.retain, False, size))
        else:
            expected.append(_expected(p))
    assert got == expected
    assert decoder.buffered == 0


def test_v5_publish_properties_are_skipped() -> None:
    # PUBLISH QoS 1, topic "a/b", id 7, properties: content type "json" (0x03) + user property pair.
    props = b"\x03\x00\x04json" + b"\x26\x00\x01k\x00\x01v"
    body = b"\x00\x03a/b\x00\x07" + bytes([len(props)]) + props + b'{"t":1}'
    (packet,) = MqttPacketDecoder(MQTT_V5).feed(bytes([0x32, len(body)]) + body)
    assert packet == Publish("a/b", b'{"t":1}', 1, 7)


def test_connack_suback_acks_and_disconnect() -> None:
    v5 = MqttPacketDecoder(MQTT_V5)
    connack = b"\x20\x09\x01\x00\x06\x21\x00\x10\x1f\x00\x00"  # session present, Receive Maximum 16
    suback = b"\x90\x05\x00\x01\x00\x01\x87"  # id 1: granted QoS 1, then "not authorized"
    disconnect = b"\xe0\x0a\x8b\x08\x1f\x00\x05bye!!"  # server shutting down, reason string
    packets = v5.feed(connack + suback + b"\x40\x02\x00\x05" + b"\x62\x02\x00\x06" + b"\xd0\x00" + disconnect)
    assert packets == [
        Connack(True, 0, 16, ""),
        Suback(1, (1, 0x87)),
        Ack(PUBACK, 5),
        Ack(PUBREL, 6),
        Pingresp(),
        Disconnect(0x8B, "bye!!"),
    ]
    assert MqttPacketDecoder(MQTT_V311).feed(b"\x20\x02\x00\x05") == [Connack(False, 5)]  # not authorized


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "remaining length"),
        (b"\x90\xff\xff\x7f", "exceeds the limit"),  # only a PUBLISH is read past (see below)
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x32\x05\x00\x01a\x00\x00", "malformed PUBLISH"),  # QoS 1 with packet id 0
        (b"\x30\x05\x00\x02\xff\xfe\x00", "not UTF-8"),
        (b"\x10\x00", "unexpected MQTT packet type 1"),  # a CONNECT from the "broker"
        (b"\x20\x01\x00", "CONNACK too short"),
    ],
)
def test_malformed_packets_are_refused(stream: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        MqttPacketDecoder(MQTT_V311, max_packet_bytes=1 << 16).feed(stream)


def test_encoders_match_the_specification_bytes() -> None:
    assert encode_ack(PUBACK, 0x1234) == b"\x40\x02\x12\x34"
    assert encode_ack(PUBREL, 1) == b"\x62\x02\x00\x01"
    assert encode_subscribe(1, [("a/#", 1)], version=MQTT_V311) == b"\x82\x08\x00\x01\x00\x03a/#\x01"
    assert encode_connect("c", version=MQTT_V311, keepalive_s=30) == (
        b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x1e\x00\x01c"
    )
    v5 = encode_connect("c", username="u", password="p", session_expiry_s=60, receive_maximum=100)
    # flags: username + password, no clean start; properties: session expiry 60, receive maximum 100
    assert v5[9] == 0xC0
    assert v5[12:21] == b"\x08\x11\x00\x00\x00\x3c\x21\x00\x64"
    assert v5.endswith(b"\x00\x01c\x00\x01u\x00\x01p")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "+", "#", "", "$SYS"]), min_size=1, max_size=4),
    st.lists(st.sampled_from(["a", "b", "c", "", "$SYS"]), min_size=1, max_size=4),
)
def test_topic_matching_agrees_with_paho(filter_levels: list[str], topic_levels: list[str]) -> None:
    if "#" in filter_levels[:-1]:
        return  # "#" only as the last level: not a valid filter
    topic_filter, topic = "/".join(filter_levels), "/".join(topic_levels)
    assert topic_matches(topic_filter, topic) == paho.topic_matches_sub(topic_filter, topic)
