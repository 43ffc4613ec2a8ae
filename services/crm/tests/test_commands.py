"""The generic command handler's registry: every CRM aggregate command has its decision,
and anything else is refused before the store is touched."""

from __future__ import annotations

from typing import cast

import pytest

from switchboard.crm import commands
from switchboard.crm.commands import Context, RejectedError
from switchboard.crm.store import EventStore
from switchboard.events import Command, all_models
from switchboard.events.catalog.crm import StartSegmentCampaign, StartSegmentFlow
from switchboard.events.catalog.outbound import ControlCampaign

# CRM commands that start work elsewhere (campaigns, flows) rather than change an aggregate
NOT_AGGREGATE_COMMANDS = {StartSegmentCampaign, StartSegmentFlow}


def test_every_crm_aggregate_command_has_a_decision() -> None:
    crm_commands = {
        m for m in all_models() if issubclass(m, Command) and m.name.startswith("crm.")
    } - NOT_AGGREGATE_COMMANDS
    assert set(commands.HANDLING) == crm_commands


async def test_a_command_of_another_service_is_refused_before_any_load() -> None:
    nowhere = cast(EventStore, None)  # the refusal comes before the store is used
    with pytest.raises(RejectedError) as err:
        await commands.execute(
            nowhere, ControlCampaign(campaign_id="c1", action="pause"), Context("ws")
        )
    assert (err.value.status, err.value.code) == (400, "unknown_command")
