"""A campaign's numbers, from where they are durably kept: the fan-out cursor says how many
sends were handed to the bulk lane, the OUTBOUND stream how many of them are not done yet
(a work queue drops a command when it is acked, and campaign sends carry the campaign in
their subject), and the failure record which of the done ones failed. So
``sent = fanned out - not done - failed``: exact, and the same for every instance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from switchboard.events.catalog.outbound import SendBulk
from switchboard.events.subjects import token, untoken
from switchboard.outbound.campaigns.pool import MOVED, member_key
from switchboard.outbound.campaigns.state import CampaignState, CampaignStore, Cursor
from switchboard.outbound.outcomes import CANCELLED
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.bus import Bus

STREAM = "OUTBOUND"


def bulk_subjects(campaign_id: str) -> str:
    """The subjects of a campaign's sends, for any channel and account."""
    return f"cmd.{SendBulk.name}.v{SendBulk.version}.*.*.{token(campaign_id)}"


async def left_by_account(bus: Bus, state: CampaignState, accounts: AccountCache) -> dict[str, int]:
    """The campaign's sends still in the stream (queued or in flight), per member of its pool
    (``pool.Member.key``). Another workspace may use the same campaign id: only the
    campaign's workspace's accounts count (a campaign sends through no other)."""
    info = await bus.js.stream_info(STREAM, subjects_filter=bulk_subjects(state.campaign_id))
    start = state.start()
    left: Counter[str] = Counter()
    for subject, count in (info.state.subjects or {}).items():
        tokens = subject.split(".")
        channel, account = tokens[4], untoken(tokens[5])
        if accounts.owned(channel, account, state.workspace_id) is not None:
            key = account if start is None else member_key(channel, account, start.channel)
            left[key] += count
    return dict(left)


@dataclass
class Tally:
    received: int
    total: int | None
    fanned: int
    left: int
    sent: int
    failed: int
    cancelled: int
    failures: dict[str, int] = field(default_factory=dict)
    left_by_account: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        known = self.total if self.total is not None else self.received
        return max(0, known - self.sent - self.failed - self.cancelled)


async def tally(
    bus: Bus,
    store: CampaignStore,
    state: CampaignState,
    accounts: AccountCache,
    cursor: Cursor | None = None,
    by_account: dict[str, int] | None = None,
) -> Tally:
    """The numbers now (``cursor`` and ``by_account``: when the caller has them fresh)."""
    key = state.key
    if cursor is None:
        cursor, _ = await store.cursor(key)
    if by_account is None:
        by_account = await left_by_account(bus, state, accounts)
    failed = await store.failures(key)
    codes = Counter(code for code in failed.values() if code not in (CANCELLED, MOVED))
    cancelled_sends = sum(1 for code in failed.values() if code == CANCELLED)
    # A moved send is neither sent nor failed: the command it moved on as (which the
    # cursor does not count) is.
    moved = sum(1 for code in failed.values() if code == MOVED)
    left = sum(by_account.values())
    done = max(0, cursor.fanned + moved - left)
    known = state.total if state.total is not None else state.received
    never_fanned = max(0, known - cursor.fanned) if state.status == "cancelled" else 0
    return Tally(
        received=state.received,
        total=state.total,
        fanned=cursor.fanned,
        left=left,
        sent=max(0, done - len(failed)),
        failed=sum(codes.values()),
        cancelled=cancelled_sends + never_fanned,
        failures=dict(codes),
        left_by_account=by_account,
    )
