"""Conversion commands derived from a lead reaching a stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from switchboard.analytics.context import ConversionRules, ConversionTargets, Pixels, read_pixel
from switchboard.analytics.conversions import LeadFacts, Person, conversion_command
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime import conversion_settings

RULES = ConversionRules(pixel="px", events={"won": "Purchase", "qualified": "Lead"})
AT = datetime(2026, 11, 20, 9, tzinfo=UTC)
LEAD = LeadFacts("ld_1", "ct_1", "telegram", "spring", Decimal("19.99"), None)


def test_a_configured_stage_becomes_a_command_with_ids_from_lead_and_stage() -> None:
    person = Person(display_name="Ada King Lovelace", phones=["4917611111111"])
    person.add_emails({"email": "ada@example.com", "emails": ["x@example.com", "not-an-email"]})
    cmd = conversion_command(RULES, lead=LEAD, stage="won", at=AT, person=person)
    assert cmd is not None
    assert (cmd.conversion_id, cmd.event_id, cmd.event_name, cmd.account) == (
        "ld_1:won",
        "lead.ld_1.won",
        "Purchase",
        "px",
    )
    assert (cmd.value, cmd.currency, cmd.event_time) == (19.99, "USD", AT)
    assert cmd.user_data.em == ("ada@example.com", "x@example.com")
    assert (cmd.user_data.fn, cmd.user_data.ln) == ("Ada", "King Lovelace")
    assert cmd.user_data.external_id == ("ct_1",)
    assert cmd.custom_data == {
        "lead_stage": "won",
        "lead_source": "telegram",
        "campaign_id": "spring",
    }
    assert cmd.deterministic_id() == "conversion:ld_1:won"


def test_other_stages_report_nothing_and_erased_people_only_their_id() -> None:
    assert conversion_command(RULES, lead=LEAD, stage="lost", at=AT, person=None) is None
    person = Person(display_name="Ada", phones=["1"], emails=["a@b.c"])
    person.erase()
    person.add_phone("2")
    cmd = conversion_command(RULES, lead=LEAD, stage="qualified", at=AT, person=person)
    assert cmd is not None
    assert (cmd.user_data.ph, cmd.user_data.em, cmd.user_data.fn) == ((), (), None)
    no_value = LeadFacts("ld_2", "ct_2", "unknown", "", None, "EUR")
    plain = conversion_command(RULES, lead=no_value, stage="won", at=AT, person=None)
    assert plain is not None
    assert (plain.value, plain.currency) == (None, None)


def test_a_lead_from_a_click_to_whatsapp_ad_is_a_business_messaging_conversion() -> None:
    clicked = LeadFacts("ld_3", "ct_3", "whatsapp", "", None, None, click_id="ARAkLkA8r")
    cmd = conversion_command(RULES, lead=clicked, stage="won", at=AT, person=None)
    assert cmd is not None
    assert (cmd.action_source, cmd.messaging_channel) == ("business_messaging", "whatsapp")
    assert cmd.user_data.ctwa_clid == "ARAkLkA8r"
    plain = conversion_command(RULES, lead=LEAD, stage="won", at=AT, person=None)
    assert plain is not None
    assert (plain.action_source, plain.messaging_channel) == ("system_generated", None)
    assert plain.user_data.ctwa_clid is None


def _record(pixel: str, workspace: str, **settings: str) -> bytes:
    """An account record as the registry keeps it (secrets sealed, never read here)."""
    body = {
        "channel": "generic",
        "id": pixel,
        "workspace_id": workspace,
        "settings": {"provider": "metacapi", **settings},
        "secrets": {"access_token": "sealed"},
    }
    return json.dumps(body).encode()


def _entry(raw: bytes, operation: str | None = None) -> Any:
    """A KV entry as the watch hands it to the mirror (key, value, operation)."""
    return SimpleNamespace(key=f"generic.{json.loads(raw)['id']}", value=raw, operation=operation)


def _targets(pixel: str | None, *records: bytes) -> ConversionTargets:
    pixels = Pixels()
    for raw in records:
        pixels._apply(_entry(raw))
    env = {"conversion_pixel": pixel, "conversion_currency": "USD"}
    targets = ConversionTargets.of(AnalyticsSettings(api_keys="k-0000000001=a", **env), pixels)
    assert targets is not None
    return targets


@pytest.mark.parametrize(
    ("pixel", "records", "workspace", "expected"),
    [
        # no deployment pixel, no account asking: nothing is decided
        (None, [], "a", None),
        (None, [_record("pa", "a")], "a", None),
        # the workspace's own pixel that asks, with its own events and currency
        (None, [_record("pa", "a", conversion_events="qualified=Lead", conversion_currency="EUR")],
         "a", ("pa", {"qualified": "Lead"}, "EUR")),
        # another workspace's asking pixel is not this one's
        (None, [_record("pa", "a", conversion_events="won=Purchase")], "b", None),
        # the deployment's pixel: for its owner, never for another workspace
        ("pa", [_record("pa", "a")], "a", ("pa", {"won": "Purchase"}, "USD")),
        ("pa", [_record("pa", "a")], "b", None),
        # ... unless that workspace has its own
        ("pa", [_record("pa", "a"), _record("pb", "b", conversion_events="won=Purchase")],
         "b", ("pb", {"won": "Purchase"}, "USD")),
        # a deployment pixel the registry does not know: outbound will say it is missing
        ("px", [], "b", ("px", {"won": "Purchase"}, "USD")),
        # two asking pixels in one workspace: the smallest id, every time
        (None, [_record("pz", "a", conversion_events="won=Z"),
                _record("pm", "a", conversion_events="won=M")], "a", ("pm", {"won": "M"}, "USD")),
    ],
)  # fmt: skip
def test_each_workspace_reports_to_its_own_pixel(
    pixel: str | None, records: list[bytes], workspace: str, expected: Any
) -> None:
    rules = _targets(pixel, *records).rules_for(workspace)
    got = None if rules is None else (rules.pixel, rules.events, rules.currency)
    assert got == expected


def test_another_provider_s_generic_account_is_no_pixel() -> None:
    raw = json.dumps({"channel": "generic", "id": "crm", "settings": {}}).encode()
    assert read_pixel("generic.crm", raw) is None
    with pytest.raises(ValueError, match="stage=EventName"):
        read_pixel("generic.px", _record("px", "a", conversion_events="won"))


def test_conversion_settings_are_checked_where_the_account_is_saved() -> None:
    assert conversion_settings.problems({"conversion_events": "won=Purchase"}) == []
    assert [p for p, _ in conversion_settings.problems(
        {"conversion_events": "won", "conversion_currency": "euro",
         "conversion_action_source": "fax"}
    )] == ["settings.conversion_events", "settings.conversion_currency",
           "settings.conversion_action_source"]  # fmt: skip


def test_conversions_off_decides_none_even_for_a_workspace_s_own_pixel() -> None:
    """While a ledger is restored (docs/deploy.md), the replay must decide nothing."""
    pixels = Pixels()
    pixels._apply(_entry(_record("pa", "a", conversion_events="won=Purchase")))
    settings = AnalyticsSettings(api_keys="k-0000000001=a", conversions=False)
    assert ConversionTargets.of(settings, pixels) is None


def test_a_pixel_moved_or_removed_leaves_its_old_workspace() -> None:
    """The workspace index follows the registry: a lead looks up its workspace only."""
    targets = _targets(None, _record("pa", "a", conversion_events="won=Purchase"))
    targets.pixels._apply(_entry(_record("pa", "b", conversion_events="won=Purchase")))
    assert targets.rules_for("a") is None
    assert getattr(targets.rules_for("b"), "pixel", None) == "pa"
    targets.pixels._apply(_entry(_record("pa", "b"), operation="DEL"))
    assert (targets.rules_for("b"), targets.pixels.by_workspace) == (None, {"a": {}, "b": {}})


def test_a_stage_change_past_meta_s_seven_days_decides_nothing() -> None:
    """A rebuild after a workspace added its pixel, or a catch-up after a long outage, met
    old won leads: each became a conversion Meta refuses (over 7 days old) and a dead
    letter. The window leaves an hour for the send; 0 turns it off."""
    pixels = Pixels()
    pixels._apply(_entry(_record("pa", "a", conversion_events="won=Purchase")))
    now = AT + timedelta(days=7)
    settings = AnalyticsSettings(api_keys="k-0000000001=a")
    targets = ConversionTargets.of(settings, pixels, lambda: now)
    assert targets is not None
    assert targets.too_old(AT)
    assert targets.too_old(now - timedelta(days=7) + timedelta(minutes=59))
    assert not targets.too_old(now - timedelta(days=7) + timedelta(minutes=61))
    unlimited = AnalyticsSettings(api_keys="k-0000000001=a", conversion_max_age_s=0)
    assert not ConversionTargets.of(unlimited, pixels, lambda: now).too_old(AT)
