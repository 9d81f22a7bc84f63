"""Alert channel registry: a channel type registered by its own module is configurable and
buildable with no edit anywhere else, and a type nobody registered is refused, never guessed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from cloud.notify import AlertMessage, DeliveryResult, build_channel, channel_types, register_channel
from cloud.notify.base import ChannelConfigError
from cloud.notify.destinations import Destinations
from cloud.notify.registry import unregister_channel
from shelfsense.config import ChannelSettingsBase, ConfigError, insecure_settings, load_settings


class PagerChannel:
    """A toy channel: remembers what it was asked to send."""

    def __init__(self, number: str, name: str) -> None:
        self.number, self.name = number, name
        self.sent: list[AlertMessage] = []

    async def send(self, alert: AlertMessage) -> DeliveryResult:
        self.sent.append(alert)
        return DeliveryResult(
            self.name, alert.alert_id, alert.delivery_id, ok=True, attempts=1, elapsed_s=0.0
        )


class PagerChannelSettings(ChannelSettingsBase):
    type: Literal["pager"] = "pager"
    number: str

    def insecure(self, key: str) -> list[str]:
        return [f"{key}.number is a test number"] if self.number.startswith("555") else []


def _build(config: PagerChannelSettings, destinations: Destinations) -> PagerChannel:
    return PagerChannel(config.number, config.name)


@pytest.fixture
def pager() -> Iterator[None]:
    register_channel("pager", PagerChannelSettings, _build)  # the one registration line
    yield
    unregister_channel("pager")


def _config(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text("demo = true\n[[cloud.coldchain.channels]]\n" + entry)
    return path


def test_a_registered_channel_type_is_configurable_and_buildable(tmp_path: Path, pager: None) -> None:
    assert "pager" in channel_types()
    settings = load_settings(_config(tmp_path, 'type = "pager"\nname = "night"\nnumber = "5551234"\n'))
    entry = settings.cloud.coldchain.channels[0]
    assert isinstance(entry, PagerChannelSettings)
    assert entry.number == "5551234"
    channel = build_channel(entry)
    assert isinstance(channel, PagerChannel)
    assert (channel.name, channel.number) == ("night", "5551234")
    # its own safety rule joins the settings' checks; its fields are in the effective config
    assert insecure_settings(settings) == ["cloud.coldchain.channels.0.number is a test number"]
    assert settings.model_dump()["cloud"]["coldchain"]["channels"][0]["number"] == "5551234"


def test_a_registered_type_validates_its_own_fields(tmp_path: Path, pager: None) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(_config(tmp_path, 'type = "pager"\nname = "night"\n'))
    assert "cloud.coldchain.channels.0" in str(exc.value)
    assert "number: Field required" in str(exc.value)


def test_an_unknown_channel_type_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(_config(tmp_path, 'type = "pager"\nname = "night"\nnumber = "1"\n'))
    message = str(exc.value)
    assert "unknown channel type 'pager'" in message
    assert "'webhook'" in message and "'smtp'" in message and "'mqtt'" in message
    odd = PagerChannelSettings(name="odd", number="1")
    with pytest.raises(ChannelConfigError, match="unknown channel type 'pager'"):
        build_channel(odd)


def test_a_type_registers_once(pager: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_channel("pager", PagerChannelSettings, _build)
    with pytest.raises(ValueError, match="defaults to 'pager', not 'beeper'"):
        register_channel("beeper", PagerChannelSettings, _build)
