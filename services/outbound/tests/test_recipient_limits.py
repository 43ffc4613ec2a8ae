"""The limits kept per person use one key per person: a WhatsApp phone however it is
written. Before, "+1 555 123 4567" and 15551234567 were two keys, so a caller mixing the
two forms got two messages a 6 s pair window allows one of (Meta answers 131056)."""

from __future__ import annotations

import pytest

from switchboard.events.catalog.outbound import recipient_key
from switchboard.outbound.limits import send_limits
from switchboard.runtime.accounts import Account

WA = Account(channel="whatsapp", id="wa1")


@pytest.mark.parametrize(
    "written", ["15551234567", "+15551234567", "+1 555 123 4567", "+1 (555) 123-4567",
                "1.555.123.4567"],
)  # fmt: skip
def test_a_whatsapp_phone_is_one_person_however_written(written: str) -> None:
    limits = send_limits(WA, written)
    assert limits.recipient is not None
    assert limits.recipient.name == "whatsapp.wa1.to.15551234567"
    assert limits.recipient_pause == "whatsapp.wa1.to.15551234567"


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [("whatsapp", "US.13491208655302741918"), ("telegram", "-1001234"),
     ("telegram", "@shop_news"), ("viber", "01234567890A="), ("mtproto", "+15551234567")],
)  # fmt: skip
def test_other_recipients_are_kept_as_they_are(channel: str, recipient: str) -> None:
    assert recipient_key(channel, recipient) == recipient
