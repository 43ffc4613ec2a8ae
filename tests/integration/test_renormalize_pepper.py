"""``switchboard ingest renormalize`` reseals with the deployment's identity pepper, like the
ingest service: under the development pepper, what it republishes would be sealed under data
subjects the CRM's erasure never shreds. Real NATS."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
from tests.support.stack import service_env

from switchboard.ingest import cli
from switchboard.runtime import identity, pii
from switchboard.runtime.bus import Bus

PEPPER = "renormalize-pepper-0123456789"


async def test_renormalize_keys_with_the_deployments_pepper(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in service_env(nats_url, SWITCHBOARD_IDENTITY_PEPPER=PEPPER).items():
        monkeypatch.setenv(key, value)
    bus = await Bus.connect(nats_url, name="renormalize-pepper-test")
    try:
        await bus.provision()
    finally:
        await bus.close()
    identity.configure(identity.DEV_PEPPER)
    try:
        since = "2999-01-01T00:00:00+00:00"  # nothing to renormalize: the pepper is the point
        assert await asyncio.to_thread(cli.main, ["renormalize", "--since", since]) == 0
        parts = ("erased", "w", "whatsapp", "4917612345678")
        expected = hmac.new(PEPPER.encode(), "\x1f".join(parts).encode(), hashlib.sha256)
        assert pii.subject_id("w", "whatsapp", "4917612345678") == "s" + expected.hexdigest()[:32]
    finally:
        identity.configure(identity.DEV_PEPPER)
