"""API keys as credentials, the decisions without NATS: key shape, keyed hash, scopes,
expiry, how often a use is written, and which scope a route needs."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from switchboard.runtime.auth import ApiKeyAuth, scope_for_method
from switchboard.runtime.keys import (
    ALL_SCOPES,
    KeyRecord,
    Scope,
    hash_key,
    key_id_of,
    needs_touch,
    new_key,
    parse_scopes,
    verify,
)
from switchboard.runtime.settings import parse_api_keys

PEPPER = b"pepper-for-unit-tests-0123456789"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(key: str, **changes: object) -> KeyRecord:
    key_id = key_id_of(key)
    assert key_id is not None
    data: dict[str, object] = {
        "key_id": key_id,
        "workspace_id": "demo",
        "scopes": (Scope.READ,),
        "hash": hash_key(PEPPER, key),
        "created_at": NOW,
        **changes,
    }
    return KeyRecord.model_validate(data)


def test_a_new_key_carries_its_id_and_the_hash_is_keyed() -> None:
    key_id, key = new_key()
    assert key_id_of(key) == key_id
    assert key_id not in (key_id_of("demo-key"), None)
    assert hash_key(PEPPER, key) != hash_key(b"another-pepper-0123456789", key)
    assert key not in hash_key(PEPPER, key)
    assert new_key()[1] != key


def test_verify_refuses_a_wrong_key_an_expired_and_a_revoked_one() -> None:
    _, key = new_key()
    record = _record(key)
    assert verify(record, PEPPER, key, NOW)
    assert not verify(record, PEPPER, key[:-1] + ("A" if key[-1] != "A" else "B"), NOW)
    assert not verify(record, b"wrong-pepper-0123456789", key, NOW)
    expiring = _record(key, expires_at=NOW + timedelta(hours=1))
    assert verify(expiring, PEPPER, key, NOW + timedelta(minutes=59))
    assert not verify(expiring, PEPPER, key, NOW + timedelta(hours=1))
    assert not verify(_record(key, revoked_at=NOW), PEPPER, key, NOW)


def test_the_public_view_of_a_record_never_holds_the_hash() -> None:
    _, key = new_key()
    public = _record(key).public()
    assert "hash" not in public
    assert key not in str(public)


def test_last_use_is_written_at_most_once_a_minute() -> None:
    _, key = new_key()
    assert needs_touch(_record(key), NOW)
    touched = _record(key, last_used_at=NOW)
    assert not needs_touch(touched, NOW + timedelta(seconds=59))
    assert needs_touch(touched, NOW + timedelta(seconds=60))


def test_scopes_parse_and_name_the_unknown_one() -> None:
    assert parse_scopes("read, send") == {Scope.READ, Scope.SEND}
    assert parse_scopes(["admin"]) == {Scope.ADMIN}
    with pytest.raises(ValueError, match="'write'"):
        parse_scopes("read,write")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes("")


def test_reads_need_read_and_everything_else_needs_send() -> None:
    assert scope_for_method("GET") is Scope.READ
    assert scope_for_method("head") is Scope.READ
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert scope_for_method(method) is Scope.SEND


def test_config_keys_have_every_scope_unless_they_name_theirs() -> None:
    keys = parse_api_keys("demo-key=demo,ro-key-001=other:read")
    auth = ApiKeyAuth(keys)
    full = auth.config_principal("demo-key")
    assert full is not None
    assert full.scopes == ALL_SCOPES
    assert full.workspace == "demo"
    read_only = auth.config_principal("ro-key-001")
    assert read_only is not None
    assert (read_only.workspace, read_only.scopes) == ("other", {Scope.READ})
    assert auth.config_principal("nobody-key") is None
    with pytest.raises(ValueError, match="'write'"):
        parse_api_keys("some-key-1=demo:write")


def test_the_keys_command_reads_durations_times_and_the_dev_pepper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchboard.runtime import keys_cli

    assert keys_cli._duration("90s") == timedelta(seconds=90)
    assert keys_cli._duration("30d") == timedelta(days=30)
    with pytest.raises(argparse.ArgumentTypeError, match="no duration"):
        keys_cli._duration("soon")
    assert keys_cli._expiry("2027-01-01T00:00:00") == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="neither"):
        keys_cli._expiry("tomorrow")
    monkeypatch.delenv("SWITCHBOARD_API_KEY_PEPPER", raising=False)
    assert keys_cli._pepper(tmp_path) is None
    (tmp_path / "dev-api-key-pepper").write_text("dev-pepper-from-up-0123\n")
    assert keys_cli._pepper(tmp_path) == b"dev-pepper-from-up-0123"
    monkeypatch.setenv("SWITCHBOARD_API_KEY_PEPPER", "from-the-environment-0123")
    assert keys_cli._pepper(tmp_path) == b"from-the-environment-0123"


def test_a_service_needs_configured_keys_only_without_stored_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from switchboard.crm.settings import CrmSettings
    from switchboard.runtime.settings import ConfigError, load_settings

    for name in ("SWITCHBOARD_API_KEYS", "SWITCHBOARD_API_KEY_PEPPER", "SWITCHBOARD_CRM_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="API_KEY_PEPPER"):
        load_settings(CrmSettings)
    stored_only = load_settings(CrmSettings, api_key_pepper="a-pepper-of-16-chars-or-more")
    assert stored_only.api_keys == {}
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings(CrmSettings, api_keys="demo-key=demo", api_key_pepper="short")
