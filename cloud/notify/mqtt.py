"""Alerts published to MQTT ``shelfsense/alerts/<site>`` (QoS 1, JSON of :meth:`AlertMessage.to_json`).

The client is the project's own (:class:`shelfsense.mqtt_session.MqttPublisher`, asyncio, no
thread): it connects on the first alert, waits for each PUBACK, and connects again on the next
attempt after the broker went away; a publish while the broker is away fails this attempt and is
retried by the channel's :class:`RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal
from urllib.parse import urlsplit

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
from devices.errors import TransportError
from devices.mqtt_packets import MQTT_V311
from shelfsense.config import ChannelSettingsBase, plain_to_remote
from shelfsense.mqtt_session import MqttPublisher, SessionOptions
from shelfsense.redact import mask_url

log = logging.getLogger(__name__)
TOPIC_PREFIX = "shelfsense/alerts"


def alert_topic(site_id: str, prefix: str = TOPIC_PREFIX) -> str:
    if any(c in site_id for c in "+#/") or not site_id:
        raise ChannelConfigError(f"site id {site_id!r} cannot be an MQTT topic level")
    return f"{prefix}/{site_id}"


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
        # MQTT 3.1.1, clean session: an empty client id lets the broker assign one.
        options = SessionOptions(
            client_id,
            version=MQTT_V311,
            keepalive_s=30,
            clean_start=True,
            username=username or None,
            password=password if username else None,
            connect_timeout_s=timeout_s,
        )
        self._publisher = MqttPublisher(url, options)

    async def start(self) -> None:
        """Nothing to start: the connection is opened by the first alert."""

    async def aclose(self) -> None:
        await self._publisher.aclose()

    async def _attempt(self, alert: AlertMessage) -> Attempt:
        payload = json.dumps(alert.to_json(), separators=(",", ":")).encode()
        topic = alert_topic(alert.site_id, self.prefix)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._publisher.connect()
        except (TransportError, TimeoutError) as exc:
            log.debug("alert MQTT broker %s:%s unreachable: %s", self.host, self.port, exc)
            return Attempt(False, error=f"broker {self.host}:{self.port} unreachable", retryable=True)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._publisher.publish(topic, payload, qos=self.qos)
        except TimeoutError:
            return Attempt(False, error="no PUBACK in time", retryable=True)
        except TransportError as exc:
            return Attempt(False, error=f"publish failed: {exc}", retryable=True)
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
