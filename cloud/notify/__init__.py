"""Alert delivery to people: one narrow interface, ``async send(alert) -> DeliveryResult``.

Channels: :class:`WebhookChannel` (HMAC-signed), :class:`DingTalkChannel`, :class:`WeComChannel`,
:class:`FeishuChannel`, :class:`EmailChannel` (SMTP) and :class:`MqttChannel`, each registered by
its module with its settings model (:mod:`cloud.notify.registry`; importing this package registers
the built-in ones); :class:`AlertDispatcher` fans an alert out to all of them concurrently.
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
from cloud.notify.mqtt import MqttChannel, MqttChannelSettings, alert_topic
from cloud.notify.registry import build_channel, channel_types, register_channel
from cloud.notify.smtp import EmailChannel, SmtpChannelSettings
from cloud.notify.webhooks import (
    DingTalkChannel,
    DingTalkChannelSettings,
    FeishuChannel,
    FeishuChannelSettings,
    HttpChannel,
    WebhookChannel,
    WebhookChannelSettings,
    WeComChannel,
    WeComChannelSettings,
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
    "DingTalkChannelSettings",
    "EmailChannel",
    "FeishuChannel",
    "FeishuChannelSettings",
    "HttpChannel",
    "MqttChannel",
    "MqttChannelSettings",
    "NotifyError",
    "RetryPolicy",
    "SmtpChannelSettings",
    "WeComChannel",
    "WeComChannelSettings",
    "WebhookChannel",
    "WebhookChannelSettings",
    "alert_topic",
    "build_channel",
    "channel_types",
    "dingtalk_sign",
    "feishu_sign",
    "register_channel",
    "verify_webhook",
    "webhook_signature",
]
