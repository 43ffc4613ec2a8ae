"""Every campaign's state, followed by a KV watch: senders ask it whether their campaign is
paused or cancelled (no round trip per send), and the supervisor finds campaigns to lead.
Campaigns are known by their key (``state.campaign_key``: ids are per workspace)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nats.js.kv import KeyValue
from prometheus_client import Gauge

from switchboard.events.catalog.outbound import StartCampaign
from switchboard.outbound.campaigns.pool import MOVED
from switchboard.outbound.campaigns.state import (
    STATE_KEYS,
    CampaignState,
    CampaignStore,
    campaign_key,
)
from switchboard.runtime.kvwatch import follow
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause

log = get_logger(__name__)
RUNNING = Gauge(
    "switchboard_outbound_campaigns_running",
    "Campaigns in the running state (as this instance's view of the campaign states sees them)",
)


@dataclass
class CampaignView:
    store: CampaignStore
    states: dict[str, CampaignState] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    any_change: asyncio.Event = field(default_factory=asyncio.Event)
    _changes: dict[str, asyncio.Event] = field(default_factory=dict)
    _running: set[str] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        await follow(self.store.kv, self._apply, self.ready, stop, keys=STATE_KEYS)

    def _apply(self, entry: KeyValue.Entry) -> None:
        if not entry.value or entry.operation in ("DEL", "PURGE"):
            return
        try:
            state = CampaignState.model_validate_json(entry.value)
        except ValueError as exc:
            log.error("unreadable campaign state", key=entry.key, error=str(exc))
            return
        self.note(state)

    def note(self, state: CampaignState) -> None:
        """Take a state seen here first (a write of this instance) or from the watch."""
        self.states[state.key] = state
        if state.status == "running":
            self._running.add(state.key)
        else:
            self._running.discard(state.key)
        RUNNING.set(len(self._running))
        self.any_change.set()
        event = self._changes.pop(state.key, None)
        if event is not None:
            event.set()

    def get(self, campaign_id: str) -> CampaignState | None:
        return self.states.get(campaign_id)

    # -- what a send asks (``sender.CampaignHooks``) -------------------------------------

    def status(self, workspace: str, campaign_id: str) -> str | None:
        state = self.states.get(campaign_key(workspace, campaign_id))
        return None if state is None else state.status

    async def changed(self, workspace: str, campaign_id: str, timeout: float) -> None:
        event = self._changes.setdefault(campaign_key(workspace, campaign_id), asyncio.Event())
        await pause(event, timeout)

    def definition(self, workspace: str, campaign_id: str) -> StartCampaign | None:
        state = self.states.get(campaign_key(workspace, campaign_id))
        return None if state is None else state.start()

    async def record_moved(self, workspace: str, campaign_id: str, message_id: str) -> None:
        await self.store.add_failure(campaign_key(workspace, campaign_id), message_id, MOVED)

    async def record_failure(
        self, workspace: str, campaign_id: str, message_id: str, code: str
    ) -> None:
        await self.store.add_failure(campaign_key(workspace, campaign_id), message_id, code)
