"""docker/compose.yaml: NATS with JetStream, Postgres, and every service with the settings
its pydantic settings class needs (derived from the class, not listed here by hand)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from switchboard.runtime.settings import ConfigError, load_settings
from tests.deploy.support import (
    COMPOSE,
    SETTINGS,
    env_field,
    needed_in_container,
    services,
    uses_postgres,
)

_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _environment(service: str) -> dict[str, str]:
    """A service's environment with compose's ``${VAR:-default}`` resolved to the defaults."""
    env = _compose()["services"][service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in env.items()}


def test_compose_has_the_backbone_and_every_service() -> None:
    defined = set(_compose()["services"])
    assert {"nats", "postgres", *services()} <= defined
    nats = _compose()["services"]["nats"]
    assert "-js" in nats["command"], "NATS runs with JetStream"
    assert "healthcheck" in nats
    assert "healthcheck" in _compose()["services"]["postgres"]


@pytest.mark.parametrize("service", services())
def test_service_env_covers_what_its_settings_need(service: str) -> None:
    cls = SETTINGS[service]
    env = _environment(service)
    provided = {env_field(cls, name) for name in env}
    missing = needed_in_container(cls) - provided
    assert not missing, f"{service}: compose must set {sorted(missing)}"
    unknown = [
        name for name in env if name.startswith("SWITCHBOARD_") and env_field(cls, name) is None
    ]
    assert not unknown, f"{service}: these variables set no setting: {unknown}"


@pytest.mark.parametrize("service", services())
def test_service_env_is_valid_for_its_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values themselves load (keys decode, URLs have the right scheme, ...)."""
    import os

    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    for name, value in _environment(service).items():
        monkeypatch.setenv(name, value)
    try:
        settings = load_settings(SETTINGS[service])
    except ConfigError as exc:
        pytest.fail(f"{service}: {exc}")
    assert settings.http_host == "0.0.0.0"
    assert settings.nats_url.startswith("nats://nats:")
    if uses_postgres(SETTINGS[service]):
        assert "@postgres:5432/" in settings.database_url  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", services())
def test_service_container_is_hardened_and_healthchecked(service: str) -> None:
    svc = _compose()["services"][service]
    assert svc["read_only"] is True
    assert "/tmp" in svc["tmpfs"]
    assert svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert svc["build"]["dockerfile"] == "docker/Dockerfile"
    assert svc["command"] == ["python", "-m", f"switchboard.{service}"]
    port = _environment(service)["SWITCHBOARD_HTTP_PORT"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(svc["healthcheck"]["test"])
    needs = set(svc["depends_on"])
    assert "nats" in needs
    assert ("postgres" in needs) == uses_postgres(SETTINGS[service])


def test_analytics_sends_no_conversions_until_a_pixel_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With compose's defaults analytics reports nothing to Meta; docker/.env turns it on."""
    import os

    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    for name, value in _environment("analytics").items():
        monkeypatch.setenv(name, value)
    assert not load_settings(SETTINGS["analytics"]).conversions_enabled  # type: ignore[attr-defined]
