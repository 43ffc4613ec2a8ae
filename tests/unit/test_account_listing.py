"""Listing the account registry: an empty bucket is no accounts, but a bus failure while
listing is an error, never an empty registry (a timed-out listing made a key rotation's
re-encryption report 0 rewritten and succeed, seen in a full run). The listing is
``runtime.kv.entries_of``, not nats-py's ``kv.keys()``, whose end could come before the
keys (an admin listing came back empty while the bucket held five accounts)."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest
from tests.support.stack import keyring

from switchboard.runtime import accounts
from switchboard.runtime.accounts import AccountStore


def _listing(monkeypatch: pytest.MonkeyPatch, answer: list[Any] | Exception) -> None:
    async def entries_of(kv: Any, keys: str = ">") -> list[Any]:
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(accounts, "entries_of", entries_of)


async def test_an_empty_bucket_lists_no_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    _listing(monkeypatch, [])
    store = AccountStore(None, keyring())  # type: ignore[arg-type]
    assert await store.scan() == ([], [])
    assert await store.reencrypt_all() == 0


async def test_a_listing_that_times_out_is_an_error_not_an_empty_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _listing(monkeypatch, nats.errors.TimeoutError())
    store = AccountStore(None, keyring())  # type: ignore[arg-type]
    with pytest.raises(nats.errors.TimeoutError):
        await store.scan()
    with pytest.raises(nats.errors.TimeoutError):
        await store.reencrypt_all()
