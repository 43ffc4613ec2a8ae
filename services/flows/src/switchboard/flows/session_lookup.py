"""Reading where a conversation is recorded in ``FLOWS``: the last record under its keyed
session id and, while the deployment may hold any, under its legacy unkeyed one
(``sessions.resolve`` decides which goes on)."""

from __future__ import annotations

import asyncio

from switchboard.events.catalog.flows import RunRecorded
from switchboard.flows.sessions import STREAM, Resolved, resolve, session_filter, session_id
from switchboard.runtime.aggregates import Stored, last_stored, read_stored
from switchboard.runtime.bus import Bus

ALL_RECORDS = "flows.run_recorded.v1.>"


class SessionLookup:
    """Finds a conversation's session; reads legacy ids only where they can exist."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._any_legacy: bool | None = None  # None: not looked at yet

    async def find(self, session: str, legacy: str | None) -> Resolved:
        """Where the conversation keyed ``session`` (recorded as ``legacy`` before session
        ids were keyed; None: nothing to look up) goes on, and its last record. Both ids are
        read at once: one round trip, as without the legacy id."""
        if legacy is None or not await self.legacy_sessions():
            return resolve(session, None, await self._last(session), None)
        on_keyed, on_legacy = await asyncio.gather(self._last(session), self._last(legacy))
        return resolve(session, legacy, on_keyed, on_legacy)

    async def legacy_sessions(self) -> bool:
        """Whether any conversation may be recorded under a legacy id. None is when the
        first run recorded is keyed (a deployment born keyed), or when none is recorded
        yet: decided once, as no instance of this version starts a legacy session (upgrade
        the flows instances together)."""
        if self._any_legacy is None:
            stored = await read_stored(
                self.bus.js.get_msg(STREAM, seq=1, subject=ALL_RECORDS, next=True)
            )
            if stored is None:
                self._any_legacy = False
                return False
            first = stored.decoded  # opened: its chat id is sealed
            rec = first.model
            assert isinstance(rec, RunRecorded)
            conv = rec.conversation
            keyed = session_id(
                first.envelope.workspace_id, conv.channel, conv.account, conv.chat_id
            )
            self._any_legacy = rec.session != keyed
        return self._any_legacy

    async def _last(self, session: str) -> Stored | None:
        return await last_stored(self.bus, STREAM, session_filter(session))
