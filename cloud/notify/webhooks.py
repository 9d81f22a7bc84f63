"""HTTP channels: a generic signed webhook and the DingTalk, WeCom and Feishu/Lark group robots.

Each request is rebuilt on every attempt, so vendor timestamps and signatures stay fresh across
retries. Retried: connection errors, timeouts, HTTP 429 and 5xx, and the robots' documented
rate-limit codes. Not retried: other 4xx and vendor error codes (a bad signature stays bad).

Signatures, exactly as the vendors document them:

- generic webhook: ``X-ShelfSense-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>``
  with ``X-ShelfSense-Timestamp`` (Unix seconds); receivers check both (see :func:`verify_webhook`).
- DingTalk: ``timestamp`` in ms and ``sign = urlencode(base64(HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}")))`` appended to the webhook URL's query.
- Feishu/Lark: ``timestamp`` in seconds and ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}",
  msg=b""))`` in the JSON body.
- WeCom: no signature; the webhook ``key`` in the URL is the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Literal
from urllib.parse import quote_plus, urlsplit

import httpx
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
from cloud.notify.destinations import DestinationRefused, Destinations
from cloud.notify.registry import register_channel
from shelfsense.config import ChannelSettingsBase, plain_to_remote, short_secret
from shelfsense.redact import mask_url

SIGNATURE_HEADER = "X-ShelfSense-Signature"
TIMESTAMP_HEADER = "X-ShelfSense-Timestamp"
DELIVERY_HEADER = "X-ShelfSense-Delivery"
USER_AGENT = "ShelfSense-Alerts/1"


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """For receivers: the signature matches and the timestamp is fresh (replays are refused)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk robot ``sign`` query value (already URL-encoded)."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def feishu_sign(secret: str, timestamp_s: str) -> str:
    """Feishu/Lark custom bot ``sign``: the key is ``timestamp\\nsecret``, the message is empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelConfigError(f"not an http(s) URL: {mask_url(url)!r}")
    return url


class HttpChannel:
    """Shared request/retry logic; subclasses build the request and judge the vendor's answer."""

    name = "http"
    retry_codes: frozenset[int] = frozenset()

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        log: DeliveryLog | None = None,
        client: httpx.AsyncClient | None = None,
        destinations: Destinations | None = None,
    ) -> None:
        self.url = _check_url(url)
        # None: deliver anywhere (a channel built in code); from settings: cloud.notify.destinations
        self.destinations = destinations
        if name:
            self.name = name
        self.retry = retry or RetryPolicy()
        self.log = log
        self._client = client or httpx.AsyncClient(timeout=timeout_s, headers={"User-Agent": USER_AGENT})
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def build(self, alert: AlertMessage) -> tuple[str, dict[str, str], bytes]:
        raise NotImplementedError

    def vendor_error(self, response: httpx.Response) -> tuple[int, str] | None:
        """``(code, message)`` when a 2xx answer still says the message was refused."""
        return None

    async def send(self, alert: AlertMessage) -> DeliveryResult:
        return await deliver_with_retries(
            self.name, alert, lambda: self._attempt(alert), self.retry, self.log
        )

    async def _attempt(self, alert: AlertMessage) -> Attempt:
        url, headers, body = self.build(alert)
        if self.destinations is not None:
            parts = urlsplit(url)
            try:
                await self.destinations.check_resolved(parts.hostname or "", parts.port or 443)
            except DestinationRefused as exc:
                return Attempt(False, error=str(exc))
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Attempt(False, error="timed out", retryable=True)
        except httpx.TransportError as exc:
            return Attempt(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
        status = response.status_code
        if status == 429 or status >= 500:
            return Attempt(False, status, f"HTTP {status}", retryable=True)
        if status >= 300:
            return Attempt(False, status, f"HTTP {status}: {response.text[:200]}")
        refused = self.vendor_error(response)
        if refused is not None:
            code, message = refused
            return Attempt(False, status, f"{self.name} error {code}: {message}", code in self.retry_codes)
        return Attempt(True, status)


class WebhookChannel(HttpChannel):
    """POSTs :meth:`AlertMessage.to_json`, signed with HMAC-SHA256 over timestamp and body."""

    name = "webhook"

    def __init__(self, url: str, secret: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        if not secret:
            raise ChannelConfigError("a webhook needs a signing secret")
        self._secret = secret

    def build(self, alert: AlertMessage) -> tuple[str, dict[str, str], bytes]:
        body = json.dumps(alert.to_json(), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(self._secret, timestamp, body),
            DELIVERY_HEADER: alert.delivery_id,  # the same on every retry: receivers de-duplicate on it
        }
        return self.url, headers, body


def _json_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _errcode(response: httpx.Response, *keys: str) -> tuple[int, str] | None:
    try:
        data = response.json()
    except ValueError:
        return (-1, f"not JSON: {response.text[:100]!r}")
    if not isinstance(data, dict):
        return (-1, "not a JSON object")
    for key in keys:
        if key in data:
            code = data[key]
            if code in (0, "0"):
                return None
            return (
                int(code) if isinstance(code, int) else -1,
                str(data.get("errmsg") or data.get("msg") or ""),
            )
    return (-1, f"no status code in {str(data)[:100]}")


class DingTalkChannel(HttpChannel):
    """DingTalk custom robot (加签 signing); ``url`` is the webhook including ``access_token``."""

    name = "dingtalk"
    retry_codes = frozenset({130101})  # sending too fast, "发送速度太快而限流"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        *,
        msgtype: str = "markdown",
        at_mobiles: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(url, **kwargs)
        if msgtype not in ("markdown", "text"):
            raise ChannelConfigError("DingTalk msgtype must be markdown or text")
        self._secret, self._msgtype, self._at = secret, msgtype, at_mobiles

    def build(self, alert: AlertMessage) -> tuple[str, dict[str, str], bytes]:
        payload: dict[str, Any]
        mentions = "".join(f" @{m}" for m in self._at)
        if self._msgtype == "markdown":
            payload = {
                "msgtype": "markdown",
                "markdown": {"title": alert.title, "text": alert.markdown() + mentions},
            }
        else:
            payload = {"msgtype": "text", "text": {"content": alert.plain() + mentions}}
        payload["at"] = {"atMobiles": list(self._at), "isAtAll": False}
        url = self.url
        if self._secret:
            timestamp = str(round(time.time() * 1000))
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timestamp={timestamp}&sign={dingtalk_sign(self._secret, timestamp)}"
        return url, {"Content-Type": "application/json; charset=utf-8"}, _json_body(payload)

    def vendor_error(self, response: httpx.Response) -> tuple[int, str] | None:
        return _errcode(response, "errcode")


WECOM_MARKDOWN_MAX_BYTES = 4096


class WeComChannel(HttpChannel):
    """WeCom (企业微信) group robot: ``msgtype: markdown``; the URL carries the robot's ``key``."""

    name = "wecom"
    retry_codes = frozenset({45009})  # API call frequency limit

    def build(self, alert: AlertMessage) -> tuple[str, dict[str, str], bytes]:
        content = alert.markdown().encode()[:WECOM_MARKDOWN_MAX_BYTES].decode(errors="ignore")
        payload = {"msgtype": "markdown", "markdown": {"content": content}}
        return self.url, {"Content-Type": "application/json"}, _json_body(payload)

    def vendor_error(self, response: httpx.Response) -> tuple[int, str] | None:
        return _errcode(response, "errcode")


class FeishuChannel(HttpChannel):
    """Feishu/Lark custom bot with signature verification; ``msg_type`` text or post (rich text)."""

    name = "feishu"
    retry_codes = frozenset({9499, 11232})  # too many requests / frequency limited

    def __init__(self, url: str, secret: str | None = None, *, msg_type: str = "post", **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        if msg_type not in ("text", "post"):
            raise ChannelConfigError("Feishu msg_type must be text or post")
        self._secret, self._msg_type = secret, msg_type

    def build(self, alert: AlertMessage) -> tuple[str, dict[str, str], bytes]:
        payload: dict[str, Any]
        if self._msg_type == "text":
            payload = {"msg_type": "text", "content": {"text": alert.plain()}}
        else:
            lines: list[list[dict[str, str]]] = [[{"tag": "text", "text": alert.text}]]
            lines += [[{"tag": "text", "text": f"{key}: {value}"}] for key, value in alert.facts()]
            if alert.url:
                lines.append([{"tag": "a", "text": alert.word("open_alert"), "href": alert.url}])
            # Feishu picks the block of the reader's client language: one block, in the channel's.
            block = "zh_cn" if alert.language == "zh-CN" else "en_us"
            post = {block: {"title": alert.headline(), "content": lines}}
            payload = {"msg_type": "post", "content": {"post": post}}
        if self._secret:
            timestamp = str(int(time.time()))
            payload = {"timestamp": timestamp, "sign": feishu_sign(self._secret, timestamp), **payload}
        return self.url, {"Content-Type": "application/json; charset=utf-8"}, _json_body(payload)

    def vendor_error(self, response: httpx.Response) -> tuple[int, str] | None:
        return _errcode(response, "code", "StatusCode")


# --- settings and registration ----------------------------------------------------------------


def _https_problems(key: str, url: str, secret: SecretStr | None) -> list[str]:
    problems = [f"{key}.url is not https:// to a non-loopback host"] if plain_to_remote(url) else []
    return problems + short_secret(f"{key}.secret", secret)


class WebhookChannelSettings(ChannelSettingsBase):
    """``type = "webhook"``: a generic HMAC-signed webhook (``X-ShelfSense-Signature``)."""

    type: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr

    def insecure(self, key: str) -> list[str]:
        return _https_problems(key, self.url, self.secret)


class DingTalkChannelSettings(ChannelSettingsBase):
    type: Literal["dingtalk"] = "dingtalk"
    url: str  # including access_token
    secret: SecretStr | None = None  # the robot's signing secret (加签)

    def insecure(self, key: str) -> list[str]:
        return _https_problems(key, self.url, self.secret)


class WeComChannelSettings(ChannelSettingsBase):
    type: Literal["wecom"] = "wecom"
    url: SecretStr  # the webhook key in the URL is the secret

    def insecure(self, key: str) -> list[str]:
        return _https_problems(key, self.url.get_secret_value(), None)


class FeishuChannelSettings(ChannelSettingsBase):
    type: Literal["feishu"] = "feishu"
    url: str
    secret: SecretStr | None = None

    def insecure(self, key: str) -> list[str]:
        return _https_problems(key, self.url, self.secret)


def _checked(url: str, destinations: Destinations) -> str:
    destinations.check_host(urlsplit(url).hostname or "")
    return url


def _secret(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _webhook(config: WebhookChannelSettings, destinations: Destinations) -> WebhookChannel:
    url, secret = _checked(config.url, destinations), config.secret.get_secret_value()
    return WebhookChannel(url, secret, name=config.name, destinations=destinations)


def _dingtalk(config: DingTalkChannelSettings, destinations: Destinations) -> DingTalkChannel:
    url = _checked(config.url, destinations)
    return DingTalkChannel(url, _secret(config.secret), name=config.name, destinations=destinations)


def _wecom(config: WeComChannelSettings, destinations: Destinations) -> WeComChannel:
    url = _checked(config.url.get_secret_value(), destinations)
    return WeComChannel(url, name=config.name, destinations=destinations)


def _feishu(config: FeishuChannelSettings, destinations: Destinations) -> FeishuChannel:
    url = _checked(config.url, destinations)
    return FeishuChannel(url, _secret(config.secret), name=config.name, destinations=destinations)


register_channel("webhook", WebhookChannelSettings, _webhook)
register_channel("dingtalk", DingTalkChannelSettings, _dingtalk)
register_channel("wecom", WeComChannelSettings, _wecom)
register_channel("feishu", FeishuChannelSettings, _feishu)
