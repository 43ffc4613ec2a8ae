"""The setting types every service shares (``ApiKeysSetting``, ``KeyringSetting`` in
``runtime.settings``): each service that declares the field gets the same parsing and the same
one-sentence refusal."""

from __future__ import annotations

import os

import pytest
from tests.support.stack import KEY

from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.settings import CrmSettings
from switchboard.flows.settings import FlowsSettings
from switchboard.ingest.settings import IngestSettings
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.settings import ConfigError, ServiceSettings, load_settings

PEPPER = "a-pepper-of-16-chars-or-more"
KEYRINGS = (IngestSettings, OutboundSettings, MtprotoSettings, CrmSettings)
API_KEYS = (CrmSettings, OutboundSettings, FlowsSettings, AnalyticsSettings)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("ring", "reason"),
    [
        (" , ", "Value error, needs at least one id:base64key."),
        ("k1:c2hvcnQ=", "Value error, key 'k1' must be 32 bytes (AES-256), got 5."),
    ],
    ids=["no-key", "short-key"],
)
@pytest.mark.parametrize("cls", KEYRINGS, ids=lambda c: c.service)
def test_a_bad_key_ring_is_one_sentence_naming_the_setting_not_the_key(
    cls: type[ServiceSettings], ring: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(cls, encryption_keys=ring, api_key_pepper=PEPPER)
    assert str(err.value) == (
        f"{cls.service}: setting {cls.env_name('encryption_keys')} is invalid: {reason}"
    )


@pytest.mark.parametrize("cls", KEYRINGS, ids=lambda c: c.service)
def test_a_good_key_ring_is_kept_secret(cls: type[ServiceSettings]) -> None:
    settings = load_settings(cls, encryption_keys=KEY, api_key_pepper=PEPPER)
    ring = getattr(settings, "encryption_keys")  # noqa: B009  (each class declares it)
    assert ring.get_secret_value() == KEY
    assert KEY not in repr(settings)


def test_the_crm_runs_without_a_key_ring() -> None:
    assert load_settings(CrmSettings, api_key_pepper=PEPPER).encryption_keys is None


@pytest.mark.parametrize("cls", API_KEYS, ids=lambda c: c.service)
def test_api_keys_are_needed_unless_stored_keys_are_on(
    cls: type[ServiceSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_ENCRYPTION_KEYS", KEY)
    with pytest.raises(ConfigError, match="API_KEY_PEPPER for stored keys"):
        load_settings(cls)
    assert getattr(load_settings(cls, api_key_pepper=PEPPER), "api_keys") == {}  # noqa: B009
    monkeypatch.setenv(cls.env_name("api_keys"), "demo-key-1=ws1,other-key=ws2:read")
    keys = getattr(load_settings(cls), "api_keys")  # noqa: B009
    assert keys == {"demo-key-1": "ws1", "other-key": "ws2:read"}
    with pytest.raises(ConfigError, match="at least 8 characters"):
        load_settings(cls, api_keys="short=ws1")
