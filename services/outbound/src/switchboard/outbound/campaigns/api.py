"""HTTP API of campaigns (same bearer keys as ``/v1/messages``): the commands go on the bus
like any other producer's, and ``GET`` reads the state and counts where they are kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.outbound import (
    AddCampaignRecipients,
    ControlCampaign,
    StartCampaign,
)
from switchboard.outbound.campaigns.state import CampaignStore
from switchboard.outbound.campaigns.tally import tally
from switchboard.runtime.auth import ApiKeyAuth
from switchboard.runtime.bus import Bus
from switchboard.runtime.http import error, invalid


@dataclass
class CampaignPorts:
    bus: Bus
    store: CampaignStore


def _workspace(request: Request) -> str:
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]
router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


def _ports(request: Request) -> CampaignPorts:
    ports: CampaignPorts = request.app.state.campaigns
    return ports


def _invalid(exc: ValueError) -> Response:
    if isinstance(exc, ValidationError):
        return invalid(exc, "invalid_campaign")
    return error(422, "invalid_campaign", str(exc).splitlines()[0][:300])


async def _owned(ports: CampaignPorts, campaign_id: str, ws: str) -> Response | None:
    state = await ports.store.state(campaign_id)
    if state is not None and state.workspace_id != ws:
        return error(409, "id_taken", "that campaign_id is in use")
    return None


@router.post("", status_code=202, summary="Start a campaign (first recipients inline)")
async def start(
    request: Request, ws: Workspace, body: Annotated[dict[str, Any], Body()]
) -> Response:
    try:
        cmd = StartCampaign.model_validate(body)
    except ValueError as exc:
        return _invalid(exc)
    ports = _ports(request)
    if (conflict := await _owned(ports, cmd.campaign_id, ws)) is not None:
        return conflict
    await ports.bus.publish(cmd, workspace_id=ws)
    return JSONResponse(
        {"campaign_id": cmd.campaign_id, "recipients": len(cmd.recipients), "final": cmd.final},
        202,
    )


@router.post(
    "/{campaign_id}/recipients", status_code=202, summary="Add a batch of recipients (1, 2, ...)"
)
async def add(
    request: Request, campaign_id: str, ws: Workspace, body: Annotated[dict[str, Any], Body()]
) -> Response:
    try:
        cmd = AddCampaignRecipients.model_validate({**body, "campaign_id": campaign_id})
    except ValueError as exc:
        return _invalid(exc)
    ports = _ports(request)
    if (conflict := await _owned(ports, campaign_id, ws)) is not None:
        return conflict
    await ports.bus.publish(cmd, workspace_id=ws)
    return JSONResponse({"campaign_id": campaign_id, "batch": cmd.batch}, 202)


async def _control(request: Request, campaign_id: str, ws: str, action: str) -> Response:
    ports = _ports(request)
    state = await ports.store.state(campaign_id)
    if state is None or state.workspace_id != ws:
        return error(404, "not_found", f"no campaign {campaign_id!r}")
    reason = request.query_params.get("reason")
    cmd = ControlCampaign(campaign_id=campaign_id, action=action, reason=reason)
    await ports.bus.publish(cmd, workspace_id=ws)
    return JSONResponse({"campaign_id": campaign_id, "action": action}, 202)


@router.post("/{campaign_id}/pause", status_code=202, summary="Pause (sends not made wait)")
async def pause(request: Request, campaign_id: str, ws: Workspace) -> Response:
    return await _control(request, campaign_id, ws, "pause")


@router.post("/{campaign_id}/resume", status_code=202, summary="Resume a paused campaign")
async def resume(request: Request, campaign_id: str, ws: Workspace) -> Response:
    return await _control(request, campaign_id, ws, "resume")


@router.post("/{campaign_id}/cancel", status_code=202, summary="Cancel (final)")
async def cancel(request: Request, campaign_id: str, ws: Workspace) -> Response:
    return await _control(request, campaign_id, ws, "cancel")


@router.get("/{campaign_id}", summary="State and counts")
async def status(request: Request, campaign_id: str, ws: Workspace) -> Response:
    ports = _ports(request)
    state = await ports.store.state(campaign_id)
    if state is None or state.workspace_id != ws:
        return error(404, "not_found", f"no campaign {campaign_id!r}")
    numbers = await tally(ports.bus, ports.store, state)
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
