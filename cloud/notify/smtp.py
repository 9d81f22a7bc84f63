"""E-mail over SMTP (stdlib ``smtplib`` in a worker thread; STARTTLS and login optional)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from cloud.notify.base import (
    AlertMessage,
    Attempt,
    ChannelConfigError,
    DeliveryLog,
    DeliveryResult,
    RetryPolicy,
    deliver_with_retries,
)


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
