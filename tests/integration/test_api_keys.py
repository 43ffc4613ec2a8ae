"""API keys on real NATS through the shared app shell: the operator creates, lists, rotates
and revokes keys (admin API and ``switchboard keys``); keys are checked by scope, expiry and
revocation on every instance; the bucket never holds a key; one body limit; ops routes apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, Request
from starlette.responses import JSONResponse, Response

from switchboard.events.streams import API_KEYS
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth, require_scope
from switchboard.runtime.bus import Bus
from switchboard.runtime.cli import main as cli
from switchboard.runtime.embedded import free_port
from switchboard.runtime.keys import (
    AlreadyRotatedError,
    KeyCache,
    KeyRecord,
    KeyStore,
    Scope,
    new_key,
)
from switchboard.runtime.settings import ServiceSettings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.runtime.testing.dumps import stream_dump

PEPPER = "integration-pepper-0123456789abcdef"
ADMIN = "operator-token-for-key-tests"


def _workspace(request: Request) -> str:
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]
Operator = Annotated[str, Depends(require_scope(Scope.ADMIN))]


def _probe(nats_url: str, ops_port: int | None = None) -> ServiceApp:
    """A service with one route per scope rule, built by the shared shell."""
    settings = ServiceSettings(
        nats_url=nats_url,
        api_key_pepper=PEPPER,  # type: ignore[arg-type]
        admin_token=ADMIN,  # type: ignore[arg-type]
        ops_port=ops_port,
        max_body_bytes=4096,
    )

    async def start(_: object) -> None:
        return None

    app = service_app(service="probe", settings=settings, start=start, title="probe",
                      description="probe")  # fmt: skip
    app.state.auth = ApiKeyAuth({"dev-key-0001": "dev"})

    @app.get("/v1/things")
    async def things(ws: Workspace) -> Response:
        return JSONResponse({"workspace": ws})

    @app.post("/v1/things")
    async def add(ws: Workspace, request: Request) -> Response:
        return JSONResponse({"workspace": ws, "bytes": len(await request.body())}, 201)

    @app.get("/v1/operator-things")
    async def operator_things(ws: Operator) -> Response:
        return JSONResponse({"workspace": ws})

    return app


@contextlib.asynccontextmanager
async def _served(nats_url: str, ops_port: int | None = None) -> AsyncIterator[str]:
    async with serve_app(_probe(nats_url, ops_port)) as url:
        yield url


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_operator_creates_lists_rotates_and_revokes_keys(nats_url: str) -> None:
    admin = _bearer(ADMIN)
    async with _served(nats_url) as a, _served(nats_url) as b, httpx.AsyncClient() as http:
        made = await http.post(f"{a}/admin/api-keys", headers=admin,
                               json={"workspace_id": "acme", "scopes": ["read"]})  # fmt: skip
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["key_id"]
        # A new key works at once on another instance too.
        got = await http.get(f"{b}/v1/things", headers=_bearer(key))
        assert got.status_code == 200
        assert got.json() == {"workspace": "acme"}
        # Read scope only: a write and an operator route are 403.
        assert (await http.post(f"{b}/v1/things", headers=_bearer(key))).status_code == 403
        assert (await http.get(f"{a}/v1/operator-things", headers=_bearer(key))).status_code == 403

        listed = (await http.get(f"{a}/admin/api-keys?workspace_id=acme", headers=admin)).json()
        assert [k["key_id"] for k in listed["items"]] == [key_id]
        assert key not in str(listed)
        assert "hash" not in listed["items"][0]
        assert (await http.get(f"{a}/admin/api-keys", headers=_bearer(key))).status_code == 401
        assert (await http.get(f"{a}/admin/api-keys")).status_code == 401

        async def last_use_recorded() -> bool:
            items = (await http.get(f"{a}/admin/api-keys", headers=admin)).json()["items"]
            return any(k["key_id"] == key_id and k["last_used_at"] for k in items)

        await eventually(last_use_recorded, message="last use recorded")

        rotated = await http.post(f"{a}/admin/api-keys/{key_id}/rotate", headers=admin)
        assert rotated.status_code == 201
        new = rotated.json()["key"]
        again = await http.post(f"{a}/admin/api-keys/{key_id}/rotate", headers=admin)
        assert again.status_code == 409, again.text  # one successor per key
        assert again.json()["successor"] == rotated.json()["key_id"]
        assert (await http.get(f"{b}/v1/things", headers=_bearer(new))).status_code == 200

        async def old_refused() -> bool:
            return (await http.get(f"{b}/v1/things", headers=_bearer(key))).status_code == 401

        await eventually(old_refused, message="the rotated key refused on the other instance")

        revoked = await http.delete(f"{a}/admin/api-keys/{rotated.json()['key_id']}",
                                    headers=admin)  # fmt: skip
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"]

        async def new_refused() -> bool:
            return (await http.get(f"{b}/v1/things", headers=_bearer(new))).status_code == 401

        await eventually(new_refused, message="a revoked key refused on every instance")


async def test_the_bucket_never_holds_a_key_and_expired_keys_are_refused(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="test-keys")
    try:
        await bus.provision()
        kv = await bus.kv(API_KEYS.name)
        store = KeyStore(kv, PEPPER.encode())
        _, live = await store.create("acme", [Scope.READ, Scope.SEND])
        past = datetime.now(UTC) - timedelta(seconds=1)
        _, expired = await store.create("acme", [Scope.READ], expires_at=past)
        # Every message of every stream (the bucket's history included), read by sequence:
        # nats-py's kv.keys() watcher now and then reported no keys right after writes.
        stored = (await stream_dump(nats_url)).encode()
        assert b"$KV.api_keys." in stored  # the keys are in what was read
        for key in (live, expired):
            assert key.encode() not in stored
            # not even the secret part (after "sbk_<id>_": token_urlsafe may hold "_" itself,
            # so the last "_"-piece could be one character, found anywhere by chance)
            assert key.split("_", 2)[2].encode() not in stored
        async with _served(nats_url) as url, httpx.AsyncClient() as http:
            assert (await http.post(f"{url}/v1/things", headers=_bearer(live))).status_code == 201
            got = await http.get(f"{url}/v1/things", headers=_bearer(expired))
            assert got.status_code == 401
            forged = live[:-4] + "AAAA" if not live.endswith("AAAA") else live[:-4] + "BBBB"
            assert (await http.get(f"{url}/v1/things", headers=_bearer(forged))).status_code == 401
            # The development key from settings keeps every scope.
            dev = _bearer("dev-key-0001")
            assert (await http.get(f"{url}/v1/operator-things", headers=dev)).status_code == 200
    finally:
        await bus.close()


async def test_a_rotated_keys_grace_ends_on_the_clock_every_instance_shares(
    nats_url: str,
) -> None:
    """The grace is written by one process and judged by every other on one clock (the
    server's, in the services and the CLI), never on each one's own."""
    bus = await Bus.connect(nats_url, name="test-keys-clock")
    try:
        await bus.provision()
        kv = await bus.kv(API_KEYS.name)
        shared = [datetime(2026, 1, 1, tzinfo=UTC)]
        store = KeyStore(kv, PEPPER.encode(), lambda: shared[0])
        old, key = await store.create("acme", [Scope.READ])
        rotated = await store.rotate(old.key_id, grace=timedelta(hours=1))
        assert rotated is not None
        cache = KeyCache(KeyStore(kv, PEPPER.encode(), lambda: shared[0]))
        shared[0] += timedelta(minutes=59)
        assert await cache.authenticate(key) is not None
        shared[0] += timedelta(minutes=2)
        assert await cache.authenticate(key) is None
        assert await cache.authenticate(rotated[1]) is not None
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def _store(nats_url: str, name: str) -> AsyncIterator[KeyStore]:
    bus = await Bus.connect(nats_url, name=name)
    try:
        await bus.provision()
        yield KeyStore(await bus.kv(API_KEYS.name), PEPPER.encode())
    finally:
        await bus.close()


async def test_rotations_at_once_make_one_new_key(nats_url: str) -> None:
    async with _store(nats_url, "test-keys-rotations") as store:
        old, _ = await store.create("acme", [Scope.SEND])
        before = {k.key_id for k in await store.list("acme")}
        results = await asyncio.gather(
            *(store.rotate(old.key_id, grace=timedelta(minutes=5)) for _ in range(10)),
            return_exceptions=True,
        )
        made = [r for r in results if isinstance(r, tuple)]
        assert len(made) == 1, results
        assert all(isinstance(r, AlreadyRotatedError) for r in results if r not in made)
        after = {k.key_id for k in await store.list("acme")}
        assert after - before == {made[0][0].key_id}  # the losers' keys were purged
        assert (await store.get(old.key_id)).rotated_to == made[0][0].key_id  # type: ignore[union-attr]


async def test_a_revocation_during_a_rotation_stands(nats_url: str) -> None:
    """The rotation read the key, the operator revoked it, then the rotation wrote: the
    key must stay revoked (a plain put wrote it back usable until its grace ended) and no
    successor may live on for a revoked key."""
    async with (
        _store(nats_url, "test-keys-rotate") as store,
        _store(nats_url, "test-keys-revoke") as operator,
    ):
        old, key = await store.create("acme", [Scope.SEND])
        create = store.create

        async def revoked_meanwhile(*args: Any, **kwargs: Any) -> tuple[KeyRecord, str]:
            made = await create(*args, **kwargs)
            await operator.revoke(old.key_id)  # between the rotation's read and its write
            return made

        store.create = revoked_meanwhile  # type: ignore[method-assign]
        assert await store.rotate(old.key_id, grace=timedelta(hours=1)) is None
        record = await operator.get(old.key_id)
        assert record is not None
        assert record.revoked_at is not None
        assert record.rotated_to is None
        assert [k.key_id for k in await operator.list("acme")] == [old.key_id]
        assert await KeyCache(operator).authenticate(key) is None


async def test_switchboard_keys_create_prints_the_key_once(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_API_KEY_PEPPER", PEPPER)
    code = await _cli(["keys", "--nats-url", nats_url, "create", "--workspace", "other",
                       "--scopes", "read,send", "--expires", "30d"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out.strip()
    async with _served(nats_url) as url, httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/v1/things", headers=_bearer(out))).status_code == 201
        listed = await _cli(["keys", "--nats-url", nats_url, "list", "--workspace", "other"])
        assert listed == 0
        lines = capsys.readouterr().out
        assert out not in lines
        assert '"workspace_id": "other"' in lines
        key_id = out.split("_")[1]
        assert await _cli(["keys", "--nats-url", nats_url, "revoke", key_id]) == 0

        async def refused() -> bool:
            return (await http.get(f"{url}/v1/things", headers=_bearer(out))).status_code == 401

        await eventually(refused, message="revoked by the command")
    bad = await _cli(["keys", "--nats-url", nats_url, "revoke", "0123456789abcdef"])
    assert bad == 1


async def _cli(argv: list[str]) -> int:
    # The command runs its own event loop; run it in a thread beside the test's loop.
    import asyncio

    return await asyncio.to_thread(cli, argv)


async def test_one_body_limit_and_ops_routes_apart(nats_url: str) -> None:
    ops = free_port()
    async with _served(nats_url, ops_port=ops) as url, httpx.AsyncClient() as http:
        ops_url = url.rsplit(":", 1)[0] + f":{ops}"
        dev = _bearer("dev-key-0001")
        big = b"x" * 5000
        declared = await http.post(f"{url}/v1/things", headers=dev, content=big)
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"y" * 1000

        streamed = await http.post(f"{url}/v1/things", headers=dev, content=chunks())
        assert streamed.status_code == 413
        assert (await http.post(f"{url}/v1/things", headers=dev, content=b"ok")).status_code == 201
        # /metrics only on the ops port; the ops port serves nothing else but the probes.
        assert (await http.get(f"{url}/metrics")).status_code == 404
        assert (await http.get(f"{ops_url}/metrics")).status_code == 200
        assert (await http.get(f"{ops_url}/v1/things", headers=dev)).status_code == 404
        assert (await http.get(f"{ops_url}/healthz")).status_code == 200
        assert (await http.get(f"{url}/healthz")).status_code == 200
    async with _served(nats_url) as url, httpx.AsyncClient() as http:
        # No ops port: the operator token opens them, nothing else does.
        assert (await http.get(f"{url}/metrics")).status_code == 401
        assert (
            await http.get(f"{url}/metrics", headers=_bearer("dev-key-0001"))
        ).status_code == 401
        assert (await http.get(f"{url}/metrics", headers=_bearer(ADMIN))).status_code == 200


async def test_a_key_bucket_that_does_not_answer_is_503_not_401() -> None:
    """The bucket failing is our infrastructure, not a bad key: retryable, never a 401."""

    class Unreachable:
        pepper = PEPPER.encode()

        async def get(self, key_id: str) -> None:
            raise TimeoutError("nats: timeout")

    app = _probe("nats://127.0.0.1:9")
    app.key_cache = KeyCache(Unreachable())  # type: ignore[arg-type]
    _, key = new_key()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        r = await http.get("/v1/things", headers=_bearer(key))
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "1"
        # A development key does not need the bucket.
        assert (await http.get("/v1/things", headers=_bearer("dev-key-0001"))).status_code == 200
