"""Conversion commands derived from a lead reaching a stage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from switchboard.analytics.context import ConversionRules
from switchboard.analytics.conversions import LeadFacts, Person, conversion_command

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
