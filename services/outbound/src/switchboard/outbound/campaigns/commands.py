"""The campaign commands (``outbound-campaigns`` durable): store recipient batches, record
the start, apply pause / resume / cancel in the order they were published. Each handler is
idempotent: a redelivered command leaves the state as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.msg import Msg

from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import CampaignStatusChanged
from switchboard.events.catalog.outbound import (
    AddCampaignRecipients,
    ControlCampaign,
    StartCampaign,
)
from switchboard.outbound.campaigns.state import (
    CampaignState,
    CampaignStore,
    campaign_key,
    start_conflict,
)
from switchboard.outbound.campaigns.view import CampaignView
from switchboard.outbound.errors import OutboundServiceError
from switchboard.outbound.fits import campaign_unfit
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError, decode_or_reject
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)


class CampaignConflictError(OutboundServiceError, PermanentError):
    """The command contradicts the campaign: another message under its id, or a record of
    another workspace (keys are per workspace: never, unless written under the wrong key)."""


def _fresh(campaign_id: str, workspace: str, now: datetime) -> CampaignState:
    return CampaignState(campaign_id=campaign_id, workspace_id=workspace, created_at=now)


def _own(
    state: CampaignState | None, campaign_id: str, workspace: str, now: datetime
) -> CampaignState:
    if state is None:
        return _fresh(campaign_id, workspace, now)
    if state.workspace_id != workspace:
        raise CampaignConflictError(f"campaign {campaign_id!r} belongs to another workspace")
    return state


async def foreign_accounts(
    accounts: AccountCache, workspace: str, channel: Channel | str, names: Iterable[str]
) -> list[str]:
    """The accounts among ``names`` that the workspace does not have (unknown to it)."""
    return [n for n in sorted(set(names)) if await accounts.lookup(channel, n, workspace) is None]


class ForeignAccountError(OutboundServiceError, PermanentError):
    """A campaign command names accounts its workspace does not have."""


@dataclass
class CampaignCommands:
    bus: Bus
    store: CampaignStore
    view: CampaignView
    accounts: AccountCache
    # A campaign's dates are read by whichever instance leads it: the server's clock in the
    # service (``Runtime.clock``).
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def _check_accounts(
        self, workspace: str, channel: Channel | str, names: Iterable[str], cid: str
    ) -> None:
        unknown = await foreign_accounts(self.accounts, workspace, channel, names)
        if unknown:
            raise ForeignAccountError(
                f"campaign {cid!r} names accounts unknown in its workspace: {', '.join(unknown)}"
            )

    async def handle(self, msg: Msg) -> None:
        decoded = decode_or_reject(msg)
        cmd, env = decoded.model, decoded.envelope
        seq = msg.metadata.sequence.stream
        if isinstance(cmd, StartCampaign):
            await self.start(cmd, env, seq)
        elif isinstance(cmd, AddCampaignRecipients):
            await self.add(cmd, env)
        elif isinstance(cmd, ControlCampaign):
            await self.control(cmd, env, seq)
        else:
            raise PermanentError(f"{cmd.name} is not a campaign command")
        await msg.ack()

    async def start(self, cmd: StartCampaign, env: Envelope, seq: int) -> None:
        ws, cid = env.workspace_id, cmd.campaign_id
        key = campaign_key(ws, cid)
        current = await self.store.state(key)
        _own(current, cid, ws, self.now())
        if (conflict := start_conflict(current, cmd)) is not None:
            raise CampaignConflictError(f"idempotency_conflict: {conflict}")
        pinned = (r.account for r in cmd.recipients if r.account)
        await self._check_accounts(ws, cmd.channel, (*cmd.accounts, *pinned), cid)
        for member in cmd.pool:
            await self._check_accounts(ws, member.channel, (member.account,), cid)
        stored = await self.store.put_batch(key, 0, cmd.recipients)
        # Content its channel cannot carry (the HTTP route answers 422; a start from the bus,
        # e.g. the CRM's segment campaigns, was fanned out and failed once per recipient):
        # the campaign is cancelled at once, saying why, and sends nothing.
        unfit = campaign_unfit(cmd)
        refused = None if unfit is None else f"{unfit.code}: {unfit.detail}"

        def change(state: CampaignState | None) -> CampaignState | None:
            state = _own(state, cid, ws, self.now())
            if state.definition is not None and 0 in state.batches:
                return None  # a redelivery or a retry: the first start stands
            state.definition = cmd.model_dump(mode="json", exclude={"recipients"})
            state.batches[0] = stored
            if cmd.final and state.final_batch is None:
                state.final_batch = 0
            if state.status == "pending":
                state.status = "running" if refused is None else "cancelled"
                state.reason = refused
                state.started_at = self.now()
            return state

        before, after = await self.store.update(key, change)
        await self._announce(before, after, env, seq, refused)

    async def add(self, cmd: AddCampaignRecipients, env: Envelope) -> None:
        ws, cid = env.workspace_id, cmd.campaign_id
        key = campaign_key(ws, cid)
        current = _own(await self.store.state(key), cid, ws, self.now())
        channel = (current.definition or {}).get("channel")
        if channel is not None:
            pinned = (r.account for r in cmd.recipients if r.account)
            await self._check_accounts(ws, channel, pinned, cid)
        stored = await self.store.put_batch(key, cmd.batch, cmd.recipients)

        def change(state: CampaignState | None) -> CampaignState | None:
            state = _own(state, cid, ws, self.now())
            if state.batches.get(cmd.batch) == stored and (
                not cmd.final or state.final_batch == cmd.batch
            ):
                return None
            if state.status in ("completed",):
                log.warning("recipients after the campaign completed", campaign=cid)
                return None
            state.batches[cmd.batch] = stored
            if cmd.final:
                state.final_batch = cmd.batch
            return state

        _, after = await self.store.update(key, change)
        if after is not None:
            self.view.note(after)

    async def control(self, cmd: ControlCampaign, env: Envelope, seq: int) -> None:
        ws, cid = env.workspace_id, cmd.campaign_id

        def change(state: CampaignState | None) -> CampaignState | None:
            state = _own(state, cid, ws, self.now())
            if state.status in ("cancelled", "completed") or seq <= state.status_seq:
                return None  # final already, or an older command than the last one applied
            if cmd.action == "pause":
                target = "paused"
            elif cmd.action == "resume":
                target = "running" if state.definition is not None else "pending"
            else:
                target = "cancelled"
            if target == state.status:
                return None
            state.status = target  # type: ignore[assignment]
            state.status_seq = seq
            state.reason = cmd.reason
            return state

        before, after = await self.store.update(campaign_key(ws, cid), change)
        await self._announce(before, after, env, seq, cmd.reason)

    async def _announce(
        self,
        before: CampaignState | None,
        after: CampaignState | None,
        env: Envelope,
        seq: int,
        reason: str | None,
    ) -> None:
        if after is None:
            return
        self.view.note(after)
        previous = before.status if before is not None else None
        if after.status == previous or after.status not in ("running", "paused", "cancelled"):
            return
        await self.bus.publish(
            CampaignStatusChanged(
                campaign_id=after.campaign_id,
                at=self.now(),
                status=after.status,
                previous=previous,
                reason=reason,
                seq=seq,
            ),
            cause=env,
        )
