"""E-mail over SMTP (stdlib ``smtplib`` in a worker thread; STARTTLS and login optional)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Annotated, Literal

from pydantic import Field, SecretStr

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
from shelfsense.config import ChannelSettingsBase, is_loopback


class EmailChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        log: DeliveryLog | None = None,
        name: str | None = None,
    ) -> None:
        if not recipients:
            raise ChannelConfigError("an e-mail channel needs at least one recipient")
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)
        self.username, self.password = username, password
        self.starttls, self.tls_context, self.timeout_s = starttls, tls_context, timeout_s
        self.retry = retry or RetryPolicy()
        self.log = log
        if name:
            self.name = name

    def message(self, alert: AlertMessage) -> EmailMessage:
        msg = EmailMessage()
        severity = alert.severity if alert.language == "en" else alert.word(f"severity.{alert.severity}")
        msg["Subject"] = f"[ShelfSense {severity}] {alert.title}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = format_datetime(alert.at if alert.at.tzinfo else alert.at.astimezone())
        msg["Message-ID"] = make_msgid(idstring=alert.delivery_id)
        msg["X-ShelfSense-Alert"] = alert.alert_id
        msg.set_content(alert.plain())
        return msg

    def _send_blocking(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)

    async def _attempt(self, alert: AlertMessage) -> Attempt:
        try:
            await asyncio.to_thread(self._send_blocking, self.message(alert))
        except smtplib.SMTPResponseException as exc:  # 4xx is transient by definition, 5xx final
            return Attempt(
                False, exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code < 500
            )
        except smtplib.SMTPRecipientsRefused as exc:
            return Attempt(False, None, f"recipients refused: {sorted(exc.recipients)}")
        except smtplib.SMTPNotSupportedError as exc:
            return Attempt(False, None, f"SMTP server does not support it: {exc}")
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts
            return Attempt(False, None, f"{type(exc).__name__}: {exc}", retryable=True)
        return Attempt(True, 250)

    async def send(self, alert: AlertMessage) -> DeliveryResult:
        return await deliver_with_retries(
            self.name, alert, lambda: self._attempt(alert), self.retry, self.log
        )


class SmtpChannelSettings(ChannelSettingsBase):
    """``type = "smtp"``: e-mail to ``to`` through ``host``."""

    type: Literal["smtp"] = "smtp"
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    from_addr: str
    to: Annotated[list[str], Field(min_length=1)]
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False

    def insecure(self, key: str) -> list[str]:
        remote = not is_loopback(f"smtp://{self.host}")
        if self.password is not None and not self.starttls and remote:
            return [f"{key}.password would be sent without TLS (set starttls = true)"]
        return []


def _build(config: SmtpChannelSettings, destinations: Destinations) -> EmailChannel:
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


register_channel("smtp", SmtpChannelSettings, _build)
