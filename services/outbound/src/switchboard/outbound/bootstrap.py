"""What the outbound composition root hands its message routes: one complete, typed object
built at the end of start, once every store, client and lane exists."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.outbound.attempts import Attempts
from switchboard.outbound.idempotency import IdempotencyKeys
from switchboard.outbound.schedule import ScheduleDesk
from switchboard.outbound.uploads import Uploads
from switchboard.outbound.url_sizes import UrlSizes
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.bus import Bus
from switchboard.runtime.integrations import Prober


@dataclass(frozen=True)
class OutboundDeps:
    """Everything the message, upload, schedule and interaction routes use."""

    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    keys: IdempotencyKeys
    desk: ScheduleDesk
    uploads: Uploads
    url_sizes: UrlSizes
    prober: Prober
