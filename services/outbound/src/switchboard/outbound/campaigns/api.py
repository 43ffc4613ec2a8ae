"""HTTP API of campaigns (same bearer keys as ``/v1/messages``): the commands go on the bus
like any other producer's, and ``GET`` reads the state and counts where they are kept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    AddCampaignRecipients,
    ControlCampaign,
    StartCampaign,
)
from switchboard.outbound.campaigns.state import (
    CampaignStore,
    campaign_key,
    definition_fingerprint,
    start_conflict,
)
from switchboard.outbound.campaigns.tally import tally
from switchboard.outbound.fits import campaign_unfit
from switchboard.outbound.idempotency import IdempotencyKeys
from switchboard.outbound.workspace_accounts import require_account, require_named
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.auth import Workspace
from switchboard.runtime.bus import Bus
from switchboard.runtime.fingerprint import fingerprint
from switchboard.runtime.http import error, json_body
from switchboard.runtime.ownership import require


@dataclass
class CampaignPorts:
    bus: Bus
    store: CampaignStore
    accounts: AccountCache
    keys: IdempotencyKeys  # of starts (campaign id) and batches (number): of two at once, one goes


async def _accounts_owned(
    ports: CampaignPorts, ws: str, channel: Channel, names: Iterable[str]
) -> None:
    """Every account a campaign names must be the workspace's (NotFoundError otherwise)."""
    for name in sorted(set(names)):
        await require_account(ports.accounts, ws, channel, name)


router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
# The bodies, validated before the handler runs (422 naming every field); a batch's
# campaign_id is the path's.
_START = json_body(StartCampaign, "invalid_campaign")
_ADD = json_body(AddCampaignRecipients, "invalid_campaign", path_fields=("campaign_id",))


def _ports(request: Request) -> CampaignPorts:
    ports: CampaignPorts = request.app.state.campaigns
    return ports


@router.post(
    "",
    status_code=202,
    summary="Start a campaign (first recipients inline); idempotent on campaign_id",
    responses={
        404: {"description": "an account is not in the key's workspace"},
        409: {"description": "a start with this campaign_id is being handled (Retry-After)"},
        422: {"description": "invalid, or the campaign_id started another message"},
    },
)
async def start(request: Request, ws: Workspace, cmd: Annotated[StartCampaign, _START]) -> Response:
    ports = _ports(request)
    pinned = (r.account for r in cmd.recipients if r.account)
    await _accounts_owned(ports, ws, cmd.channel, (*cmd.accounts, *pinned))
    for member in cmd.pool:
        await _accounts_owned(ports, ws, member.channel, (member.account,))
    if (problem := campaign_unfit(cmd)) is not None:  # on any channel of the pool
        return problem.response()
    state = await ports.store.state(campaign_key(ws, cmd.campaign_id))
    if (conflict := start_conflict(state, cmd)) is not None:
        return error(422, "idempotency_conflict", conflict)

    async def accepted() -> tuple[int, dict[str, Any]]:
        await ports.bus.publish(cmd, workspace_id=ws)
        return 202, {"campaign_id": cmd.campaign_id, "recipients": len(cmd.recipients),
                     "final": cmd.final}  # fmt: skip

    # Two first starts both find no campaign: before, both were answered 202 and the
    # bus's duplicate window dropped the second, whose caller believed it was sent.
    fp = definition_fingerprint(cmd)
    return await ports.keys.answered(ws, cmd.campaign_id, fp, accepted, "campaign_id")


