"""A session's health record: the get_me probe runs once after connecting, then only when
the session has been quiet for the interval; failures and flood waits keep their reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.mtproto.health import SessionHealth, report
from switchboard.mtproto.ports import FloodWaitError, User

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class _Client:
    """Answers get_me from a script (the one call the probe makes)."""

    def __init__(self, *answers: User | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def get_me(self) -> User:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_probe_once_after_connecting_then_only_when_quiet() -> None:
    health = SessionHealth()
    health.connected(True)
    client = _Client(User(id=7), FloodWaitError(30), User(id=7))
    assert await health.probe_if_due(client, 300, NOW)
    assert health.probe_ok is True
    assert not await health.probe_if_due(client, 300, NOW + timedelta(seconds=60))
    health.last_success_at = NOW + timedelta(seconds=200)  # an update: proof it works
    assert not await health.probe_if_due(client, 300, NOW + timedelta(seconds=301))
    health.last_success_at = NOW - timedelta(hours=1)
    assert await health.probe_if_due(client, 300, NOW + timedelta(seconds=400))
    assert health.probe_ok is False
    assert "FLOOD_WAIT" in (health.last_error or "")
    assert client.calls == 2
    body = report([("s1", health)])["mtproto/s1"]
    assert body["healthy"] is False
    assert body["probe"]["ok"] is False
    assert body["state"] == "connected"


def test_disconnects_and_flood_waits_are_reported_with_their_reason() -> None:
    health = SessionHealth()
    health.connected(True)
    health.succeeded(0.2)
    health.flood_wait("send_message", 12)
    health.connected(False)
    health.failed("disconnected (network): reset by peer")
    body = health.body()
    assert body["state"] == "disconnected"
    assert body["healthy"] is False
    assert body["flood_waits"] == 1
    assert body["last_error"] == "disconnected (network): reset by peer"
    assert body["p95_latency_ms"] == 200.0
