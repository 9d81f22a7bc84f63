"""Typed configuration: one TOML format for cloud and edge, overridable from the environment.

Settings are built by :func:`load_settings` (a factory, never at import). Precedence, highest first:
keyword overrides given to the factory (command-line flags), ``SHELFSENSE_*`` environment variables
(nested with ``__``, e.g. ``SHELFSENSE_CLOUD__PORT=9000``), the TOML file, then defaults.

Insecure settings (plain HTTP or WebSocket to a non-loopback cloud, webhook or broker; the demo
token; short signing secrets; an SMTP password sent without TLS; session cookies never Secure) are
refused unless ``demo = true`` (see :func:`insecure_settings`). Secrets are masked in every printout
and log line by :mod:`shelfsense.redact`.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    SecretStr,
    SerializeAsAny,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from shelfsense.redact import mask_data, register_settings_secrets
from shelfsense.vocabulary import Quantity

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]
DEMO_EDGE_TOKEN_PREFIX = "demo-"
# Shortest HMAC signing secret accepted outside demo mode (a short one can be guessed offline from
# one signed message).
MIN_SIGNING_SECRET_LENGTH = 16


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _networks(entries: list[str], key: str) -> list[str]:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{key}: {entry!r} is not an IP address or CIDR network") from None
    return entries


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


class ChannelSettingsBase(_Section):
    """What every alert channel entry has: its type, name, readers' language and alert-storm limit.

    Each channel type subclasses it next to its implementation (``cloud/notify/<channel>.py``) and
    registers the pair there (:mod:`cloud.notify.registry`); entries are validated against the
    registered model of their ``type``, so this module names no channel type.
    """

    type: str
    name: Ident
    language: Literal["en", "zh-CN"] = "en"  # of every message this channel sends
    # At most this many messages per (site, zone) per hour on this channel, digests included;
    # what is over is held and summarised in one digest when the hour is over. None: no limit.
    max_messages_per_zone_per_hour: Annotated[int, Field(ge=1)] | None = None

    def insecure(self, key: str) -> list[str]:
        """What in this entry is fine for a demo and dangerous elsewhere, each naming its key
        (``key`` is the entry's, e.g. ``cloud.coldchain.channels.0``); see :func:`insecure_settings`."""
        return []


def _registered_channel(value: Any) -> ChannelSettingsBase:
    try:
        from cloud.notify.registry import parse_channel  # the channel types register there, not here
    except ImportError as exc:  # an edge-only install reading a file with cloud channels
        raise PydanticCustomError(
            "channel_type", "alert channels need the cloud install ({error})", {"error": str(exc)}
        ) from None
    return parse_channel(value)


# One [[cloud.coldchain.channels]] entry: the registered settings model of its ``type``
# (serialised as that model, with all its fields).
ChannelSettings = Annotated[SerializeAsAny[ChannelSettingsBase], PlainValidator(_registered_channel)]


class QuietWindow(_Section):
    """``[[cloud.coldchain.quiet]]``: no messages for these zones while it holds (quiet hours
    every day, or a maintenance window from ``start`` to ``end``); what was held is summarised in
    one digest per channel and zone afterwards. The alerts themselves are recorded as always."""

    zones: list[Ident] = []  # empty: every zone
    site_id: Ident | None = None  # None: every site
    daily: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")] | None = None
    timezone: str = "UTC"  # of ``daily`` (an IANA name such as Asia/Shanghai)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> QuietWindow:
        if (self.daily is None) == (self.start is None or self.end is None):
            raise ValueError("a quiet window is either daily = 'HH:MM-HH:MM' or start and end")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("a maintenance window's start must be before its end")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        return self


class ColdChainSettings(_Section):
    """``[cloud.coldchain]``: excursion rules, gap and door handling, escalation, delivery channels.

    Defaults keep the historical behaviour: an alert opens on the first reading beyond a limit
    (``single_event_s = 0``); set e.g. 1800 for "above 8 °C for 30 min".
    """

    single_event_s: Annotated[float, Field(ge=0)] = 0.0
    # Total time above the max temperature over the zone's history before a cumulative alert.
    cumulative_s: Annotated[float, Field(ge=0)] | None = None
    # Instant alert when a reading is this far beyond a temperature limit (no waiting).
    instant_margin_c: Annotated[float, Field(ge=0)] | None = None
    gap_minutes: Annotated[float, Field(gt=0)] | None = 15.0
    tick_s: Annotated[float, Field(gt=0)] = 30.0  # gap and escalation checks (one replica)
    door_rise_c: Annotated[float, Field(gt=0)] | None = None  # None: no door-open suppression
    door_within_s: Annotated[float, Field(gt=0)] = 120.0
    door_grace_s: Annotated[float, Field(ge=0)] = 300.0
    escalation_minutes: Annotated[float, Field(gt=0)] | None = 30.0
    # Ordered contact groups, each a list of channel names: a new alert goes to the first group,
    # each escalation adds the next one. Empty: every channel, no escalation.
    contact_groups: list[list[Ident]] = []
    channels: list[ChannelSettings] = []
    # Host names and IPs/CIDRs channels may deliver to (cloud.notify.destinations). Empty: any
    # public address. Loopback, private and link-local addresses only when listed here.
    allowed_destinations: list[str] = []
    alert_url: str | None = None  # e.g. "https://cloud.example/alerts/{id}" for message links
    quiet: list[QuietWindow] = []  # quiet hours and maintenance windows (alert storms)

    @model_validator(mode="after")
    def _groups_name_channels(self) -> ColdChainSettings:
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        for group in self.contact_groups:
            for name in group:
                if name not in names:
                    raise ValueError(f"contact group names unknown channel {name!r}")
        return self


class InfluxSettings(_Section):
    """``[cloud.influx]``: InfluxDB 1.x (database + retention policy) or 2.x (org + bucket + token)."""

    url: str
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _v1_or_v2(self) -> InfluxSettings:
        v2 = self.org is not None or self.bucket is not None or self.token is not None
        if v2 and not (self.org and self.bucket and self.token):
            raise ValueError("InfluxDB 2.x needs org, bucket and token")
        if not v2 and not self.database:
            raise ValueError("InfluxDB 1.x needs database (or give org, bucket and token for 2.x)")
        return self


class ApprovalThreshold(_Section):
    """Proposals (purchase orders) whose amount is above ``above_amount`` need ``role`` at ``level``."""

    above_amount: Annotated[float, Field(ge=0)]
    level: Annotated[int, Field(ge=1, le=10)] = 2
    role: Annotated[str, Field(min_length=1, max_length=64)] = "finance"


class ReplenishSettings(_Section):
    """``[cloud.replenish]``: the restocking run, approvals and the export webhook.

    Approval roles are the API roles (``operator``, ``admin``) or any other name (``finance``,
    ``buyer``) filled by the users listed for it in ``approvers``; admins can fill every role.
    """

    enabled: bool = True  # the periodic run (one replica at a time)
    # ISO 4217 code of unit costs and amounts: money is rounded to its minor unit (cloud.replenish.money)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    interval_s: Annotated[float, Field(gt=0)] = 86400.0
    history_days: Annotated[int, Field(ge=7, le=3650)] = 90
    method: Literal["ses", "holt_winters", "croston", "sba", "tsb", "auto"] = "auto"
    service_level: Annotated[float, Field(gt=0, lt=1)] = 0.95
    review_period_days: Annotated[float, Field(gt=0)] = 1.0
    transfer_lead_time_days: Annotated[int, Field(ge=0)] = 1
    # Dead stock (cloud.replenish.dead_stock): a lot at a location nothing left for this many days
    # (as demand), received at least dead_stock_receipt_days ago; goods received since are never dead.
    dead_stock_days: Annotated[int, Field(ge=1)] = 90
    dead_stock_receipt_days: Annotated[int, Field(ge=1)] = 90
    dead_stock_alerts: bool = True  # the periodic check opening dead_stock alerts (one replica)
    dead_stock_interval_s: Annotated[float, Field(gt=0)] = 3600.0
    slow_mover_cover_days: Annotated[float, Field(gt=0)] = 180.0
    approval_role: Annotated[str, Field(min_length=1, max_length=64)] = "operator"  # level 1
    approval_thresholds: list[ApprovalThreshold] = [ApprovalThreshold(above_amount=100_000.0)]
    approvers: dict[str, list[Ident]] = {}
    rules_file: Path | None = None  # JSON or TOML rule set (cloud.replenish.rules)
    webhook_url: str | None = None  # approved proposals are POSTed here, HMAC-signed
    webhook_secret: SecretStr | None = None
    webhook_language: Literal["en", "zh-CN"] = "en"  # of the export messages' title and text
    export_poll_s: Annotated[float, Field(gt=0)] = 10.0
    # Lots whose effective expiry is this close become transfer/markdown proposals (None: off).
    expiring_within_days: Annotated[float, Field(gt=0)] | None = 3.0

    @model_validator(mode="after")
    def _webhook_pair(self) -> ReplenishSettings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret (exports are signed)")
        return self


class WebSettings(_Section):
    """``[cloud.web]``: the operator page (cloud.web). ``secure_cookies = "auto"`` marks the session
    cookie Secure when the request came over https (directly or via a trusted proxy); "always" for
    production behind TLS, "never" only for a plain-http loopback demo."""

    enabled: bool = True
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0


class ReadSettings(_Section):
    """``[cloud.reads]``: how reads are kept from stalling ingest and health (cloud.core.pools,
    cloud.api.read_gate). Reads use their own connection pools; every read statement is cut off
    after ``statement_timeout_s`` (503 ``query_timeout``). The ``heavy_paths`` (GET, by path prefix)
    run on a separate event loop, at most ``heavy_concurrency`` at once; up to ``heavy_queue`` more
    wait at most ``heavy_wait_s`` for a slot, anything beyond gets 503 ``busy`` with Retry-After."""

    pool_size: Annotated[int, Field(ge=1, le=100)] = 4
    statement_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    heavy_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    heavy_queue: Annotated[int, Field(ge=0, le=1000)] = 2
    heavy_wait_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 2
    heavy_paths: list[str] = [
        "/api/v1/lots",
        "/api/v1/fefo",
        "/api/v1/kpis",
        "/api/v1/epcis/events",
        "/api/v1/movements",
        "/api/v1/proposals",
    ]


class RetentionSettings(_Section):
    """``[cloud.retention]``: how long the SQL store keeps raw sensor readings (cloud.retention).

    Older readings are rolled up per sensor, quantity, zone and ``bucket_s`` (min/max/mean/count)
    and their raw rows removed (PostgreSQL: whole partitions dropped). InfluxDB, when configured,
    stays the long-term store of the raw series. Keep ``readings_days`` above the plausibility
    window (``max_event_age_s``): a reading arriving for an already rolled-up period is refused
    and counted (``shelfsense_readings_past_retention_total``), not stored.
    """

    enabled: bool = True
    # None: keep raw readings for ever. At least a day: ingest skips the horizon check for newer ones.
    readings_days: Annotated[float, Field(ge=1)] | None = 90.0
    bucket_s: Annotated[int, Field(ge=60, le=86400)] = 3600
    interval_s: Annotated[float, Field(gt=0)] = 21600.0  # how often one replica runs the job
    max_buckets_per_run: Annotated[int, Field(ge=1)] = 2000  # each bucket is one short transaction
    # PostgreSQL: weekly partitions of readings and monthly ones of movements, created this many
    # periods ahead of the clock.
    partitions_ahead: Annotated[int, Field(ge=1, le=52)] = 4

    @field_validator("bucket_s")
    @classmethod
    def _bucket_divides_a_day(cls, value: int) -> int:
        if 86400 % value:
            raise ValueError("bucket_s must divide a day (86400 s) so buckets never straddle a partition")
        return value


class CloudSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8600
    # Server processes sharing the listening socket (Python runs one core per process). Each is a
    # full replica: the periodic jobs are claimed through the database, so they run once.
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    db_url: str = "sqlite+aiosqlite:///./.shelfsense/cloud.db"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    # How long a sensor may stay silent before the cloud calls its readings stale.
    stale_after_s: Annotated[float, Field(gt=0)] = 300.0
    # Plausibility window around the cloud's clock (cloud.ingest.plausibility): events dated
    # older (None: no limit; keep it above how long an edge's outbox may hold events) or further
    # in the future are stored for audit and counted per edge, but never applied.
    max_event_age_s: Annotated[float, Field(gt=0)] | None = 30 * 86400.0
    max_future_skew_s: Annotated[float, Field(ge=0)] = 300.0
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For / X-Forwarded-Proto are believed. Empty:
    # the TCP peer is the client, whatever the headers say (the login lockout counts per client).
    trusted_proxies: list[str] = []
    coldchain: ColdChainSettings = ColdChainSettings()
    influx: InfluxSettings | None = None
    replenish: ReplenishSettings = ReplenishSettings()
    web: WebSettings = WebSettings()
    reads: ReadSettings = ReadSettings()
    retention: RetentionSettings = RetentionSettings()

    @model_validator(mode="after")
    def _proxies_are_networks(self) -> CloudSettings:
        _networks(self.trusted_proxies, "trusted_proxies")
        return self


class SerialPort(_Section):
    port: str
    baudrate: Annotated[int, Field(gt=0)] = 115200


class UhfReaderConfig(SerialPort):
    """One serial UHF module (M100/R200 family, ``protocol = "m100"``, the default): one antenna."""

    protocol: Literal["m100"] = "m100"
    id: Ident
    location: Ident | None = None
    poll_interval_s: Annotated[float, Field(gt=0)] = 0.2
    # Stable set (edge.smoothing): a tag counts as present after `min_reads` reads and as gone only
    # after `grace_s` without a read, so one missed read never makes it vanish.
    min_reads: Annotated[int, Field(ge=1)] = 1
    grace_s: Annotated[float, Field(gt=0)] = 3.0


class ChafonReaderConfig(UhfReaderConfig):
    """A Chafon / UHFReader18-family reader (``protocol = "chafon"``; see devices/chafon.py).

    ``address`` is the reader's bus address (0xFF: whichever reader answers); ``variant`` the tag
    list layout ("18": UHFReader18/86, CF-RU5102; "288": UHFReader288, CF-RU5202/5300, with antenna
    and RSSI); ``mode`` "answer" (the edge polls) or "active" (the reader streams, scan mode).
    """

    protocol: Literal["chafon"]  # type: ignore[assignment]
    baudrate: Annotated[int, Field(gt=0)] = 57600
    address: Annotated[int, Field(ge=0, le=255)] = 0xFF
    variant: Literal["18", "288"] = "18"
    mode: Literal["answer", "active"] = "answer"
    response_timeout_s: Annotated[float, Field(gt=0)] = 1.0


def _reader_protocol(value: Any) -> str:
    raw = value.get("protocol", "m100") if isinstance(value, dict) else getattr(value, "protocol", "m100")
    return raw if raw in ("m100", "chafon") else "m100"  # an unknown one fails m100's Literal


_UNION_TAGS = frozenset({"m100", "chafon"})
SerialReaderConfig = Annotated[
    Annotated[UhfReaderConfig, Tag("m100")] | Annotated[ChafonReaderConfig, Tag("chafon")],
    Discriminator(_reader_protocol),
]


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
    # Stable set of each logical reader (see UhfReaderConfig).
    min_reads: Annotated[int, Field(ge=1)] = 1
    grace_s: Annotated[float, Field(gt=0)] = 3.0

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
    # Dwell rule against ping-pong: a decided in/out is held this long; an opposite passage of the
    # same tag meanwhile cancels both (it went back where it came from). 0 = no hold.
    dwell_s: Annotated[float, Field(ge=0)] = 2.0


class ModbusProbeConfig(SerialPort):
    """An RS-485 Modbus RTU temperature-humidity probe (SHT20 / XY-MD02 register map)."""

    baudrate: Annotated[int, Field(gt=0)] = 9600
    slave: Annotated[int, Field(ge=1, le=247)] = 1
    sensor_id: Ident
    zone: Ident | None = None
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0


class NfcReaderConfig(SerialPort):
    """An NFC / RFID card reader on a UART: NXP PN532 in HSU mode or an RDM6300 (125 kHz EM4100).

    Cards enter the contract as ``TagObservation`` events whose ``epc`` is the card UID in hex
    (see :mod:`edge.transports.nfc`). ``baudrate`` defaults to the module's: 115200 for the PN532
    (HSU), 9600 for the RDM6300. ``grace_s``: a card unseen this long has left the field.
    """

    kind: Literal["pn532", "rdm6300"]
    id: Ident
    location: Ident | None = None
    poll_interval_s: Annotated[float, Field(gt=0)] = 0.2  # PN532 InListPassiveTarget period
    grace_s: Annotated[float, Field(gt=0)] = 0.5

    @model_validator(mode="after")
    def _module_baudrate(self) -> NfcReaderConfig:
        if "baudrate" not in self.model_fields_set and self.kind == "rdm6300":
            self.baudrate = 9600
        return self


class MqttSensorConfig(_Section):
    topic: str
    format: str  # one of devices.mqtt_registry's formats (checked below)
    sensor_id: Ident
    zone: Ident | None = None
    # What the value is, for formats whose payload does not say (ESPHome's plain-text state).
    quantity: Quantity | None = None

    @field_validator("format")
    @classmethod
    def _registered_format(cls, value: str) -> str:
        from devices.mqtt_registry import format_names  # the formats register there, not here

        names = format_names()
        if value not in names:  # the message pydantic gives for a Literal, so it reads the same
            expected = ", ".join(map(repr, names[:-1])) + f" or {names[-1]!r}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value


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
    # TLS to the cloud (edge.tls): a private CA's PEM file and/or the SHA-256 fingerprint of the
    # certificate the cloud or its proxy presents (``openssl x509 -fingerprint -sha256`` or hex).
    cloud_ca_file: Path | None = None
    cloud_cert_sha256: Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$")] | None = None
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
    # Disk full (edge.diskfull): events of serial devices held in memory meanwhile (past it the
    # oldest telemetry is dropped, counted), and how often the agent retries once space is back.
    disk_full_hold_events: Annotated[int, Field(ge=1)] = 20_000
    disk_full_retry_s: Annotated[float, Field(gt=0)] = 2.0
    # Space kept in a reserve file next to the database and freed when the disk is full, so that
    # the sync can still delete acknowledged rows (0: none; not advised).
    disk_full_reserve_mb: Annotated[float, Field(ge=0)] = 16.0
    # An edge clock further than this from the cloud's (HTTP Date header) is reported as skewed.
    clock_skew_warn_s: Annotated[float, Field(gt=0)] = 5.0
    # A reading whose source time is older than this when it arrives is flagged "stale".
    reading_stale_s: Annotated[float, Field(gt=0)] = 900.0
    uhf_readers: list[SerialReaderConfig] = []
    portals: list[PortalConfig] = []
    modbus_probes: list[ModbusProbeConfig] = []
    mqtt: MqttConfig | None = None
    llrp_readers: list[LlrpReaderConfig] = []
    nfc_readers: list[NfcReaderConfig] = []

    @model_validator(mode="after")
    def _tls_options_need_https(self) -> EdgeSettings:
        pinned = self.cloud_ca_file is not None or self.cloud_cert_sha256 is not None
        if pinned and urlsplit(self.cloud_url).scheme != "https":
            raise ValueError("cloud_ca_file / cloud_cert_sha256 need an https:// cloud_url")
        return self

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


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_to_remote(url: str, secure_scheme: str = "https") -> bool:
    """True when ``url`` is not ``secure_scheme`` and does not stay on this machine."""
    return urlsplit(url).scheme != secure_scheme and not is_loopback(url)


def secret_value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


def short_secret(key: str, secret: SecretStr | None) -> list[str]:
    value = secret_value(secret)
    if value and len(value) < MIN_SIGNING_SECRET_LENGTH:
        return [f"{key} is shorter than {MIN_SIGNING_SECRET_LENGTH} characters"]
    return []


def _edge_problems(edge: EdgeSettings) -> list[str]:
    problems: list[str] = []
    if plain_to_remote(edge.cloud_url):
        problems.append(
            "edge.cloud_url is not https:// to a non-loopback host (the token would travel in clear)"
        )
    if secret_value(edge.token).startswith(DEMO_EDGE_TOKEN_PREFIX):
        problems.append("edge.token is a demo token")
    mqtt = edge.mqtt
    if mqtt is not None and not is_loopback(mqtt.url):
        if urlsplit(mqtt.url).scheme != "mqtts":
            problems.append("edge.mqtt.url is not mqtts:// for a non-loopback broker")
        if mqtt.password is None:
            problems.append("edge.mqtt has no password for a non-loopback broker")
    return problems


def _cloud_problems(cloud: CloudSettings) -> list[str]:
    problems: list[str] = []
    for index, channel in enumerate(cloud.coldchain.channels):
        problems += channel.insecure(f"cloud.coldchain.channels.{index}")
    replenish = cloud.replenish
    if replenish.webhook_url and plain_to_remote(replenish.webhook_url):
        problems.append("cloud.replenish.webhook_url is not https:// to a non-loopback host")
    problems += short_secret("cloud.replenish.webhook_secret", replenish.webhook_secret)
    if cloud.web.secure_cookies == "never":
        problems.append('cloud.web.secure_cookies = "never" (session cookies could travel in clear)')
    influx = cloud.influx
    if influx is not None and (influx.password or influx.token) and plain_to_remote(influx.url):
        problems.append("cloud.influx.url is not https:// to a non-loopback host (credentials in clear)")
    return problems


def insecure_settings(settings: Settings) -> list[str]:
    """Settings that are fine for a demo on one machine and dangerous anywhere else, each naming
    its key."""
    return _edge_problems(settings.edge) + _cloud_problems(settings.cloud)


def require_edge_token(settings: Settings) -> None:
    """An edge without a token cannot authenticate: refuse to start one outside demo mode."""
    if settings.edge.token is None and not settings.demo:
        raise ConfigError("edge.token is not set (create one with `shelfsense cloud admin create-edge`)")


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
        # A tagged union (uhf_readers' protocol) puts its tag in the path: not a key the user wrote.
        parts = [str(part) for part in error["loc"] if part not in _UNION_TAGS]
        key = ".".join(parts) or "(top level)"
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
        settings = _settings_class_for(file_data)(**overrides)
    except ValidationError as exc:
        source = f"{path}: " if path is not None else ""
        raise ConfigError(f"{source}invalid configuration\n{describe_validation_error(exc)}") from exc
    register_settings_secrets(settings)
    return settings


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with secrets masked, for `shelfsense config check`: ``SecretStr``
    values, passwords inside URLs (the database's too) and credential query values (DingTalk's
    ``access_token``, WeCom's ``key``)."""
    register_settings_secrets(settings)
    return dict(mask_data(settings.model_dump(mode="json")))
