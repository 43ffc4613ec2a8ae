"""Settings: defaults, and one clear sentence for each configuration mistake."""

from __future__ import annotations

import pytest

from switchboard.analytics.context import ConversionRules
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", "key-000000001=demo")


def test_defaults_leave_conversions_off() -> None:
    s = load_settings(AnalyticsSettings)
    assert (s.http_port, s.lead_stages[-2:], s.conversion_events) == (
        8084,
        ("won", "lost"),
        {"won": "Purchase"},
    )
    assert ConversionRules.from_settings(s) is None


def test_conversion_mapping_and_pixel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL", "1234")
    monkeypatch.setenv("SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS", "qualified=Lead, won=Purchase")
    rules = ConversionRules.from_settings(load_settings(AnalyticsSettings))
    assert rules is not None
    assert (rules.pixel, rules.events) == ("1234", {"qualified": "Lead", "won": "Purchase"})


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SWITCHBOARD_API_KEYS": ""}, "SWITCHBOARD_ANALYTICS_API_KEYS"),
        ({"SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS": "won"}, "stage=EventName"),
        ({"SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS": "paid=Purchase"}, "'paid' is not one of"),
        ({"SWITCHBOARD_ANALYTICS_CONVERSION_CURRENCY": "euro"}, "CONVERSION_CURRENCY"),
        ({"SWITCHBOARD_ANALYTICS_LEAD_STAGES": "new,new"}, "unique"),
        ({"SWITCHBOARD_ANALYTICS_CONVERSION_ACTION_SOURCE": "fax"}, "ACTION_SOURCE"),
    ],
)
def test_mistakes_stop_start_up_with_one_sentence(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(AnalyticsSettings)
    assert words in str(caught.value)
    assert str(caught.value).startswith("analytics: ")
