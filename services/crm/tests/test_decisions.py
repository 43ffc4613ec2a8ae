"""Every CRM command decided over folded aggregate state, without a bus: the events it
appends, a repeated command changing nothing, and every refusal naming its reason."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from switchboard.crm import decisions, keys
from switchboard.crm.decisions import Context, Decision, RejectedError
from switchboard.crm.state import ContactState, LeadState
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import (
    AssignLead,
    ChangeLeadStage,
    ContactErased,
    ContactMerged,
    ContactSplit,
    ContactUpdated,
    CreateLead,
    EraseContact,
    Identity,
    LeadAssigned,
    LeadCreated,
    LeadStageChanged,
    MergeContacts,
    SplitContact,
    UpdateContact,
)

CTX = Context("ws", ("new", "qualified", "won"))
TG = Identity(channel=Channel.TELEGRAM, external_id="9", account="demo")
WA = Identity(channel=Channel.WHATSAPP, external_id="5511900000000")


def lead(
    stage: str = "new",
    *,
    contact: str = "ct_1",
    workspace: str = "ws",
    assignee: str | None = None,
    value: Decimal | None = None,
) -> LeadState:
    return LeadState("ld_1", workspace, contact, stage, assignee, value, 4)


def contact(
    contact_id: str = "ct_1",
    *,
    workspace: str = "ws",
    identities: tuple[Identity, ...] = (TG, WA),
    merged: tuple[str, ...] = (),
    erased: bool = False,
) -> ContactState:
    return ContactState(contact_id, workspace, list(identities), list(merged), erased, 7)


# -- crm.change_lead_stage -------------------------------------------------------------

STAGE = ChangeLeadStage(lead_id="ld_1", to_stage="won", by="ana", value=Decimal("10"))


def test_a_stage_change_moves_the_lead() -> None:
    assert decisions.change_lead_stage(STAGE, lead("qualified"), CTX) == Decision(
        "ld_1",
        4,
        (
            LeadStageChanged(
                lead_id="ld_1",
                contact_id="ct_1",
                from_stage="qualified",
                to_stage="won",
                by="ana",
                value=Decimal("10"),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("cmd", "state"),
    [
        (STAGE, lead("won", value=Decimal("10"))),
        (STAGE.model_copy(update={"value": None}), lead("won", value=Decimal("3"))),
    ],
)
def test_a_lead_at_that_stage_and_value_changes_nothing(
    cmd: ChangeLeadStage, state: LeadState
) -> None:
    assert decisions.change_lead_stage(cmd, state, CTX) == Decision("ld_1", 4)


# -- crm.assign_lead -------------------------------------------------------------------

ASSIGN = AssignLead(lead_id="ld_1", assignee="bob")


def test_assigning_a_lead_and_assigning_it_again() -> None:
    event = LeadAssigned(lead_id="ld_1", assignee="bob")
    assert decisions.assign_lead(ASSIGN, lead(), CTX) == Decision("ld_1", 4, (event,))
    assert decisions.assign_lead(ASSIGN, lead(assignee="bob"), CTX) == Decision("ld_1", 4)


# -- crm.create_lead -------------------------------------------------------------------

CREATE = CreateLead(
    lead_id="ld_1", contact_id="ct_1", stage="qualified", source_channel=Channel.TELEGRAM
)


def test_a_new_lead_is_created_at_its_stage_at_version_0() -> None:
    event = LeadCreated(
        lead_id="ld_1", contact_id="ct_1", stage="qualified", source_channel=Channel.TELEGRAM
    )
    assert decisions.create_lead(CREATE, None, contact(), CTX) == Decision("ld_1", 0, (event,))


def test_the_same_creation_again_changes_nothing() -> None:
    assert decisions.create_lead(CREATE, lead(), contact(), CTX) == Decision("ld_1", 4)


# -- crm.update_contact ----------------------------------------------------------------


def test_an_update_is_recorded_with_the_phone_normalized() -> None:
    cmd = UpdateContact(contact_id="ct_1", display_name="Ana", phone="+55 (11) 90000-0000")
    [event] = decisions.update_contact(cmd, contact(), CTX).events
    assert event == ContactUpdated(contact_id="ct_1", display_name="Ana", phone="5511900000000")


# -- crm.merge_contacts ----------------------------------------------------------------

MERGE = MergeContacts(contact_id="ct_1", merged_contact_id="ct_2")


def test_merging_folds_the_other_contact_in_once() -> None:
    event = ContactMerged(contact_id="ct_1", merged_contact_id="ct_2")
    decided = decisions.merge_contacts(MERGE, contact(), contact("ct_2"), CTX)
    assert decided == Decision("ct_1", 7, (event,))
    again = decisions.merge_contacts(MERGE, contact(merged=("ct_2",)), contact("ct_2"), CTX)
    assert again == Decision("ct_1", 7)
    # repeated after the read model shows ct_2 gone: still nothing to do, not a refusal
    gone = Context("ws", CTX.stages, {"ct_2": "ct_1"})
    again = decisions.merge_contacts(MERGE, contact(merged=("ct_2",)), contact("ct_2"), gone)
    assert again == Decision("ct_1", 7)


@pytest.mark.parametrize(
    ("survivor", "merged", "merged_into", "gone"),
    [
        # ct_2 absorbed ct_1 before: ct_1 absorbing ct_2 now is a cycle (its own state says)
        (contact(), contact("ct_2", merged=("ct_1",)), {}, "ct_1"),
        # ct_1 was merged into ct_9 (the read model says): it cannot absorb anything
        (contact(), contact("ct_2"), {"ct_1": "ct_9"}, "ct_1"),
        # ct_2 was merged into ct_9 already: merging it again would move ct_9's
        (contact(), contact("ct_2"), {"ct_2": "ct_9"}, "ct_2"),
    ],
)
def test_a_contact_merged_away_neither_absorbs_nor_is_absorbed(
    survivor: ContactState, merged: ContactState, merged_into: dict[str, str], gone: str
) -> None:
    """Before, the projection folded the survivor into itself and every contact of the
    cycle vanished from the lists."""
    ctx = Context("ws", CTX.stages, merged_into)
    with pytest.raises(RejectedError) as refused:
        decisions.merge_contacts(MERGE, survivor, merged, ctx)
    assert (refused.value.status, refused.value.code) == (409, "merged_away")
    assert gone in refused.value.message


# -- crm.split_contact -----------------------------------------------------------------


def test_a_split_moves_the_identity_to_a_contact_derived_from_it() -> None:
    cmd = SplitContact(
        contact_id="ct_1", identity=Identity(channel=Channel.WHATSAPP, external_id=WA.external_id)
    )
    [event] = decisions.split_contact(cmd, contact(), CTX).events
    claim = f"split:ct_1:whatsapp:{WA.external_id}"
    expected = ContactSplit(
        contact_id="ct_1", identity=WA, new_contact_id="ct_" + keys.claim_key("ws", claim)[:24]
    )
    assert event == expected
    assert decisions.split_contact(cmd, contact(), CTX).events == (expected,)


# -- crm.erase_contact -----------------------------------------------------------------

ERASE = EraseContact(contact_id="ct_1", by="dpo")


def test_an_erasure_records_the_identities_hashes_once() -> None:
    [event] = decisions.erase_contact(ERASE, contact(), CTX).events
    hashes = sorted(
        keys.erased_identity_hash("ws", i.channel.value, i.external_id) for i in (TG, WA)
    )
    assert event == ContactErased(contact_id="ct_1", requested_by="dpo", identity_hashes=hashes)
    assert decisions.erase_contact(ERASE, contact(erased=True), CTX) == Decision("ct_1", 7)


# -- refusals --------------------------------------------------------------------------


DECIDES: dict[type, Callable[..., Decision]] = {
    ChangeLeadStage: decisions.change_lead_stage,
    AssignLead: decisions.assign_lead,
    CreateLead: decisions.create_lead,
    UpdateContact: decisions.update_contact,
    MergeContacts: decisions.merge_contacts,
    SplitContact: decisions.split_contact,
    EraseContact: decisions.erase_contact,
}


def _decide(cmd: Any, *states: Any) -> Decision:
    return DECIDES[type(cmd)](cmd, *states, CTX)


SPLIT_TG = SplitContact(contact_id="ct_1", identity=TG)


@pytest.mark.parametrize(
    ("cmd", "states", "status", "code"),
    [
        (STAGE.model_copy(update={"to_stage": "lost"}), (lead(),), 422, "invalid_stage"),
        (STAGE, (None,), 404, "not_found"),
        (STAGE, (lead(workspace="other"),), 404, "not_found"),
        (STAGE.model_copy(update={"expected_version": 3}), (lead(),), 409, "conflict"),
        (ASSIGN, (None,), 404, "not_found"),
        (ASSIGN.model_copy(update={"expected_version": 5}), (lead(),), 409, "conflict"),
        (CREATE.model_copy(update={"stage": "lost"}), (None, contact()), 422, "invalid_stage"),
        (CREATE, (lead(contact="ct_2"), contact()), 409, "lead_exists"),
        (CREATE, (lead(workspace="other"), contact()), 409, "lead_exists"),
        (CREATE, (None, None), 404, "not_found"),
        (CREATE, (None, contact(workspace="other")), 404, "not_found"),
        (CREATE, (None, contact(erased=True)), 410, "erased"),
        (UpdateContact(contact_id="ct_1"), (None,), 404, "not_found"),
        (UpdateContact(contact_id="ct_1"), (contact(erased=True),), 410, "erased"),
        (UpdateContact(contact_id="ct_1", expected_version=6), (contact(),), 409, "conflict"),
        (UpdateContact(contact_id="ct_1", note="n" * 65_537), (contact(),), 422, "too_large"),
        (
            UpdateContact(contact_id="ct_1", display_name="n" * 1_001),
            (contact(),),
            422,
            "too_large",
        ),
        (UpdateContact(contact_id="ct_1", phone="1" * 65), (contact(),), 422, "too_large"),
        (
            UpdateContact(contact_id="ct_1", attributes={"a": "é" * 32_767}),
            (contact(),),
            422,
            "too_large",
        ),
        (UpdateContact(contact_id="ct_1", tags_added=("t",) * 101), (contact(),), 422, "too_large"),
        (
            UpdateContact(contact_id="ct_1", tags_removed=("t" * 101,)),
            (contact(),),
            422,
            "too_large",
        ),
        (
            MERGE.model_copy(update={"merged_contact_id": "ct_1"}),
            (contact(), contact()),
            422,
            "same_contact",
        ),
        (MERGE, (contact(), None), 404, "not_found"),
        (MERGE, (contact(), contact("ct_2", erased=True)), 410, "erased"),
        (
            MERGE.model_copy(update={"expected_version": 1}),
            (contact(), contact("ct_2")),
            409,
            "conflict",
        ),
        (SPLIT_TG, (contact(identities=(WA,)),), 422, "unknown_identity"),
        (SPLIT_TG, (contact(identities=(TG,)),), 422, "last_identity"),
        (SPLIT_TG, (None,), 404, "not_found"),
        (ERASE, (None,), 404, "not_found"),
        (ERASE, (contact(workspace="other"),), 404, "not_found"),
    ],
)
def test_refusals_name_their_reason(
    cmd: Any, states: tuple[Any, ...], status: int, code: str
) -> None:
    with pytest.raises(RejectedError) as err:
        _decide(cmd, *states)
    assert (err.value.status, err.value.code) == (status, code)


def test_an_update_at_every_limit_is_recorded() -> None:
    at_limits = UpdateContact(
        contact_id="ct_1", display_name="n" * 1_000, phone="1" * 64, note="n" * 65_536,
        attributes={"a": "x" * 65_000}, tags_added=("t" * 100,) * 100,
    )  # fmt: skip
    (event,) = _decide(at_limits, contact()).events
    assert isinstance(event, ContactUpdated)
    assert event.note == at_limits.note
