"""Insecure settings refused outside demo (each naming its key) and secrets masked in printouts."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from shelfsense.config import ConfigError, effective_config, load_settings
from shelfsense.redact import mask_text, mask_url

SECRET = "0123456789abcdef-signing"  # long enough for the signing-secret rule


def channel(kind: str, **fields: str) -> str:
    lines = [f'{key} = "{value}"' for key, value in {"type": kind, "name": "c", **fields}.items()]
    return "[[cloud.coldchain.channels]]\n" + "\n".join(lines) + "\n"


INSECURE = {
    "edge websocket cloud": ('[edge]\ncloud_url = "ws://cloud.example.com:8600"\n', "edge.cloud_url"),
    "edge plain http cloud": ('[edge]\ncloud_url = "http://cloud.example.com"\n', "edge.cloud_url"),
    "plain http webhook": (
        channel("webhook", url="http://hooks.example.com/x", secret=SECRET),
        "cloud.coldchain.channels.0.url",
    ),
    "plain http dingtalk": (
        channel("dingtalk", url="http://oapi.dingtalk.com/robot/send?access_token=abcdefgh"),
        "cloud.coldchain.channels.0.url",
    ),
    "plain http wecom": (
        channel("wecom", url="http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdefgh"),
        "cloud.coldchain.channels.0.url",
    ),
    "one-character webhook secret": (
        channel("webhook", url="https://hooks.example.com/x", secret="x"),
        "cloud.coldchain.channels.0.secret",
    ),
    "short feishu secret": (
        channel("feishu", url="https://open.feishu.cn/open-apis/bot/v2/hook/x", secret="short"),
        "cloud.coldchain.channels.0.secret",
    ),
    "smtp password without tls": (
        channel("smtp", host="mail.example.com", from_addr="a@example.com", password="mail-password")
        + 'to = ["b@example.com"]\n',
        "cloud.coldchain.channels.0.password",
    ),
    "plain mqtt alerts broker": (
        channel("mqtt", url="mqtt://broker.example.com"),
        "cloud.coldchain.channels.0.url",
    ),
    "plain http export webhook": (
        f'[cloud.replenish]\nwebhook_url = "http://erp.example.com/po"\nwebhook_secret = "{SECRET}"\n',
        "cloud.replenish.webhook_url",
    ),
    "short export secret": (
        '[cloud.replenish]\nwebhook_url = "https://erp.example.com/po"\nwebhook_secret = "abc"\n',
        "cloud.replenish.webhook_secret",
    ),
    "cookies never secure": ('[cloud.web]\nsecure_cookies = "never"\n', "cloud.web.secure_cookies"),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shelfsense.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(INSECURE))
def test_insecure_setting_refused_outside_demo_naming_the_key(tmp_path: Path, case: str) -> None:
    toml, key = INSECURE[case]
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml))
    assert key in str(info.value)
    assert load_settings(write(tmp_path, "demo = true\n" + toml)).demo


def test_secure_equivalents_are_accepted(tmp_path: Path) -> None:
    toml = (
        '[edge]\ncloud_url = "https://cloud.example.com"\n'
        + channel("webhook", url="https://hooks.example.com/x", secret=SECRET)
        + '[[cloud.coldchain.channels]]\ntype = "smtp"\nname = "m"\nhost = "mail.example.com"\n'
        'from_addr = "a@example.com"\nto = ["b@example.com"]\npassword = "pw-123456"\nstarttls = true\n'
        + '[cloud.web]\nsecure_cookies = "always"\n'
    )
    settings = load_settings(write(tmp_path, toml))
    assert len(settings.cloud.coldchain.channels) == 2


def test_edge_without_token_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shelfsense", "edge", "run", "--config", str(write(tmp_path, "[edge]\n"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "edge.token is not set" in result.stderr


def test_mask_url_hides_vendor_keys_and_passwords() -> None:
    # DingTalk: https://open.dingtalk.com/document/robots/custom-robot-access (access_token);
    # WeCom: https://developer.work.weixin.qq.com/document/path/91770 (key).
    assert mask_url("https://oapi.dingtalk.com/robot/send?access_token=tok123&x=1") == (
        "https://oapi.dingtalk.com/robot/send?access_token=***&x=1"
    )
    assert mask_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-123") == (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    )
    assert mask_url("postgresql+asyncpg://app:pa:ss@db.example.com/shelfsense") == (
        "postgresql+asyncpg://app:***@db.example.com/shelfsense"
    )
    assert (
        mask_text('POST http://u:pw@h/x?sign=abc "HTTP/1.1 200"')
        == 'POST http://u:***@h/x?sign=*** "HTTP/1.1 200"'
    )


def test_config_check_masks_urls_and_database_password(tmp_path: Path) -> None:
    toml = (
        "[cloud]\n"
        'db_url = "postgresql+asyncpg://app:db-password-42@127.0.0.1/shelfsense"\n'
        + channel("dingtalk", url="https://oapi.dingtalk.com/robot/send?access_token=ding-token-42")
        + channel("feishu", name="f", url="https://u:feishu-pass-42@open.feishu.cn/open-apis/bot/v2/hook/x")
    )
    path = write(tmp_path, toml)
    result = subprocess.run(
        [sys.executable, "-m", "shelfsense", "config", "check", "--json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    printed = json.loads(result.stdout)
    assert printed["cloud"]["db_url"] == "postgresql+asyncpg://app:***@127.0.0.1/shelfsense"
    for secret in ("db-password-42", "ding-token-42", "feishu-pass-42"):
        assert secret not in result.stdout + result.stderr
        assert secret not in str(effective_config(load_settings(path)))


def test_log_records_are_masked_keeping_their_arguments(caplog: pytest.LogCaptureFixture) -> None:
    from shelfsense.redact import install_log_masking, register_secrets

    install_log_masking()
    register_secrets(["registered-secret-42"])
    log = logging.getLogger("test.redact")
    with caplog.at_level(logging.INFO):
        log.info("POST %s %d", "https://h/x?access_token=tok-77&a=1", 200)
        log.info("value %s", "registered-secret-42")
        log.info("split %s%s", "registered-", "secret-42")  # only the whole message shows it
    first, second, third = caplog.records
    assert first.args == ("https://h/x?access_token=***&a=1", 200)  # formatters reading args still work
    assert first.getMessage() == "POST https://h/x?access_token=***&a=1 200"
    assert second.getMessage() == "value ***"
    assert third.getMessage() == "split ***"
    assert "tok-77" not in caplog.text and "registered-secret-42" not in caplog.text
