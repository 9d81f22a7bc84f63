"""Alert delivery channels and the InfluxDB writer, built from settings (secrets unwrapped here)."""

from __future__ import annotations

from urllib.parse import urlsplit

from cloud.influx import InfluxWriter, v1_writer, v2_writer
from cloud.notify import (
    Channel,
    DingTalkChannel,
    EmailChannel,
    FeishuChannel,
    MqttChannel,
    WebhookChannel,
    WeComChannel,
)
from cloud.notify.base import ChannelConfigError
from cloud.notify.destinations import ANY_PUBLIC, Destinations
from shelfsense.config import (
    ChannelSettings,
    DingTalkChannelSettings,
    FeishuChannelSettings,
    InfluxSettings,
    WebhookChannelSettings,
    WeComChannelSettings,
)


def build_channel(config: ChannelSettings, destinations: Destinations = ANY_PUBLIC) -> Channel:
    """A delivery channel from its ``[[cloud.coldchain.channels]]`` entry (secrets unwrapped here);
    :class:`DestinationRefused` when its host is not an allowed destination."""
    if config.type == "smtp":
        destinations.check_host(config.host)
        password = config.password.get_secret_value() if config.password else None
        return EmailChannel(
            config.host,
            config.port,
            config.from_addr,
            config.to,
            username=config.username,
            password=password,
            starttls=config.starttls,
            name=config.name,
        )
    if config.type not in ("mqtt", "webhook", "wecom", "dingtalk", "feishu"):  # never an MQTT guess
        raise ChannelConfigError(f"unknown channel type {config.type!r}")
    url = config.url.get_secret_value() if config.type == "wecom" else config.url
    destinations.check_host(urlsplit(url).hostname or "")
    if config.type == "mqtt":
        password = config.password.get_secret_value() if config.password else None
        return MqttChannel(url, username=config.username, password=password, name=config.name)
    return _http_channel(config, url, destinations)


def _http_channel(
    config: WebhookChannelSettings | DingTalkChannelSettings | WeComChannelSettings | FeishuChannelSettings,
    url: str,
    destinations: Destinations,
) -> Channel:
    if config.type == "webhook":
        secret = config.secret.get_secret_value()
        return WebhookChannel(url, secret, name=config.name, destinations=destinations)
    if config.type == "wecom":
        return WeComChannel(url, name=config.name, destinations=destinations)
    secret_or_none = config.secret.get_secret_value() if config.secret else None
    if config.type == "dingtalk":
        return DingTalkChannel(url, secret_or_none, name=config.name, destinations=destinations)
    if config.type == "feishu":
        return FeishuChannel(url, secret_or_none, name=config.name, destinations=destinations)
    raise ChannelConfigError(f"unknown channel type {config.type!r}")


def build_influx(config: InfluxSettings) -> InfluxWriter:
    if config.token is not None and config.org and config.bucket:
        return v2_writer(
            config.url, org=config.org, bucket=config.bucket, token=config.token.get_secret_value()
        )
    assert config.database is not None  # the settings validator guarantees v1 or v2
    password = config.password.get_secret_value() if config.password else None
    return v1_writer(
        config.url,
        config.database,
        retention_policy=config.retention_policy,
        username=config.username,
        password=password,
    )


__all__ = ["build_channel", "build_influx"]
