"""Single ownership of MTProto sessions: one lease per session in the ``leases`` KV bucket,
through the runtime's lease (:mod:`switchboard.runtime.delivery.lease`, which says why no
clock is compared across machines).

Telegram destroys an auth key used from two connections at once (AUTH_KEY_DUPLICATED): a
session is connected only by the holder of a valid lease, and a lease is taken over only
after its holder must already have disconnected. What is MTProto's own lives here: key
names, the instances' presence, the even split of sessions, and the lease metrics.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.kv import KeyValue

from switchboard.mtproto.metrics import LEASE_EVENTS
from switchboard.runtime.delivery import lease as _lease
from switchboard.runtime.delivery.lease import ClaimAction as ClaimAction
from switchboard.runtime.delivery.lease import LeaseLostError as LeaseLostError
from switchboard.runtime.delivery.lease import LeaseValue as LeaseValue
from switchboard.runtime.delivery.lease import Observed as Observed
from switchboard.runtime.delivery.lease import claim_action as claim_action
from switchboard.runtime.delivery.lease import closed_when_lost as closed_when_lost
from switchboard.runtime.delivery.lease import expired
from switchboard.runtime.delivery.lease import while_held as while_held

Clock = Callable[[], float]

SESSION_PREFIX = "mtproto.session."
INSTANCE_PREFIX = "mtproto.instance."


def session_key(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def instance_key(owner: str) -> str:
    return f"{INSTANCE_PREFIX}{re.sub(r'[^A-Za-z0-9_-]', '_', owner)}"


def new_owner_id(instance_id: str) -> str:
    """This process's name in leases: the instance id plus a per-process nonce, so two
    processes with one hostname (or a restart) are never mistaken for each other."""
    return f"{instance_id}-{uuid.uuid4().hex[:8]}"


def _count(event: str) -> None:
    LEASE_EVENTS.labels(event).inc()


@dataclass
class Lease(_lease.Lease):
    """A session's lease, counted in ``switchboard_mtproto_lease_events_total``."""

    on_event: Callable[[str], None] = _count


class LeaseView(_lease.LeaseView):
    """The gateway's view of the ``mtproto.>`` lease keys: sessions and live instances."""

    def __init__(self, kv: KeyValue, clock: Clock = time.monotonic) -> None:
        super().__init__(kv, clock, pattern="mtproto.>")

    def live_instances(self, ttl: float) -> set[str]:
        now = self.clock()
        return {
            o.value.owner
            for k, o in self.keys.items()
            if k.startswith(INSTANCE_PREFIX) and o.value and not expired(o, now, ttl)
        }


def hrw_score(session_id: str, owner: str) -> int:
    """Rendezvous hashing: each instance prefers different sessions, so instances that claim
    at the same moment mostly want different keys."""
    return int.from_bytes(hashlib.sha256(f"{session_id}|{owner}".encode()).digest()[:8], "big")


def fair_share(sessions: int, instances: int, max_sessions: int) -> int:
    """How many sessions one instance should hold: an even split, at most ``max_sessions``."""
    if sessions <= 0:
        return 0
    return min(max_sessions, -(-sessions // max(1, instances)))
