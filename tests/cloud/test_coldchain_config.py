"""``[cloud.coldchain]`` / ``[cloud.influx]`` settings: validation, secrets, channel building, audience."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.influx import InfluxV1Sink, InfluxV2Sink, build_influx
from cloud.notify import (
    DingTalkChannel,
    EmailChannel,
    FeishuChannel,
    MqttChannel,
    WebhookChannel,
    WeComChannel,
    build_channel,
)
from cloud.notify.destinations import Destinations
from cloud.notify.notifier import Notifier
from shelfsense.config import (
    ColdChainSettings,
    ConfigError,
    InfluxSettings,
    Settings,
    effective_config,
    load_settings,
)

TOML = """
[cloud.coldchain]
single_event_s = 1800
# An allow-list is exhaustive: the loopback test servers and the vendors' robot hosts.
allowed_destinations = ["127.0.0.1", "oapi.dingtalk.com", "qyapi.weixin.qq.com", "open.feishu.cn"]
contact_groups = [["ops", "robot"], ["mail"], ["bus"]]

[[cloud.coldchain.channels]]
type = "webhook"
name = "ops"
url = "http://127.0.0.1:9/hook"
secret = "hook-secret-0123456789"

[[cloud.coldchain.channels]]
type = "dingtalk"
name = "robot"
url = "https://oapi.dingtalk.com/robot/send?access_token=abc"
secret = "SECxyz0123456789abcdef"

[[cloud.coldchain.channels]]
type = "wecom"
name = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"

[[cloud.coldchain.channels]]
type = "feishu"
name = "lark"
url = "https://open.feishu.cn/open-apis/bot/v2/hook/x"
secret = "lark-secret-0123456789"

[[cloud.coldchain.channels]]
type = "smtp"
name = "mail"
host = "127.0.0.1"
port = 2525
from_addr = "alerts@example.com"
to = ["qa@example.com"]
password = "mail-secret"

[[cloud.coldchain.channels]]
type = "mqtt"
name = "bus"
url = "mqtt://127.0.0.1:1883"

[cloud.influx]
url = "http://127.0.0.1:8086"
database = "shelfsense"
retention_policy = "autogen"
"""


def test_toml_channels_build_and_secrets_stay_masked(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(TOML)
    settings = load_settings(path)
    cs = settings.cloud.coldchain
    allowed = Destinations.parse(cs.allowed_destinations)
    channels = {c.name: build_channel(c, allowed) for c in cs.channels}
    kinds = {name: type(channel) for name, channel in channels.items()}
    assert kinds == {
        "ops": WebhookChannel,
        "robot": DingTalkChannel,
        "wecom": WeComChannel,
        "lark": FeishuChannel,
        "mail": EmailChannel,
        "bus": MqttChannel,
    }
    mail = channels["mail"]
    assert isinstance(mail, EmailChannel)
    assert (mail.port, mail.password, mail.recipients) == (2525, "mail-secret", ["qa@example.com"])
    shown = str(effective_config(settings))
    for secret in ("hook-secret", "SECxyz", "lark-secret", "mail-secret", "key=k"):
        assert secret not in shown
    assert settings.cloud.influx is not None
    writer = build_influx(settings.cloud.influx)
    assert isinstance(writer.sink, InfluxV1Sink)


def test_audience_follows_contact_groups(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(TOML)
    runtime = Notifier(load_settings(path).cloud.coldchain, engine=None)  # type: ignore[arg-type]
    assert runtime.audience("raised", 0) == ("ops", "robot")
    assert runtime.audience("escalated", 1) == ("mail",)
    assert runtime.audience("escalated", 2) == ("bus",)
    assert runtime.audience("acknowledged", 1) == ("ops", "robot", "mail")
    assert runtime.audience("resolved", 9) == ("ops", "robot", "mail", "bus")  # capped at the last group
    no_groups = Notifier(Settings().cloud.coldchain, engine=None)  # type: ignore[arg-type]
    assert no_groups.audience("raised", 0) == ()


def test_invalid_coldchain_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown channel 'nobody'"):
        ColdChainSettings(contact_groups=[["nobody"]])
    with pytest.raises(ValueError, match="unique"):
        ColdChainSettings.model_validate(
            {
                "channels": [
                    {"type": "wecom", "name": "a", "url": "https://x"},
                    {"type": "wecom", "name": "a", "url": "https://y"},
                ]
            }
        )
    with pytest.raises(ValueError, match="org, bucket and token"):
        InfluxSettings(url="http://x", org="o")
    with pytest.raises(ValueError, match="needs database"):
        InfluxSettings(url="http://x")
    v2 = InfluxSettings(url="http://127.0.0.1:8086", org="o", bucket="b", token="t")
    assert isinstance(build_influx(v2).sink, InfluxV2Sink)
    path = tmp_path / "bad.toml"
    path.write_text('[cloud.coldchain]\nsingle_event_s = -1\n[[cloud.coldchain.channels]]\ntype = "pager"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "cloud.coldchain.single_event_s" in str(exc.value)
