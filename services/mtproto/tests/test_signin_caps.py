"""The local cap on sign-in attempts: the pure decision, and the gateway refusing the attempt
over the cap through the real Telethon adapter (the refused attempt never reaches Telegram)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.mtproto.signin_caps import SignInCaps, Verdict, decide

from .mtproto_support import API_HASH, API_ID, stream, world

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CAPS = SignInCaps(per_phone=3, per_workspace=5, window_s=600)


def ago(*seconds: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


def test_attempts_under_both_caps_are_allowed() -> None:
    assert decide(ago(10, 20), ago(10, 20, 30, 40), NOW, CAPS) == Verdict(True)


def test_the_phone_cap_refuses_until_its_oldest_counted_attempt_leaves_the_window() -> None:
    verdict = decide(ago(100, 200, 300), ago(100, 200, 300), NOW, CAPS)
    assert (verdict.allowed, verdict.scope, verdict.retry_after_s) == (False, "phone", 300)
    assert verdict.error_code == "SIGN_IN_CAP_PHONE"


def test_the_workspace_cap_counts_every_phone_of_the_workspace() -> None:
    verdict = decide(ago(50), ago(50, 100, 150, 500, 590), NOW, CAPS)
    assert (verdict.allowed, verdict.scope, verdict.retry_after_s) == (False, "workspace", 10)


def test_attempts_older_than_the_window_do_not_count() -> None:
    assert decide(ago(600, 700, 800, 10), ago(600, 601, 602, 603, 604, 10), NOW, CAPS).allowed


def test_more_attempts_than_the_cap_wait_for_the_one_that_frees_a_slot() -> None:
    verdict = decide(ago(10, 20, 30, 40, 50), [], NOW, CAPS)
    assert (verdict.scope, verdict.retry_after_s) == ("phone", 570)  # 600 - 30


async def test_the_gateway_refuses_the_attempt_over_the_phone_cap(
    nats_url: str, postgres_url: str
) -> None:
    phone = "+15552220001"
    async with world(nats_url, postgres_url) as w:
        w.fake.add_user(phone, first_name="Capped")
        base = await w.gateway(
            adapter="telethon",
            instance_id="caps",
            signin_max_per_phone=2,
            signin_max_per_workspace=10,
        )
        async with w.http(base) as http:
            body = {"phone": phone, "api_id": API_ID, "api_hash": API_HASH}
            first = await http.post("/v1/sessions/capped/login", json=body)
            assert first.status_code == 200, first.text
            assert first.json()["state"] == "code_sent"
            wrong = await http.post("/v1/sessions/capped/login/code", json={"code": "00000"})
            assert wrong.status_code == 400, wrong.text
            assert wrong.json()["code"] == "phone_code_invalid"
            code = w.fake.code(phone)
            assert code is not None
            refused = await http.post("/v1/sessions/capped/login/code", json={"code": code.code})
            assert refused.status_code == 429, refused.text
            problem = refused.json()
            assert problem["code"] == "flood_wait"
            assert problem["error_code"] == "SIGN_IN_CAP_PHONE"
            assert 0 < problem["retry_after_s"] <= 3600
            # the refused attempt never reached Telegram: no session was authorized
            session = await http.get("/v1/sessions/capped")
            assert session.status_code == 200
            assert session.json()["login"]["step"] == "code"
            assert "status" not in session.json()  # only the pending login, no session
        failed = [
            d.model
            for d in await stream(nats_url, "MTPROTO")
            if d.model.name == "mtproto.login_failed"
        ]
        assert [getattr(m, "error_code", None) for m in failed][-1] == "SIGN_IN_CAP_PHONE"
