"""``crm.create_lead`` decided over the lead and contact aggregates: a new lead once, the
same command again changes nothing, and every refusal names its reason."""

from __future__ import annotations

import pytest

from switchboard.crm.commands import RejectedError, decide_create_lead
from switchboard.crm.state import ContactState, LeadState
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import CreateLead, LeadCreated

STAGES = ("new", "qualified", "won")
CMD = CreateLead(
    lead_id="ld_1", contact_id="ct_1", stage="qualified", source_channel=Channel.TELEGRAM
)
CONTACT = ContactState(id="ct_1", workspace_id="ws", version=3)


def lead(contact: str = "ct_1", workspace: str = "ws") -> LeadState:
    return LeadState("ld_1", workspace, contact, "qualified", None, None, 1)


def test_a_new_lead_is_created_at_its_stage() -> None:
    event = decide_create_lead(CMD, None, CONTACT, "ws", STAGES)
    assert event == LeadCreated(
        lead_id="ld_1", contact_id="ct_1", stage="qualified", source_channel=Channel.TELEGRAM
    )


def test_the_same_command_again_changes_nothing() -> None:
    assert decide_create_lead(CMD, lead(), CONTACT, "ws", STAGES) is None


@pytest.mark.parametrize(
    ("cmd", "existing", "contact", "status", "code"),
    [
        (CMD.model_copy(update={"stage": "lost"}), None, CONTACT, 422, "invalid_stage"),
        (CMD, lead(contact="ct_2"), CONTACT, 409, "lead_exists"),
        (CMD, lead(workspace="other"), CONTACT, 409, "lead_exists"),
        (CMD, None, None, 404, "not_found"),
        (CMD, None, ContactState(id="ct_1", workspace_id="other"), 404, "not_found"),
        (CMD, None, ContactState(id="ct_1", workspace_id="ws", erased=True), 410, "erased"),
    ],
)
def test_refusals_name_their_reason(
    cmd: CreateLead,
    existing: LeadState | None,
    contact: ContactState | None,
    status: int,
    code: str,
) -> None:
    with pytest.raises(RejectedError) as err:
        decide_create_lead(cmd, existing, contact, "ws", STAGES)
    assert (err.value.status, err.value.code) == (status, code)
