"""Start-up configuration errors, log redaction and secrets encryption."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
import structlog
from tests.support.stack import KEY

from switchboard.crm.settings import CrmSettings
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.crypto import DecryptError, Keyring
from switchboard.runtime.logging import REDACTED, configure_logging, register_secret
from switchboard.runtime.settings import ConfigError, load_settings, parse_keyring


def test_missing_setting_is_one_sentence_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("SWITCHBOARD_INGEST_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ConfigError) as err:
        load_settings(IngestSettings)
    assert str(err.value) == (
        "ingest: setting SWITCHBOARD_INGEST_ENCRYPTION_KEYS is invalid: Field required."
    )


def test_bad_values_are_named_and_secrets_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_INGEST_ENCRYPTION_KEYS", "k1:c2hvcnQ=")
    with pytest.raises(ConfigError) as err:
        load_settings(IngestSettings)
    assert "SWITCHBOARD_INGEST_ENCRYPTION_KEYS" in str(err.value)
    assert "must be 32 bytes" in str(err.value)
    assert "c2hvcnQ" not in str(err.value)
    monkeypatch.setenv("SWITCHBOARD_INGEST_ENCRYPTION_KEYS", KEY)
    monkeypatch.setenv("SWITCHBOARD_NATS_URL", "http://nats:4222")
    with pytest.raises(ConfigError, match=r"SWITCHBOARD_INGEST_NATS_URL is invalid.*nats://"):
        load_settings(IngestSettings)


def test_service_prefix_overrides_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", "shared-key-1=a")
    monkeypatch.setenv("SWITCHBOARD_CRM_API_KEYS", "crm-only-key=b,second-key=c")
    monkeypatch.setenv("SWITCHBOARD_HTTP_PORT", "9999")
    settings = load_settings(CrmSettings)
    assert settings.api_keys == {"crm-only-key": "b", "second-key": "c"}
    assert settings.http_port == 9999


def test_service_exits_2_with_one_sentence_on_bad_config() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["SWITCHBOARD_CRM_API_KEYS"] = "short=x"
    result = subprocess.run(
        [sys.executable, "-m", "switchboard.crm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "crm: setting SWITCHBOARD_CRM_API_KEYS is invalid: "
        "Value error, API keys must be at least 8 characters."
    ]


def _json_log() -> io.StringIO:
    """Logging configured as a service does (JSON lines), written to the returned stream."""
    stream = io.StringIO()
    configure_logging("test", "info", json=True)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


def test_logs_redact_secret_keys_and_registered_values() -> None:
    stream = _json_log()
    register_secret("100000001:AAHsuperSecretBotToken")
    log = structlog.get_logger("t")
    log.info(
        "calling provider",
        url="https://api.telegram.org/bot100000001:AAHsuperSecretBotToken/getMe",
        webhook_secret="abc",
        nested={"password": "p", "ok": "fine"},
    )
    logging.getLogger("uvicorn").warning("stdlib says 100000001:AAHsuperSecretBotToken")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "AAHsuperSecret" not in stream.getvalue()
    assert lines[0]["webhook_secret"] == REDACTED
    assert lines[0]["nested"] == {"password": REDACTED, "ok": "fine"}
    assert lines[0]["url"] == f"https://api.telegram.org/bot{REDACTED}/getMe"
    assert lines[0]["service"] == "test"


def test_a_session_is_redacted_but_its_id_is_not() -> None:
    """A Telethon StringSession is a secret; the id naming a session is what an operator
    needs to find which session failed (every runner log was "[redacted]" before)."""
    stream = _json_log()
    log = structlog.get_logger("t")
    log.info("session claimed", session="1BVtsOKABu0...", session_id="agent-3", session_ids=["a"])
    line = json.loads(stream.getvalue().splitlines()[0])
    assert line["session"] == REDACTED
    assert (line["session_id"], line["session_ids"]) == ("agent-3", ["a"])


def test_secrets_recognisable_by_shape_are_redacted_unregistered() -> None:
    # Found by the security audit: a bot token logged (httpx's request line) before its
    # account was ever stored or read, so nobody had registered it.
    stream = _json_log()
    logging.getLogger("httpx").info(
        "HTTP Request: POST http://sandbox/telegram/bot300000077:AAHnever-registered-token/getMe"
    )
    structlog.get_logger("t").info(
        "calls",
        header="Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
        url="https://g/x?access_token=EAAB9&v=2",
    )
    text = stream.getvalue()
    assert "never-registered" not in text
    assert "eyJhbGci" not in text
    assert "EAAB9" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[1]["url"] == f"https://g/x?access_token={REDACTED}&v=2"
    # Ordinary text that only resembles a shape stays readable.
    structlog.get_logger("t").info("at 12:30:45 chat 123456:short")
    assert "12:30:45 chat 123456:short" in stream.getvalue()


def test_an_account_with_plaintext_secrets_registers_them_at_once() -> None:
    from switchboard.runtime.accounts import Account

    Account(channel="viber", id="v1", secrets={"token": "viber-token-never-logged-42"})
    stream = _json_log()
    structlog.get_logger("t").info("got viber-token-never-logged-42 back")
    assert "never-logged" not in stream.getvalue()


def test_keyring_encrypts_binds_and_rotates() -> None:
    old = Keyring.from_mapping(parse_keyring(f"k1:{Keyring.generate_key()}"))
    token = old.encrypt(b"bot-token", b"telegram.demo/token")
    assert b"bot-token" not in token.encode()
    assert old.decrypt(token, b"telegram.demo/token") == b"bot-token"
    with pytest.raises(DecryptError, match="does not authenticate"):
        old.decrypt(token, b"telegram.other/token")  # moved to another record
    rotated = Keyring({"k2": os.urandom(32), **old.keys}, "k2")
    assert rotated.decrypt(token, b"telegram.demo/token") == b"bot-token"
    assert rotated.key_id(rotated.encrypt(b"x", b"a")) == "k2"
    retired = Keyring({"k2": rotated.keys["k2"]}, "k2")
    with pytest.raises(DecryptError, match="key 'k1'"):
        retired.decrypt(token, b"telegram.demo/token")
