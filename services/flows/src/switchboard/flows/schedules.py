"""Schedule triggers: the next time a flow's schedule fires, and keeping one JetStream
message schedule pending for it (the server fires it at its time to whichever instance is
alive, as it does for delays).

Every instance computes the next fire of each published schedule trigger after reading the
definitions (and after each fire) and publishes its schedule under a deterministic id, so
instances publishing the same one store it once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from switchboard.events import encode
from switchboard.events.catalog.crm import CampaignSegment, StartSegmentFlow
from switchboard.events.catalog.flows import FireSchedule
from switchboard.flows.document import ScheduleTrigger
from switchboard.flows.effects import schedule_subject
from switchboard.flows.triggers import Published
from switchboard.runtime.bus import Bus
from switchboard.runtime.schedules import held_headers, hold_until


def next_fire(trigger: ScheduleTrigger, now: datetime) -> datetime | None:
    """The first fire strictly after ``now`` (None: a one-off already past)."""
    if trigger.at > now:
        return trigger.at
    if trigger.every_s is None:
        return None
    every = timedelta(seconds=trigger.every_s)
    periods = (now - trigger.at) // every + 1
    return trigger.at + periods * every


def due_fires(flows: list[Published], now: datetime) -> list[FireSchedule]:
    """The next fire of every schedule trigger of the published flows."""
    out = []
    for flow in flows:
        for index, trig in enumerate(flow.doc.triggers):
            if isinstance(trig, ScheduleTrigger):
                due = next_fire(trig, now)
                if due is not None:
                    out.append(FireSchedule(flow_id=flow.flow_id, revision=flow.revision,
                                            trigger=index, due_at=due))  # fmt: skip
    return out


def still_due(fire: FireSchedule, flows: list[Published]) -> bool:
    """Whether the flow is still published on that revision with that schedule trigger."""
    for flow in flows:
        if flow.flow_id == fire.flow_id and flow.revision == fire.revision:
            triggers = flow.doc.triggers
            return fire.trigger < len(triggers) and isinstance(
                triggers[fire.trigger], ScheduleTrigger
            )
    return False


def segment_request(fire: FireSchedule, flows: list[Published]) -> StartSegmentFlow | None:
    """The CRM command that expands the fired trigger's segment (None: the trigger has none,
    it starts in the conversations flows knows). Its id is the fire's, so every instance
    that handles the fire asks once."""
    for flow in flows:
        if flow.flow_id == fire.flow_id and flow.revision == fire.revision:
            trig = flow.doc.triggers[fire.trigger]
            if isinstance(trig, ScheduleTrigger) and trig.segment is not None:
                return StartSegmentFlow(
                    request_id=fire.deterministic_id(),
                    flow_id=fire.flow_id,
                    revision=fire.revision,
                    segment=CampaignSegment.model_validate(trig.segment.model_dump()),
                    by=f"flow:{fire.flow_id}",
                )
    return None


# FLOW_TIMERS drops a message 90 days after it was stored, a schedule too: a trigger's first
# fire further ahead is held this long at a time, then again (``hold``).
FIRE_HOP = timedelta(days=30)


class ScheduleKeeper:
    """Keeps the next fire of each published schedule trigger pending on ``FLOW_TIMERS``."""

    def __init__(
        self,
        bus: Bus,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        hop: timedelta = FIRE_HOP,
    ) -> None:
        self.bus = bus
        self.pending: set[str] = set()
        # The next fire is found after the server's now: the server fires it on its clock
        # (``Runtime.clock`` in the service).
        self.now = now
        self.hop = hop

    async def keep(self, workspace: str, flows: list[Published]) -> int:
        """Publish the schedules not published yet by this instance; how many."""
        sent = 0
        for fire in due_fires(flows, self.now()):
            key = fire.deterministic_id()
            if key in self.pending:
                continue
            await self.hold(fire, workspace)
            self.pending.add(key)
            sent += 1
        return sent

    async def hold(self, fire: FireSchedule, workspace: str) -> None:
        """Store ``fire``'s schedule (again, after a hop: it replaces the one that fired)."""
        enc = encode(fire, source=self.bus.source, workspace_id=workspace)
        now = self.now()
        at = hold_until(fire.due_at, now, self.hop).isoformat()
        headers = {
            **enc.headers,
            # each hop is a new message; the same one published twice in the window is one
            "Nats-Msg-Id": f"{fire.deterministic_id()}:{at}",
            **held_headers(fire.due_at, now, self.hop, enc.subject),
        }
        await self.bus.publish_raw(schedule_subject(fire.deterministic_id()), enc.body, headers)
