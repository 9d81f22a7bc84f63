"""Alert delivery to people: one narrow interface, ``async send(alert) -> DeliveryResult``.

Channels: :class:`WebhookChannel` (HMAC-signed), :class:`DingTalkChannel`, :class:`WeComChannel`,
:class:`FeishuChannel`, :class:`EmailChannel` (SMTP) and :class:`MqttChannel`;
:class:`AlertDispatcher` fans an alert out to all of them concurrently.
"""

from cloud.notify.base import (
    AlertMessage,
    Channel,
    ChannelConfigError,
    DeliveryLog,
    DeliveryResult,
    NotifyError,
    RetryPolicy,
)
from cloud.notify.dispatch import AlertDispatcher
from cloud.notify.mqtt import MqttChannel, alert_topic
from cloud.notify.smtp import EmailChannel
from cloud.notify.webhooks import (
    DingTalkChannel,
    FeishuChannel,
    HttpChannel,
    WebhookChannel,
    WeComChannel,
    dingtalk_sign,
    feishu_sign,
    verify_webhook,
    webhook_signature,
)

__all__ = [
    "AlertDispatcher",
    "AlertMessage",
    "Channel",
    "ChannelConfigError",
    "DeliveryLog",
    "DeliveryResult",
    "DingTalkChannel",
    "EmailChannel",
    "FeishuChannel",
    "HttpChannel",
    "MqttChannel",
    "NotifyError",
    "RetryPolicy",
    "WeComChannel",
    "WebhookChannel",
    "alert_topic",
    "dingtalk_sign",
    "feishu_sign",
    "verify_webhook",
    "webhook_signature",
]
