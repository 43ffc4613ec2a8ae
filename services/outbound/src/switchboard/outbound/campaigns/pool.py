"""A campaign's pool of accounts, possibly of several channels (user accounts and bots), and
how a recipient moves off an account that dropped out.

A member is named by its key: the account id for the campaign's own channel (as the cursor
and the tallies always named accounts), ``<channel>/<account>`` for the others (ids have no
``/``). A send whose account dropped out (revoked, restricted, flood-limited for longer than
a campaign waits) was not made; it moves to another member under a new message id that
names every member it tried (``<id>><key>>...``), so it never returns to one of them and
its id stays the same whichever instance moves it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import StartCampaign
from switchboard.outbound.providers.mtproto import session_status
from switchboard.outbound.ratelimit import PauseView, pause_key
from switchboard.runtime.accounts import AccountCache

MOVED = "moved_to_other_account"  # the code of a moved send in the campaign's records
SEP = ">"


@dataclass(frozen=True)
class Member:
    channel: Channel
    account: str

    def key(self, primary: Channel) -> str:
        return self.account if self.channel is primary else f"{self.channel.value}/{self.account}"


def members(start: StartCampaign) -> list[Member]:
    """The pool in order, without repeats: the campaign's accounts, then ``pool``."""
    found = [Member(start.channel, a) for a in start.accounts]
    found += [Member(p.channel, p.account) for p in start.pool]
    return list(dict.fromkeys(found))


def member_key(channel: Channel | str, account: str, primary: Channel) -> str:
    return Member(Channel(channel), account).key(primary)


def tried(message_id: str, original_key: str) -> set[str]:
    """The members a campaign send has been through: the one its first id was fanned out
    to, and each one named by a move."""
    return {original_key, *message_id.split(SEP)[1:]}


def moved_id(message_id: str, to: str) -> str:
    return f"{message_id}{SEP}{to}"


def original_id(message_id: str) -> str:
    return message_id.split(SEP, 1)[0]


def next_member(
    pool: Iterable[Member],
    primary: Channel,
    message_id: str,
    tried_keys: set[str],
    usable: Callable[[Member], bool],
) -> Member | None:
    """Where a dropped-out send goes: a usable member not tried yet, spread by the message
    id (many recipients of one account do not all pile onto the next), or None."""
    left = [m for m in pool if m.key(primary) not in tried_keys and usable(m)]
    if not left:
        return None
    return left[zlib.crc32(original_id(message_id).encode()) % len(left)]


@dataclass
class PoolHealth:
    """Whether a member can take a campaign's sends now: an account of the workspace that
    its provider side calls active (a user session not revoked or restricted), and not
    paused (a FLOOD_WAIT, a 429) for longer than a campaign waits for one account."""

    accounts: AccountCache
    pauses: PauseView | None
    patience_s: float = 30.0
    clock: Callable[[], float] = field(default=time.time)

    def usable(self, workspace: str, member: Member) -> bool:
        account = self.accounts.owned(member.channel, member.account, workspace)
        if account is None or session_status(account) != "active":
            return False
        return not self.paused_long(member.channel, member.account)

    def paused_long(self, channel: Channel | str, account: str) -> bool:
        """Paused beyond the campaign's patience: its sends go to other members."""
        if self.pauses is None:
            return False
        until = self.pauses.until(pause_key(f"{Channel(channel).value}.{account}"))
        return until > self.clock() + self.patience_s
