"""Listing the account registry: an empty bucket is no accounts, but a bus failure while
listing is an error, never an empty registry (a timed-out listing made a key rotation's
re-encryption report 0 rewritten and succeed, seen in a full run)."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest
from nats.js.errors import NoKeysError
from tests.support.stack import keyring

from switchboard.runtime.accounts import AccountStore


class _Bucket:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def keys(self, *args: Any, **kwargs: Any) -> list[str]:
        raise self.error


async def test_an_empty_bucket_lists_no_accounts() -> None:
    store = AccountStore(_Bucket(NoKeysError()), keyring())  # type: ignore[arg-type]
    assert await store.scan() == ([], [])
    assert await store.reencrypt_all() == 0


async def test_a_listing_that_times_out_is_an_error_not_an_empty_registry() -> None:
    store = AccountStore(_Bucket(nats.errors.TimeoutError()), keyring())  # type: ignore[arg-type]
    with pytest.raises(nats.errors.TimeoutError):
        await store.scan()
    with pytest.raises(nats.errors.TimeoutError):
        await store.reencrypt_all()
