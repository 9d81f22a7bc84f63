"""Typed configuration: one TOML format for cloud and edge, overridable from the environment.

Settings are built by :func:`load_settings` (a factory, never at import). Precedence, highest first:
keyword overrides given to the factory (command-line flags), ``SHELFSENSE_*`` environment variables
(nested with ``__``, e.g. ``SHELFSENSE_CLOUD__PORT=9000``), the TOML file, then defaults.

Insecure settings (plain HTTP to a non-loopback cloud, the demo token, no MQTT password on a
non-loopback broker) are refused unless ``demo = true``.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]
DEMO_EDGE_TOKEN_PREFIX = "demo-"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneLimits(_Section):
    """Cold-chain limits of one zone, evaluated by the edge (local alarms) and the cloud (alerts)."""

    id: Ident
    site_id: Ident = "site-1"
    min_temp_c: float | None = None
    max_temp_c: float | None = None
    max_humidity: float | None = None
    hysteresis_c: Annotated[float, Field(ge=0)] = 0.5

    @model_validator(mode="after")
    def _ordered(self) -> ZoneLimits:
        if self.min_temp_c is not None and self.max_temp_c is not None and self.min_temp_c >= self.max_temp_c:
            raise ValueError("min_temp_c must be below max_temp_c")
        return self


class CloudSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8600
    db_url: str = "sqlite+aiosqlite:///./.shelfsense/cloud.db"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    # How long a sensor may stay silent before the cloud calls its readings stale.
    stale_after_s: Annotated[float, Field(gt=0)] = 300.0


class SerialPort(_Section):
    port: str
    baudrate: Annotated[int, Field(gt=0)] = 115200


class UhfReaderConfig(SerialPort):
    """One serial UHF module (M100/R200 family). Such modules have one antenna port."""

    id: Ident
    location: Ident | None = None
    poll_interval_s: Annotated[float, Field(gt=0)] = 0.2


class LlrpAntennaConfig(_Section):
    """One antenna port of an LLRP reader and what it covers.

    ``reader_id`` is the *logical* reader its reads count for (smoothing, portals): give the outer
    and inner antenna of one portal reader different ids (``dock-1-outer`` / ``dock-1-inner``) and
    name those in ``[[edge.portals]]``. Default: the physical reader's id.
    """

    antenna: Annotated[int, Field(ge=1, le=65535)]
    reader_id: Ident | None = None
    location: Ident | None = None


class LlrpReaderConfig(_Section):
    """A fixed UHF reader (Impinj, Zebra, ...) spoken to over LLRP (TCP)."""

    id: Ident
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 5084
    location: Ident | None = None
    antennas: Annotated[list[LlrpAntennaConfig], Field(min_length=1)] = [LlrpAntennaConfig(antenna=1)]
    # None: the reader's maximum power.
    tx_power_dbm: float | None = None
    # The reader sends KEEPALIVE this often; silence for 3 intervals means the link is dead.
    keepalive_s: Annotated[float, Field(ge=1)] = 10.0
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0

    def logical_readers(self) -> dict[str, Ident | None]:
        """Logical reader id -> location, for every antenna."""
        out: dict[str, Ident | None] = {}
        for ant in self.antennas:
            out.setdefault(ant.reader_id or self.id, ant.location or self.location)
        return out

    @model_validator(mode="after")
    def _antennas_consistent(self) -> LlrpReaderConfig:
        ports = [a.antenna for a in self.antennas]
        if len(set(ports)) != len(ports):
            raise ValueError("antenna numbers must be unique")
        seen: dict[str, str | None] = {}
        for ant in self.antennas:
            rid, loc = ant.reader_id or self.id, ant.location or self.location
            if seen.setdefault(rid, loc) != loc:
                raise ValueError(f"antennas of logical reader {rid!r} name different locations")
        return self


class PortalConfig(_Section):
    """A dock door: an outer and an inner reader zone; the order of RSSI peaks gives the direction."""

    id: Ident
    outer_reader: Ident
    inner_reader: Ident
    inside_location: Ident
    outside_location: Ident | None = None
    # A tag must be unseen this long before its passage is decided.
    settle_s: Annotated[float, Field(gt=0)] = 1.5


class ModbusProbeConfig(SerialPort):
    """An RS-485 Modbus RTU temperature-humidity probe (SHT20 / XY-MD02 register map)."""

    baudrate: Annotated[int, Field(gt=0)] = 9600
    slave: Annotated[int, Field(ge=1, le=247)] = 1
    sensor_id: Ident
    zone: Ident | None = None
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0


class MqttSensorConfig(_Section):
    topic: str
    format: Literal["zigbee2mqtt", "tasmota", "shelly", "esphome", "ruuvi", "shelfsense"]
    sensor_id: Ident
    zone: Ident | None = None
    # What the value is, for formats whose payload does not say (ESPHome's plain-text state).
    quantity: Literal["temperature", "humidity", "battery", "linkquality", "pressure"] | None = None


class MqttConfig(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    # v5 gives session expiry; v3.1.1 (clean_session=False) for brokers without v5, e.g. amqtt.
    protocol: Literal["mqttv5", "mqttv311"] = "mqttv5"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600
    sensors: list[MqttSensorConfig] = []


class EdgeSettings(_Section):
    edge_id: Ident = "edge-1"
    site_id: Ident = "site-1"
    cloud_url: str = "http://127.0.0.1:8600"
    token: SecretStr | None = None
    db_path: Path = Path("./.shelfsense/edge.db")
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    sync_interval_s: Annotated[float, Field(gt=0)] = 1.0
    batch_max_events: Annotated[int, Field(ge=1, le=5000)] = 1000
    health_interval_s: Annotated[float, Field(gt=0)] = 10.0
    # Outbox budget (0 disables a limit). Past any of them the edge degrades loudly: sensor
    # telemetry, tag observations and device health are downsampled per interval (min/max/last);
    # stock events and alarms are never dropped.
    outbox_max_events: Annotated[int, Field(ge=0)] = 2_000_000
    outbox_max_mb: Annotated[float, Field(ge=0)] = 2048.0
    outbox_max_age_s: Annotated[float, Field(ge=0)] = 7 * 24 * 3600.0
    downsample_interval_s: Annotated[float, Field(gt=0)] = 300.0
    # An edge clock further than this from the cloud's (HTTP Date header) is reported as skewed.
    clock_skew_warn_s: Annotated[float, Field(gt=0)] = 5.0
    uhf_readers: list[UhfReaderConfig] = []
    portals: list[PortalConfig] = []
    modbus_probes: list[ModbusProbeConfig] = []
    mqtt: MqttConfig | None = None
    llrp_readers: list[LlrpReaderConfig] = []

    @model_validator(mode="after")
    def _portal_readers_exist(self) -> EdgeSettings:
        readers = {r.id for r in self.uhf_readers}
        llrp_logical = [rid for r in self.llrp_readers for rid in r.logical_readers()]
        if len(set(llrp_logical)) != len(llrp_logical) or readers & set(llrp_logical):
            raise ValueError("reader ids (uhf_readers and llrp_readers antennas) must be unique")
        readers |= set(llrp_logical)
        for portal in self.portals:
            for name in (portal.outer_reader, portal.inner_reader):
                if name not in readers:
                    raise ValueError(
                        f"portal {portal.id!r} names reader {name!r} "
                        "that is not in uhf_readers or llrp_readers"
                    )
        return self


class Settings(BaseSettings):
    """Everything a ShelfSense process reads; each process uses the sections it needs."""

    model_config = SettingsConfigDict(env_prefix="SHELFSENSE_", env_nested_delimiter="__", extra="forbid")

    demo: bool = False
    cloud: CloudSettings = CloudSettings()
    edge: EdgeSettings = EdgeSettings()
    zones: list[ZoneLimits] = []

    @model_validator(mode="after")
    def _refuse_insecure(self) -> Settings:
        if self.demo:
            return self
        problems = insecure_settings(self)
        if problems:
            raise ValueError("insecure settings outside demo mode: " + "; ".join(problems))
        return self


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_settings(settings: Settings) -> list[str]:
    """Settings that are fine for a demo on one machine and dangerous anywhere else."""
    problems: list[str] = []
    edge = settings.edge
    if urlsplit(edge.cloud_url).scheme == "http" and not _is_loopback(edge.cloud_url):
        problems.append("edge.cloud_url uses plain http to a non-loopback host (use https)")
    token = edge.token.get_secret_value() if edge.token else ""
    if token.startswith(DEMO_EDGE_TOKEN_PREFIX):
        problems.append("edge.token is a demo token")
    mqtt = edge.mqtt
    if mqtt is not None and not _is_loopback(mqtt.url):
        if urlsplit(mqtt.url).scheme != "mqtts":
            problems.append("edge.mqtt.url is not mqtts:// for a non-loopback broker")
        if mqtt.password is None:
            problems.append("edge.mqtt has no password for a non-loopback broker")
    return problems


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the dotted key, e.g. ``edge.uhf_readers.0.port``."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{key}: {error['msg']}")
    return "\n".join(lines)


def _settings_class_for(file_data: dict[str, Any]) -> type[Settings]:
    """A Settings subclass whose lowest-priority source is the parsed TOML file."""

    class FileBackedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, InitSettingsSource(settings_cls, file_data)

    return FileBackedSettings


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides.

    Sources are deep-merged: ``SHELFSENSE_CLOUD__PORT`` changes only the port of the file's
    ``[cloud]`` table.
    """
    file_data: dict[str, Any] = read_toml(path) if path is not None else {}
    try:
        return _settings_class_for(file_data)(**overrides)
    except ValidationError as exc:
        source = f"{path}: " if path is not None else ""
        raise ConfigError(f"{source}invalid configuration\n{describe_validation_error(exc)}") from exc


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with secrets masked, for `shelfsense config check`."""
    return settings.model_dump(mode="json")
