"""The flows composition root's dependencies: built complete and typed once the runtime is
up, before the service answers, and handed to the consumers and the routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
from nats.js.kv import KeyValue

from switchboard.flows.effects import Effects, WebhookShare
from switchboard.flows.library import FlowLibrary
from switchboard.flows.runner import Runner
from switchboard.flows.schedules import ScheduleKeeper
from switchboard.flows.settings import FlowsSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.service import Runtime


@dataclass(frozen=True)
class FlowsDeps:
    """Everything the flows consumers and routes use."""

    bus: Bus
    # the accounts registry, read to check that a flow's channels are its workspace's
    accounts: KeyValue
    library: FlowLibrary
    schedules: ScheduleKeeper
    runner: Runner


async def bootstrap(rt: Runtime, settings: FlowsSettings) -> FlowsDeps:
    """The service's dependencies; the webhook client closes with the runtime."""
    library = FlowLibrary(rt.bus)
    http = httpx.AsyncClient(follow_redirects=False)
    rt.on_close(http.aclose)
    schedules = ScheduleKeeper(rt.bus, rt.clock.utcnow, timedelta(seconds=settings.fire_hop_s))
    # a workspace's webhook calls hold at most a quarter of the instance's handlers
    share = WebhookShare(settings.concurrency // 4)
    effects = Effects(rt.bus, http, settings.webhook_secret, settings.webhook_private, share)
    runner = Runner(rt.bus, library, effects, schedules, rt.clock.utcnow)
    accounts = await rt.bus.kv("accounts")
    return FlowsDeps(
        bus=rt.bus, accounts=accounts, library=library, schedules=schedules, runner=runner
    )
