"""The campaign commands on a real JetStream KV: batches in any order, a retried start that
keeps the batches already stored, controls applied in publish order, campaign ids per
workspace, and no campaign through another workspace's account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    AddCampaignRecipients,
    ControlCampaign,
    StartCampaign,
)
from switchboard.outbound.campaigns.commands import (
    CampaignCommands,
    CampaignConflictError,
    ForeignAccountError,
)
from switchboard.outbound.campaigns.state import CampaignStore, campaign_key
from switchboard.outbound.campaigns.view import CampaignView
from switchboard.runtime.accounts import Account, AccountCache, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring

C1 = campaign_key("demo", "c1")


def env(workspace: str = "demo") -> Envelope:
    return Envelope(
        id="x", type="t", source="tests", time=datetime.now(UTC), workspace_id=workspace
    )


def start(recipients: list[Any], **changes: Any) -> StartCampaign:
    data = {
        "campaign_id": "c1",
        "channel": "telegram",
        "accounts": ["a", "b"],
        "content": {"kind": "text", "text": "hi"},
        "recipients": recipients,
        "final": False,
        **changes,
    }
    return StartCampaign.model_validate(data)


@pytest.fixture
async def commands(bus: Bus) -> CampaignCommands:
    store = CampaignStore(await bus.kv("sends"))
    accounts = AccountStore(await bus.kv("accounts"), Keyring({"k": bytes(32)}, "k"))
    for name, workspace in (("a", "demo"), ("b", "demo"), ("theirs", "other")):
        await accounts.put(Account(channel=Channel.TELEGRAM, id=name, workspace_id=workspace))
    cache = AccountCache(accounts)
    return CampaignCommands(bus, store, CampaignView(store), cache)


async def test_batches_in_any_order_and_a_retried_start_keeps_what_is_stored(
    commands: CampaignCommands,
) -> None:
    store = commands.store
    last = AddCampaignRecipients(campaign_id="c1", batch=2, recipients=["7"], final=True)
    await commands.add(last, env())
    early = await store.state(C1)
    assert early is not None
    assert (early.status, early.total) == ("pending", None)  # no start yet
    await commands.start(start(["1", {"recipient": "2", "account": "b"}, "3"]), env(), seq=10)
    middle = AddCampaignRecipients(campaign_id="c1", batch=1, recipients=["4", "5"])
    await commands.add(middle, env())
    # the producer retries its start with a fresher expansion of its segment
    await commands.start(start(["9", "8"], title="again"), env(), seq=11)
    state = await store.state(C1)
    assert state is not None
    assert (state.status, state.total, state.received) == ("running", 6, 6)
    assert [r.recipient for r in await store.batch(C1, 0)] == ["1", "2", "3"]
    assert (await store.batch(C1, 0))[1].account == "b"
    assert state.start() is not None
    assert state.start().title is None  # type: ignore[union-attr]  # the first start stands


async def test_controls_apply_in_publish_order_and_cancel_is_final(
    commands: CampaignCommands,
) -> None:
    store = commands.store
    await commands.control(ControlCampaign(campaign_id="c1", action="pause"), env(), seq=5)
    await commands.start(start(["1"], final=True), env(), seq=3)  # published before the pause
    state = await store.state(C1)
    assert state is not None
    assert state.status == "paused"
    await commands.control(ControlCampaign(campaign_id="c1", action="resume"), env(), seq=4)
    assert (await store.state(C1)).status == "paused"  # type: ignore[union-attr]  # older
    await commands.control(ControlCampaign(campaign_id="c1", action="resume"), env(), seq=6)
    assert (await store.state(C1)).status == "running"  # type: ignore[union-attr]
    await commands.control(ControlCampaign(campaign_id="c1", action="cancel"), env(), seq=7)
    await commands.control(ControlCampaign(campaign_id="c1", action="resume"), env(), seq=8)
    assert (await store.state(C1)).status == "cancelled"  # type: ignore[union-attr]


async def test_a_campaign_id_is_per_workspace(commands: CampaignCommands) -> None:
    # "other" starting and cancelling its own "c1" is another campaign: demo's is untouched.
    await commands.start(start(["1"]), env("demo"), seq=1)
    await commands.start(start(["2", "3"], accounts=["theirs"]), env("other"), seq=2)
    await commands.control(ControlCampaign(campaign_id="c1", action="cancel"), env("other"), 3)
    mine = await commands.store.state(C1)
    theirs = await commands.store.state(campaign_key("other", "c1"))
    assert mine is not None
    assert theirs is not None
    assert (mine.workspace_id, mine.status, mine.received) == ("demo", "running", 1)
    assert (theirs.workspace_id, theirs.status, theirs.received) == ("other", "cancelled", 2)
    assert [r.recipient for r in await commands.store.batch(C1, 0)] == ["1"]
    assert campaign_key("default", "c1") == "c1"  # ids stored before scoping stay readable


async def test_a_campaign_through_another_workspaces_account_is_refused(
    commands: CampaignCommands,
) -> None:
    # "theirs" belongs to workspace "other": for "demo" it does not exist, in the pool or
    # pinned to a recipient, and nothing of the campaign is stored.
    with pytest.raises(ForeignAccountError, match="theirs"):
        await commands.start(start(["1"], campaign_id="c9", accounts=["a", "theirs"]), env(), 1)
    pinned = [{"recipient": "1", "account": "theirs"}]
    with pytest.raises(ForeignAccountError, match="theirs"):
        await commands.start(start(pinned, campaign_id="c9"), env(), seq=2)
    assert await commands.store.state(campaign_key("demo", "c9")) is None
    await commands.start(start(["1"], campaign_id="c9"), env(), seq=3)
    with pytest.raises(ForeignAccountError, match="theirs"):
        await commands.add(
            AddCampaignRecipients(campaign_id="c9", batch=1, recipients=pinned), env()
        )


async def test_a_start_with_another_message_under_a_taken_id_is_refused(
    commands: CampaignCommands,
) -> None:
    await commands.start(start(["1"]), env(), seq=1)
    # a retry with a fresher recipient list and title is the same campaign ...
    await commands.start(start(["1", "2"], title="again"), env(), seq=2)
    # ... another content is not: refused with the reason, the campaign untouched
    changed = start(["1"], content={"kind": "text", "text": "another offer"})
    with pytest.raises(CampaignConflictError, match=r"idempotency_conflict.*content"):
        await commands.start(changed, env(), seq=3)
    state = await commands.store.state(C1)
    assert state is not None
    assert state.start().content.text == "hi"  # type: ignore[union-attr]
