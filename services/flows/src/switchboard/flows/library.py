"""Flow definitions: event-sourced on ``flows.<event>.v1.<flow_id>`` (every revision kept),
and a live view of all of them that every instance follows from the stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.js.errors import NotFoundError

from switchboard.events import Decoded, decode_message
from switchboard.events.catalog.flows import FlowArchived, FlowPublished, FlowSaved
from switchboard.events.ids import new_id
from switchboard.events.subjects import token
from switchboard.flows.document import FlowDocument, validate
from switchboard.flows.errors import FlowsServiceError
from switchboard.flows.triggers import Published
from switchboard.runtime.aggregates import ConflictError, append_expecting, read_filter
from switchboard.runtime.bus import Bus
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause

log = get_logger(__name__)

STREAM = "FLOWS"
# Definition events have four tokens (``flows.<event>.v1.<flow_id>``), run records five.
DEFINITIONS = "flows.*.v1.*"
RETRIES = 5


class FlowError(FlowsServiceError):
    """A request about a flow that cannot be done: ``status`` is the HTTP answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def flow_filter(flow_id: str) -> str:
    return f"flows.*.*.{token(flow_id)}"


@dataclass
class FlowState:
    """A flow folded from its events."""

    flow_id: str
    workspace_id: str
    revisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    published: int | None = None
    published_at: datetime | None = None
    archived: bool = False
    version: int = 0  # stream sequence of the last event
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def latest(self) -> int:
        return max(self.revisions, default=0)

    def summary(self) -> dict[str, Any]:
        doc = self.revisions.get(self.published or self.latest, {})
        status = "archived" if self.archived else "published" if self.published else "draft"
        return {
            "id": self.flow_id,
            "name": doc.get("name"),
            "status": status,
            "latest_revision": self.latest,
            "published_revision": self.published,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def apply_event(state: FlowState | None, decoded: Decoded, seq: int) -> FlowState | None:
    """Fold one event into a flow's state (events already folded are skipped)."""
    ev, env = decoded.model, decoded.envelope
    if state is not None and seq <= state.version:
        return state
    if isinstance(ev, FlowSaved):
        if state is None:
            state = FlowState(ev.flow_id, env.workspace_id, created_at=env.time)
        state.revisions[ev.revision] = ev.document
    elif state is None:
        return None
    elif isinstance(ev, FlowPublished):
        state.published, state.archived = ev.revision, False
        state.published_at = env.time
    elif isinstance(ev, FlowArchived):
        state.archived = True
    state.version = seq
    state.updated_at = env.time
    return state


class FlowLibrary:
    """Reads and writes flow definitions; keeps every flow in memory, followed live."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.flows: dict[str, FlowState] = {}
        self._docs: dict[tuple[str, int], FlowDocument] = {}
        self.caught_up = asyncio.Event()
        self._last = 0  # stream sequence of the last definition event read
        self._sync_lock = asyncio.Lock()
        self._sync_began = 0.0  # monotonic time the last read began

    # -- reading ---------------------------------------------------------------------------

    async def load(self, flow_id: str, workspace: str) -> FlowState:
        """A flow as the stream has it now (404 for another workspace's flow)."""
        state: FlowState | None = None
        for stored in await read_filter(self.bus, STREAM, flow_filter(flow_id)):
            state = apply_event(state, stored.decoded, stored.seq)
        if state is None or state.workspace_id != workspace:
            raise FlowError(404, "not_found", f"no flow {flow_id!r}")
        self._remember(state)
        return state

    def listing(self, workspace: str) -> list[FlowState]:
        return sorted(
            (f for f in self.flows.values() if f.workspace_id == workspace),
            key=lambda f: f.flow_id,
        )

    def published(self, workspace: str) -> list[Published]:
        """The live revision of every published flow of a workspace (from the live view)."""
        out = []
        for state in self.listing(workspace):
            if state.published is None or state.archived:
                continue
            doc = self.document_of(state, state.published)
            if doc is not None:
                out.append(Published(state.flow_id, state.published, doc, state.published_at))
        return out

    def document_of(self, state: FlowState, revision: int) -> FlowDocument | None:
        key = (state.flow_id, revision)
        if key not in self._docs:
            raw = state.revisions.get(revision)
            if raw is None:
                return None
            self._docs[key] = FlowDocument.model_validate(raw)
        return self._docs[key]

    async def document(self, flow_id: str, revision: int, workspace: str) -> FlowDocument | None:
        """A revision's document (revisions never change: cached forever)."""
        cached = self._docs.get((flow_id, revision))
        if cached is not None:
            return cached
        state = self.flows.get(flow_id)
        if state is None or revision not in state.revisions:
            try:
                state = await self.load(flow_id, workspace)
            except FlowError:
                return None
        return self.document_of(state, revision)

    # -- writing ---------------------------------------------------------------------------

    async def save(
        self, workspace: str, data: Any, flow_id: str | None = None, by: str | None = None
    ) -> FlowState:
        """A new flow (no id) or a new revision of one; the document is validated first."""
        validate(data)
        if flow_id is None:
            flow_id = "fl_" + new_id()[:20]
            event = FlowSaved(flow_id=flow_id, revision=1, document=data, by=by)
            await self._append(event, flow_id, 0, workspace)
            return await self.load(flow_id, workspace)
        for _ in range(RETRIES):
            state = await self.load(flow_id, workspace)
            if state.archived:
                raise FlowError(409, "archived", f"flow {flow_id!r} is archived")
            event = FlowSaved(flow_id=flow_id, revision=state.latest + 1, document=data, by=by)
            try:
                await self._append(event, flow_id, state.version, workspace)
            except ConflictError:
                continue
            return await self.load(flow_id, workspace)
        raise FlowError(409, "conflict", "too many concurrent changes; retry")

    async def publish(
        self, workspace: str, flow_id: str, revision: int | None = None, by: str | None = None
    ) -> FlowState:
        for _ in range(RETRIES):
            state = await self.load(flow_id, workspace)
            rev = revision or state.latest
            if rev not in state.revisions:
                raise FlowError(404, "not_found", f"flow {flow_id!r} has no revision {rev}")
            if state.published == rev and not state.archived:
                return state
            try:
                await self._append(
                    FlowPublished(flow_id=flow_id, revision=rev, by=by),
                    flow_id,
                    state.version,
                    workspace,
                )
            except ConflictError:
                continue
            return await self.load(flow_id, workspace)
        raise FlowError(409, "conflict", "too many concurrent changes; retry")

    async def archive(self, workspace: str, flow_id: str, by: str | None = None) -> FlowState:
        for _ in range(RETRIES):
            state = await self.load(flow_id, workspace)
            if state.archived:
                return state
            try:
                await self._append(
                    FlowArchived(flow_id=flow_id, by=by), flow_id, state.version, workspace
                )
            except ConflictError:
                continue
            return await self.load(flow_id, workspace)
        raise FlowError(409, "conflict", "too many concurrent changes; retry")

    async def _append(
        self, event: FlowSaved | FlowPublished | FlowArchived, flow_id: str, expected: int, ws: str
    ) -> int:
        return await append_expecting(
            self.bus, event, flow_filter(flow_id), expected, aggregate=flow_id, workspace_id=ws
        )

    def _remember(self, state: FlowState) -> None:
        known = self.flows.get(state.flow_id)
        if known is None or known.version <= state.version:
            self.flows[state.flow_id] = state

    # -- following -------------------------------------------------------------------------

    def workspaces(self) -> set[str]:
        return {f.workspace_id for f in self.flows.values()}

    async def follow(
        self,
        stop: asyncio.Event,
        poll_s: float = 0.25,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Read every definition event, then keep following them (every instance).

        Direct gets of "the next definition after the last one seen" rather than a consumer:
        a message pushed to a pull request that already expired is lost without a trace when
        nothing acknowledges it, and a flow that one instance never learns of silently starts
        no runs there. A get cannot lose anything; an idle instance asks four times a second,
        and an input that starts nothing asks at once (:meth:`sync`).
        """
        reacted = -1  # the definitions ``on_change`` last saw (any reader may move them on)
        while not stop.is_set():
            await self.sync()
            self.caught_up.set()
            if on_change is not None and self._last != reacted:
                seen = self._last
                try:
                    await on_change()
                    reacted = seen
                except Exception as exc:  # the bus is down: try again on the next read
                    log.warning("reacting to flow changes failed", error=str(exc))
            await pause(stop, poll_s)

    @property
    def seen(self) -> int:
        """The stream sequence of the last definition event read."""
        return self._last

    async def sync(self) -> None:
        """Read the definitions stored since the last read.

        Callers asking together share one read: whoever gets the lock after a read that
        began after its own request has nothing left to learn, so a burst of inputs that
        start nothing costs one or two gets, not one each.
        """
        asked = time.monotonic()
        async with self._sync_lock:
            if self._sync_began > asked:
                return
            self._sync_began = time.monotonic()
            while True:
                try:
                    msg = await self.bus.js.get_msg(
                        STREAM, seq=self._last + 1, subject=DEFINITIONS, next=True
                    )
                except NotFoundError:
                    return
                self._last = int(msg.seq or self._last + 1)
                decoded = decode_message(
                    msg.subject or "", dict(msg.headers or {}), msg.data or b""
                )
                flow_id = getattr(decoded.model, "flow_id", "")
                state = apply_event(self.flows.get(flow_id), decoded, self._last)
                if state is not None:
                    self.flows[flow_id] = state
