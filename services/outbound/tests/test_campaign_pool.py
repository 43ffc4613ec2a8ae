"""A campaign's pool of accounts across channels, and where a send goes when its account
drops out: never back to an account it tried, spread over the others, nowhere when none is
left; which members take sends (revoked sessions and long pauses do not)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import StartCampaign
from switchboard.outbound.campaigns.pool import (
    Member,
    PoolHealth,
    member_key,
    members,
    moved_id,
    next_member,
    original_id,
    tried,
)
from switchboard.outbound.ratelimit import pause_key
from switchboard.runtime.accounts import Account

ANN = Member(Channel.MTPROTO, "ann")
BOB = Member(Channel.MTPROTO, "bob")
BOT = Member(Channel.TELEGRAM, "shop")


def _start() -> StartCampaign:
    return StartCampaign.model_validate(
        {
            "campaign_id": "spring",
            "channel": "mtproto",
            "accounts": ["ann", "bob", "ann"],
            "pool": [{"channel": "telegram", "account": "shop"}],
            "content": {"kind": "text", "text": "hi"},
        }
    )


def test_the_pool_is_the_accounts_then_the_other_channels_without_repeats() -> None:
    start = _start()
    assert members(start) == [ANN, BOB, BOT]
    assert [m.key(start.channel) for m in members(start)] == ["ann", "bob", "telegram/shop"]
    assert member_key("telegram", "shop", Channel.MTPROTO) == "telegram/shop"


def test_a_moved_send_never_returns_to_an_account_it_tried() -> None:
    pool = members(_start())
    first = "spring:0:7"
    to = next_member(pool, Channel.MTPROTO, first, tried(first, "ann"), lambda m: True)
    assert to in (BOB, BOT)
    assert to is not None
    second = moved_id(first, to.key(Channel.MTPROTO))
    assert original_id(second) == first
    was = tried(second, "ann")
    assert was == {"ann", to.key(Channel.MTPROTO)}
    last = next_member(pool, Channel.MTPROTO, second, was, lambda m: True)
    assert last is not None
    assert last not in (ANN, to)
    third = moved_id(second, last.key(Channel.MTPROTO))
    assert next_member(pool, Channel.MTPROTO, third, tried(third, "ann"), lambda m: True) is None


def test_moves_spread_over_the_usable_accounts_and_skip_the_others() -> None:
    pool = members(_start())
    targets = {
        next_member(pool, Channel.MTPROTO, f"spring:0:{i}", {"ann"}, lambda m: True)
        for i in range(50)
    }
    assert targets == {BOB, BOT}
    only_bot = {
        next_member(pool, Channel.MTPROTO, f"spring:0:{i}", {"ann"}, lambda m: m != BOB)
        for i in range(20)
    }
    assert only_bot == {BOT}


class _Accounts:
    def __init__(self, *accounts: Account) -> None:
        self.found = {(a.channel.value, a.id): a for a in accounts}

    def owned(self, channel: Any, account: str, workspace: str) -> Account | None:
        found = self.found.get((Channel(channel).value, account))
        return found if found is not None and found.workspace_id == workspace else None


class _Pauses:
    def __init__(self, until: dict[str, float]) -> None:
        self._until = until

    def until(self, key: str) -> float:
        return self._until.get(key, 0.0)


def test_revoked_foreign_and_long_paused_accounts_take_no_sends() -> None:
    now = time.time()
    accounts = _Accounts(
        Account(channel=Channel.MTPROTO, id="ann", workspace_id="demo"),
        Account(channel=Channel.MTPROTO, id="bob", workspace_id="demo",
                settings={"status": "revoked"}),
        Account(channel=Channel.TELEGRAM, id="shop", workspace_id="demo"),
        Account(channel=Channel.MTPROTO, id="eve", workspace_id="other"),
    )  # fmt: skip
    pauses = _Pauses({pause_key("telegram.shop"): now + 300, pause_key("mtproto.ann"): now + 5})
    health = PoolHealth(accounts, pauses, patience_s=30.0, clock=lambda: now)  # type: ignore[arg-type]
    assert health.usable("demo", ANN)  # a short pause: it waits, it does not drop out
    assert not health.usable("demo", BOB)  # revoked
    assert not health.usable("demo", BOT)  # paused for five minutes
    assert not health.usable("demo", Member(Channel.MTPROTO, "eve"))  # another workspace's
    restricted = Account(
        channel=Channel.MTPROTO,
        id="ann",
        workspace_id="demo",
        settings={"restricted_until": datetime.fromtimestamp(now + 600, UTC).isoformat()},
    )
    assert not PoolHealth(_Accounts(restricted), None).usable("demo", ANN)  # type: ignore[arg-type]
    over = restricted.model_copy(
        update={"settings": {"restricted_until": datetime.fromtimestamp(now - 1, UTC).isoformat()}}
    )
    assert PoolHealth(_Accounts(over), None).usable("demo", ANN)  # type: ignore[arg-type]
    assert health.paused_long("telegram", "shop")
    assert not health.paused_long("mtproto", "ann")