@router.post(
    "/{campaign_id}/recipients",
    status_code=202,
    summary="Add a batch of recipients (1, 2, ...); idempotent on the batch number",
    responses={
        404: {"description": "a pinned account is not in the key's workspace"},
        409: {"description": "a batch with this number is being handled (Retry-After)"},
        422: {"description": "invalid, or the batch number was sent with other recipients"},
    },
)
async def add(
    request: Request, campaign_id: str, ws: Workspace, cmd: Annotated[AddCampaignRecipients, _ADD]
) -> Response:
    ports = _ports(request)
    state = await ports.store.state(campaign_key(ws, campaign_id))
    channel = (state.definition or {}).get("channel") if state is not None else None
    pinned = {r.account for r in cmd.recipients if r.account}
    if channel is not None:
        await _accounts_owned(ports, ws, Channel(channel), pinned)
    else:  # a batch before its start: the account must still be the workspace's
        for name in sorted(pinned):
            await require_named(ports.accounts, ws, name)

    async def accepted() -> tuple[int, dict[str, Any]]:
        await ports.bus.publish(cmd, workspace_id=ws)
        return 202, {"campaign_id": campaign_id, "batch": cmd.batch}

    # A batch is stored once by its number: another list under a number already sent was
    # answered 202 and dropped (by the bus's duplicate window, or by the campaign).
    key = f"{campaign_id}/batch/{cmd.batch}"
    return await ports.keys.answered(ws, key, fingerprint(cmd), accepted, "batch")


async def _control(request: Request, campaign_id: str, ws: str, action: str) -> Response:
    ports = _ports(request)
    state = require(
        await ports.store.state(campaign_key(ws, campaign_id)), ws, "campaign", campaign_id
    )
    if state.status in ("cancelled", "completed"):  # the campaign would ignore it
        return error(409, "campaign_final", f"campaign {campaign_id!r} is {state.status}: "
                     f"there is nothing to {action}", campaign_status=state.status)  # fmt: skip
    reason = request.query_params.get("reason")
    cmd = ControlCampaign(campaign_id=campaign_id, action=action, reason=reason)
    await ports.bus.publish(cmd, workspace_id=ws)
    return JSONResponse({"campaign_id": campaign_id, "action": action}, 202)


FINAL: dict[int | str, dict[str, Any]] = {
    409: {"description": "`campaign_final`: the campaign is completed or cancelled"}
}


@router.post("/{campaign_id}/pause", status_code=202, summary="Pause (sends not made wait)",
             responses=FINAL)  # fmt: skip
async def pause(request: Request, campaign_id: str, ws: Workspace) -> Response:
    return await _control(request, campaign_id, ws, "pause")


@router.post("/{campaign_id}/resume", status_code=202, summary="Resume a paused campaign",
             responses=FINAL)  # fmt: skip
async def resume(request: Request, campaign_id: str, ws: Workspace) -> Response:
    return await _control(request, campaign_id, ws, "resume")


@router.post("/{campaign_id}/cancel", status_code=202, summary="Cancel (final)",
             responses=FINAL)  # fmt: skip
async def cancel(request: Request, campaign_id: str, ws: Workspace) -> Response:
    return await _control(request, campaign_id, ws, "cancel")


@router.get("/{campaign_id}", summary="State and counts")
async def status(request: Request, campaign_id: str, ws: Workspace) -> Response:
    ports = _ports(request)
    state = await ports.store.state(campaign_key(ws, campaign_id))
    state = require(state, ws, "campaign", campaign_id)
    numbers = await tally(ports.bus, ports.store, state, ports.accounts)
    definition = state.definition or {}
    counts = {
        "total": numbers.total,
        "received": numbers.received,
        "queued": numbers.fanned,
        "sent": numbers.sent,
        "failed": numbers.failed,
        "cancelled": numbers.cancelled,
        "remaining": numbers.remaining,
    }
    if state.outcome is not None:  # completed: the totals it ended with
        counts.update({k: state.outcome[k] for k in ("total", "sent", "failed", "cancelled")})
        counts["remaining"] = 0
    return JSONResponse(
        {
            "campaign_id": campaign_id,
            "status": state.status,
            "reason": state.reason,  # of the last pause or cancel (or why it was refused)
            "title": definition.get("title"),
            "channel": definition.get("channel"),
            "accounts": definition.get("accounts"),
            "created_at": state.created_at.isoformat(),
            "started_at": state.started_at.isoformat() if state.started_at else None,
            "completed_at": state.completed_at.isoformat() if state.completed_at else None,
            "batches": len(state.batches),
            **counts,
            "failures": numbers.failures,
            "outcome": state.outcome,
        }
    )
