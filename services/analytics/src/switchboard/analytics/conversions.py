"""Conversion signals: a lead reaching a configured stage becomes one ``SendConversion``
command, with ids derived from the lead and stage so that Meta dedups it against the pixel
and outbound executes it at most once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from switchboard.analytics.context import ConversionRules
from switchboard.events.catalog.outbound import ConversionUserData, SendConversion

EMAIL_KEYS = ("email", "emails", "e-mail", "e_mail")


@dataclass
class Person:
    """What the CRM events told us about a contact (blanked when it is erased)."""

    display_name: str | None = None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    merged_into: str | None = None
    erased: bool = False
    changed: bool = False

    def add_phone(self, phone: str | None, first: bool = False) -> None:
        if not phone or self.erased:
            return
        if phone in self.phones:
            self.phones.remove(phone)
        if first:
            self.phones.insert(0, phone)
        else:
            self.phones.append(phone)
        self.changed = True

    def add_emails(self, attributes: dict[str, Any]) -> None:
        if self.erased:
            return
        for key in EMAIL_KEYS:
            value = attributes.get(key)
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, str) and "@" in v and v.strip() not in self.emails:
                    self.emails.append(v.strip())
                    self.changed = True

    def erase(self) -> None:
        self.display_name, self.phones, self.emails = None, [], []
        self.erased = self.changed = True


@dataclass(frozen=True)
class LeadFacts:
    lead_id: str
    contact_id: str
    source: str
    campaign_id: str
    value: Decimal | None
    currency: str | None
    click_id: str | None = None  # WhatsApp ctwa_clid of the ad the lead came from


def conversion_id(lead_id: str, stage: str) -> str:
    """The idempotency key of a lead's conversion at a stage (one per lead and stage)."""
    return f"{lead_id}:{stage}"


def meta_event_id(lead_id: str, stage: str) -> str:
    """Meta's dedup key: the same lead and stage reported by a pixel dedups against it."""
    return f"lead.{lead_id}.{stage}"


def user_data(
    contact_id: str, person: Person | None, click_id: str | None = None
) -> ConversionUserData:
    """Plain identifiers in Meta's field names; outbound normalizes and hashes them."""
    fn = ln = None
    if person is not None and person.display_name:
        first, _, rest = person.display_name.strip().partition(" ")
        fn, ln = first or None, rest.strip() or None
    return ConversionUserData(
        em=tuple(person.emails) if person else (),
        ph=tuple(person.phones) if person else (),
        fn=fn,
        ln=ln,
        external_id=(contact_id,),
        ctwa_clid=click_id,
    )


def conversion_command(
    rules: ConversionRules,
    *,
    lead: LeadFacts,
    stage: str,
    at: datetime,
    person: Person | None,
) -> SendConversion | None:
    """The command for ``lead`` reaching ``stage`` at ``at``, or None when the stage is not
    configured to report anything. A lead that came from a click-to-WhatsApp ad is reported
    as a ``business_messaging`` event on WhatsApp with its ``ctwa_clid``, which is what
    attributes the conversion to the ad."""
    event_name = rules.events.get(stage)
    if event_name is None:
        return None
    value = float(lead.value) if lead.value is not None else None
    custom: dict[str, Any] = {"lead_stage": stage, "lead_source": lead.source}
    if lead.campaign_id:
        custom["campaign_id"] = lead.campaign_id
    return SendConversion(
        conversion_id=conversion_id(lead.lead_id, stage),
        account=rules.pixel,
        event_name=event_name,
        event_time=at,
        event_id=meta_event_id(lead.lead_id, stage),
        action_source="business_messaging" if lead.click_id else rules.action_source,
        messaging_channel="whatsapp" if lead.click_id else None,
        user_data=user_data(lead.contact_id, person, lead.click_id),
        value=value,
        currency=(lead.currency or rules.currency) if value is not None else None,
        custom_data=custom,
        lead_id=lead.lead_id,
        test_event_code=rules.test_event_code,
    )
