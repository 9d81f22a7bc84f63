"""Alerts published to MQTT ``shelfsense/alerts/<site>`` (QoS 1, JSON of :meth:`AlertMessage.to_json`).

paho runs its network loop in its own thread; it reaches asyncio only through futures resolved
with ``loop.call_soon_threadsafe``. paho reconnects by itself (capped backoff); a publish while the
broker is away fails this attempt and is retried by the channel's :class:`RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from pydantic import SecretStr

from cloud.notify.base import (
    AlertMessage,
    Attempt,
    ChannelConfigError,
    DeliveryLog,
    DeliveryResult,
    RetryPolicy,
    deliver_with_retries,
)
from cloud.notify.destinations import Destinations
from cloud.notify.registry import register_channel
from shelfsense.config import ChannelSettingsBase, plain_to_remote
from shelfsense.redact import mask_url

log = logging.getLogger(__name__)
TOPIC_PREFIX = "shelfsense/alerts"


def alert_topic(site_id: str, prefix: str = TOPIC_PREFIX) -> str:
    if any(c in site_id for c in "+#/") or not site_id:
        raise ChannelConfigError(f"site id {site_id!r} cannot be an MQTT topic level")
    return f"{prefix}/{site_id}"


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MqttChannel:
    name = "mqtt"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = TOPIC_PREFIX,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        qos: int = 1,
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        log: DeliveryLog | None = None,
        name: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ChannelConfigError(f"not an mqtt:// or mqtts:// URL: {mask_url(url)!r}")
        self.host, self.tls = parts.hostname, parts.scheme == "mqtts"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.prefix, self.qos, self.timeout_s = prefix, qos, timeout_s
        self.retry = retry or RetryPolicy()
        self.log = log
        if name:
            self.name = name
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self._client.username_pw_set(username, password)
        if self.tls:
            self._client.tls_set()
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._early_acks: set[int] = set()
        self._connected: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    # --- paho thread -> asyncio ---------------------------------------------------------------

    def _resolve(self, future: asyncio.Future[None] | None) -> None:
        if future is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(_set_done, future)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            log.info("alert MQTT connected to %s:%s", self.host, self.port)
            self._resolve(self._connected)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        log.warning("alert MQTT connection lost (%s)", reason)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._expect_reconnect)

    def _expect_reconnect(self) -> None:
        """Sends wait for the next CONNACK again (paho reconnects by itself)."""
        if self._connected is not None and self._connected.done() and self._loop is not None:
            self._connected = self._loop.create_future()
            if self._client.is_connected():  # reconnected before this ran
                self._connected.set_result(None)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            future = self._waiters.pop(mid, None)
            if future is None:
                self._early_acks.add(mid)
        self._resolve(future)

    # --- asyncio side -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._started = True

    async def aclose(self) -> None:
        if self._started:
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)
            self._started = False

    async def _attempt(self, alert: AlertMessage) -> Attempt:
        await self.start()
        assert self._connected is not None and self._loop is not None
        if not self._client.is_connected():
            try:
                await asyncio.wait_for(asyncio.shield(self._connected), self.timeout_s)
            except TimeoutError:
                return Attempt(False, error=f"broker {self.host}:{self.port} unreachable", retryable=True)
        payload = json.dumps(alert.to_json(), separators=(",", ":"))
        future: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            info = self._client.publish(alert_topic(alert.site_id, self.prefix), payload, qos=self.qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return Attempt(False, error=f"publish failed: {mqtt.error_string(info.rc)}", retryable=True)
            if self.qos == 0 or info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                return Attempt(True)
            self._waiters[info.mid] = future
        try:
            await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            with self._lock:
                self._waiters.pop(info.mid, None)
            return Attempt(False, error="no PUBACK in time", retryable=True)
        return Attempt(True)

    async def send(self, alert: AlertMessage) -> DeliveryResult:
        return await deliver_with_retries(
            self.name, alert, lambda: self._attempt(alert), self.retry, self.log
        )


class MqttChannelSettings(ChannelSettingsBase):
    """``type = "mqtt"``: alerts published to ``shelfsense/alerts/<site>`` on the broker at ``url``."""

    type: Literal["mqtt"] = "mqtt"
    url: str
    username: str | None = None
    password: SecretStr | None = None

    def insecure(self, key: str) -> list[str]:
        if plain_to_remote(self.url, "mqtts"):
            return [f"{key}.url is not mqtts:// for a non-loopback broker"]
        return []


def _build(config: MqttChannelSettings, destinations: Destinations) -> MqttChannel:
    destinations.check_host(urlsplit(config.url).hostname or "")
    password = config.password.get_secret_value() if config.password else None
    return MqttChannel(config.url, username=config.username, password=password, name=config.name)


register_channel("mqtt", MqttChannelSettings, _build)
