"""The gateway authorizes per workspace: a key acts only on its own workspace's sessions
(another workspace's session does not exist for it, and its id cannot be taken over), key
scopes hold (read, send, admin), and the operator token opens only the operator routes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from switchboard.mtproto.cli import main as cli

from .mtproto_support import ADMIN, DEMO_KEY, OPERATOR, OTHER, OTHER_KEY, session_string, world

PHONE = "+15551239001"
READ_ONLY = {"Authorization": "Bearer mtproto-read-key"}


async def test_a_key_acts_only_on_its_own_workspace_sessions(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        _, keys = w.fake.add_user(PHONE, first_name="Ada", sessions=1)
        session = keys[0].session
        base = await w.gateway(
            instance_id="k1",
            api_keys="mtproto-demo-key=demo,mtproto-other-key=other,mtproto-read-key=demo:read",
        )
        await w.import_session(base, "ada", session)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # Another workspace's key: the session does not exist, whatever it tries.
            assert (await http.get("/v1/sessions/ada", headers=OTHER)).status_code == 404
            listed = (await http.get("/v1/sessions", headers=OTHER)).json()["items"]
            assert listed == []
            for method, path, body in (
                ("POST", "/v1/sessions/ada/messages",
                 {"message_id": "m1", "peer": "@someone", "text": "hi"}),
                ("POST", "/v1/sessions/ada/subscriptions", {"peer": "@news"}),
                ("GET", "/v1/sessions/ada/subscriptions", None),
                ("POST", "/v1/sessions/ada/backfills", {"peer": "@news"}),
                ("GET", "/v1/sessions/ada/backfills/j1", None),
                ("DELETE", "/v1/sessions/ada/subscriptions/r1", None),
                ("DELETE", "/v1/sessions/ada", None),
                ("POST", "/v1/sessions/ada/login/code", {"code": "12345"}),
                ("POST", "/v1/sessions/ada/login/password", {"password": "x"}),
            ):  # fmt: skip
                r = await http.request(method, path, json=body, headers=OTHER)
                assert r.status_code == 404, (method, path, r.text)
            # ... ids are per workspace: under the same id it gets a session of its own, as
            # under a free id, nor can it act in the name of another workspace.
            imported = {"session": session_string(), "api_id": 1, "api_hash": "x" * 16}
            r = await http.put("/v1/sessions/ada", headers=OTHER, json=imported)
            assert r.status_code == 201, r.text
            assert (r.json()["session_id"], r.json()["workspace_id"]) == ("ada", "other")
            r = await http.post("/v1/sessions/mine/login", headers=OTHER,
                                json={"phone": PHONE, "workspace_id": "demo"})  # fmt: skip
            assert r.status_code == 403
            # The owner still sees it, with its workspace.
            async with w.http(base) as owner:
                shown = (await owner.get("/v1/sessions/ada")).json()
                assert shown["workspace_id"] == "demo"
            # Scopes: a read key reads, and neither sends nor logs in.
            assert (await http.get("/v1/sessions/ada", headers=READ_ONLY)).status_code == 200
            r = await http.post("/v1/sessions/ada/messages", headers=READ_ONLY,
                                json={"message_id": "m2", "peer": "@x", "text": "hi"})  # fmt: skip
            assert r.status_code == 403
            r = await http.post("/v1/sessions/new/login", json={"phone": PHONE},
                                headers=READ_ONLY)  # fmt: skip
            assert r.status_code == 403
            # The operator token is for operator routes only.
            assert (await http.get("/v1/sessions/ada", headers=OPERATOR)).status_code == 401
            assert (await http.get("/v1/ownership", headers=OPERATOR)).status_code == 200
            assert (await http.get("/v1/ownership", headers=OTHER)).status_code == 401


async def test_two_workspaces_importing_one_free_id_at_once_keep_their_own(
    nats_url: str, postgres_url: str
) -> None:
    """Both find the id free; the store then decides: one is stored, the other refused
    (409, and under the id it is given when it asks again), never one replacing the other
    while both are told 201."""
    async with world(nats_url, postgres_url) as w:
        base = await w.gateway(
            instance_id="k2", api_keys="mtproto-demo-key=demo,mtproto-other-key=other"
        )
        demo = {"Authorization": f"Bearer {DEMO_KEY}"}
        body = {"session": session_string(), "api_id": 1, "api_hash": "x" * 16}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            answers = await asyncio.gather(
                *(http.put("/v1/sessions/twin", headers=h, json=body) for h in (demo, OTHER))
            )
            assert [r.status_code for r in answers].count(201) >= 1, answers
            for headers, answer, workspace in zip(
                (demo, OTHER), answers, ("demo", "other"), strict=True
            ):
                if answer.status_code == 409:  # asked again: its own session under the id
                    answer = await http.put("/v1/sessions/twin", headers=headers, json=body)
                assert answer.status_code == 201, answer.text
                shown = await http.get("/v1/sessions/twin", headers=headers)
                assert shown.status_code == 200, shown.text
                assert shown.json()["workspace_id"] == workspace


async def test_the_operator_command_uses_the_workspace_key(
    nats_url: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(nats_url, postgres_url) as w:
        _, keys = w.fake.add_user("+15551239002", first_name="Cli", sessions=1)
        base = await w.gateway(instance_id="k2")
        await w.import_session(base, "cli", keys[0].session)

        def run(*argv: str) -> int:
            return cli(["--url", base, *argv])

        assert await asyncio.to_thread(run, "--api-key", DEMO_KEY, "sessions") == 0
        assert '"session_id": "cli"' in capsys.readouterr().out
        assert await asyncio.to_thread(run, "--api-key", OTHER_KEY, "show", "cli") == 1
        assert await asyncio.to_thread(run, "--admin-token", ADMIN, "reencrypt") == 0
        with pytest.raises(SystemExit, match="SWITCHBOARD_API_KEY"):
            run("sessions")
