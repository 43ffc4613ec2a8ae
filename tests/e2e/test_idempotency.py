"""Idempotency of sends like the payment APIs, over HTTP and over the bus, against the sandbox
Telegram with real NATS; JetStream's duplicate window is shrunk to half a second (a setting)
so that "after the window" needs no long sleep.

Each case and its expected answer:
- same key, same body: the original answer again (202, ``Idempotent-Replayed``), sent once;
- same key, another body: 422 naming the conflict (HTTP) / ``delivery.rejected`` (bus);
- a repeat while the first request is in flight: 409 with ``Retry-After``;
- keys are per workspace: B reusing A's id is a new message for B, sent, never a 409;
- a retry after the duplicate window while the first send is pending (``not_before``) is
  dropped, and the message is sent once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.outbound import outbound_stack, sandbox_account, telegram_shop, text_send
from tests.support.stack import API_KEY, OTHER_KEY
from tests.support.streams import stream_messages

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.idempotency import Claim, IdempotencyKeys
from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import Bus
from switchboard.runtime.fingerprint import fingerprint
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN_A = "300000011:idem-a"
TOKEN_B = "300000012:idem-b"
WINDOW_S = 0.5
A = {"Authorization": f"Bearer {API_KEY}"}  # workspace demo, account shop
B = {"Authorization": f"Bearer {OTHER_KEY}"}  # workspace other, account theirs


@dataclass
class Env:
    box: Sandbox
    url: str
    bus: Bus
    http: httpx.AsyncClient
    nats_url: str

    def sent(self, token: str) -> list[str]:
        """Texts the sandbox bot accepted."""
        requests = self.box.recorder.requests(provider="telegram", method="sendMessage")
        return [str(r.params.get("text")) for r in requests if r.ok and token in r.path]


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN_A, "a_bot")
    box.telegram.add_bot(TOKEN_B, "b_bot")

    def accounts(sandbox: str) -> list[Account]:
        return [
            telegram_shop(sandbox, TOKEN_A),
            sandbox_account(sandbox, Channel.TELEGRAM, "theirs", {"token": TOKEN_B}, "other"),
        ]

    async with outbound_stack(
        box,
        nats_url,
        monkeypatch,
        accounts,
        timeout=30,
        duplicate_window_s=WINDOW_S,
        SWITCHBOARD_DUPLICATE_WINDOW_S=WINDOW_S,
    ) as stack:
        yield Env(box, stack.url, stack.bus, stack.http, nats_url)


def body(text: str = "hello", account: str = "shop", **extra: Any) -> dict[str, Any]:
    return {
        "channel": "telegram",
        "account": account,
        "recipient": "4001",
        "content": {"kind": "text", "text": text},
        **extra,
    }


def command(message_id: str, text: str = "hello", **extra: Any) -> SendMessage:
    return text_send(message_id, "4001", text, **extra)


async def status(env: Env, message_id: str, auth: dict[str, str]) -> dict[str, Any]:
    r = await env.http.get(f"{env.url}/v1/messages/{message_id}", headers=auth)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def settled(env: Env, message_id: str, auth: dict[str, str]) -> dict[str, Any] | None:
    found = await status(env, message_id, auth)
    return found if found["status"] in ("sent", "failed") else None


async def outbound_empty(env: Env) -> bool:
    """Every command of the OUTBOUND stream was settled (acked and removed)."""
    return (await env.bus.js.stream_info("OUTBOUND")).state.messages == 0


async def test_same_key_same_body_answers_the_original_and_sends_once(env: Env) -> None:
    headers = {**A, "Idempotency-Key": "order-1"}
    first = await env.http.post(f"{env.url}/v1/messages", json=body(), headers=headers)
    assert first.status_code == 202, first.text
    again = await env.http.post(f"{env.url}/v1/messages", json=body(), headers=headers)
    assert again.status_code == 202, again.text
    assert again.json() == first.json() == {"message_id": "order-1", "status": "accepted"}
    assert again.headers["Idempotent-Replayed"] == "true"
    await eventually(lambda: settled(env, "order-1", A), timeout=30)
    after = await env.http.post(f"{env.url}/v1/messages", json=body(), headers=headers)
    assert (after.status_code, after.json()) == (202, first.json())
    await eventually(lambda: outbound_empty(env), timeout=30)
    assert env.sent(TOKEN_A) == ["hello"]


async def test_same_key_another_body_is_422_naming_the_conflict(env: Env) -> None:
    headers = {**A, "Idempotency-Key": "order-2"}
    first = await env.http.post(f"{env.url}/v1/messages", json=body("one"), headers=headers)
    assert first.status_code == 202, first.text
    other = await env.http.post(f"{env.url}/v1/messages", json=body("two"), headers=headers)
    assert other.status_code == 422, other.text
    assert "order-2" in other.text
    assert "idempotency_conflict" in other.text
    await eventually(lambda: settled(env, "order-2", A), timeout=30)
    await eventually(lambda: outbound_empty(env), timeout=30)
    assert env.sent(TOKEN_A) == ["one"]


async def test_a_repeat_while_the_first_request_is_in_flight_is_409_with_retry_after(
    env: Env,
) -> None:
    # The first request holds its key, between its claim and its answer, as a real one does
    # while it publishes (a second outbound instance, a slow JetStream).
    keys = IdempotencyKeys(await env.bus.kv("sends"), "messages")
    fp = fingerprint(command("order-3"))
    claim = await keys.begin("demo", "order-3", fp)
    assert isinstance(claim, Claim)
    headers = {**A, "Idempotency-Key": "order-3"}
    r = await env.http.post(f"{env.url}/v1/messages", json=body(), headers=headers)
    assert r.status_code == 409, r.text
    assert int(r.headers["Retry-After"]) >= 1
    # once the first answered, the repeat gets that answer
    await keys.complete(claim, 202, {"message_id": "order-3", "status": "accepted"})
    r = await env.http.post(f"{env.url}/v1/messages", json=body(), headers=headers)
    assert (r.status_code, r.json()["message_id"]) == (202, "order-3")
    assert r.headers["Idempotent-Replayed"] == "true"


async def test_keys_are_per_workspace(env: Env) -> None:
    a = await env.http.post(
        f"{env.url}/v1/messages", json=body("from a"), headers={**A, "Idempotency-Key": "k-1"}
    )
    assert a.status_code == 202, a.text
    b = await env.http.post(
        f"{env.url}/v1/messages",
        json=body("from b", account="theirs"),
        headers={**B, "Idempotency-Key": "k-1"},
    )
    assert b.status_code == 202, b.text  # a new message for B: no 409, no leak
    assert "Idempotent-Replayed" not in b.headers
    # over the bus too, inside the duplicate window: B's command is no duplicate of A's
    await env.bus.publish(command("k-2", "bus a"), workspace_id="demo")
    ack = await env.bus.publish(
        command("k-2", "bus b").model_copy(update={"account": "theirs"}), workspace_id="other"
    )
    assert not ack.duplicate
    for message_id in ("k-1", "k-2"):
        assert (await eventually(lambda m=message_id: settled(env, m, A)))["status"] == "sent"
        assert (await eventually(lambda m=message_id: settled(env, m, B)))["status"] == "sent"
    assert (await status(env, "k-1", B))["account"] == "theirs"
    assert sorted(env.sent(TOKEN_A)) == ["bus a", "from a"]
    assert sorted(env.sent(TOKEN_B)) == ["bus b", "from b"]


async def test_a_bus_command_with_another_body_under_a_taken_id_is_rejected(env: Env) -> None:
    await env.bus.publish(command("c-1", "original"), workspace_id="demo")
    await eventually(lambda: settled(env, "c-1", A), timeout=30)
    # after JetStream's window, so the stream stores it: outbound must refuse it itself
    changed = command("c-1", "changed")

    async def stored() -> bool:
        return not (await env.bus.publish(changed, workspace_id="demo")).duplicate

    await eventually(stored, timeout=30, interval=WINDOW_S / 2)

    async def rejected() -> list[Any]:
        events = await stream_messages(env.nats_url, "DELIVERY")
        return [d.model for d in events if d.model.name == "delivery.rejected"]

    found = await eventually(rejected, timeout=30)
    assert found[0].message_id == "c-1"
    assert found[0].error_code == "idempotency_conflict"
    assert "another body" in found[0].reason
    await eventually(lambda: outbound_empty(env), timeout=30)
    assert env.sent(TOKEN_A) == ["original"]
    assert (await status(env, "c-1", A))["status"] == "sent"  # the message is untouched


async def test_a_retry_after_the_duplicate_window_while_the_first_is_pending_is_sent_once(
    env: Env,
) -> None:
    later = datetime.now(UTC) + timedelta(seconds=6)
    first = command("p-1", "scheduled", not_before=later)
    await env.bus.publish(first, workspace_id="demo")
    await eventually(lambda: status(env, "p-1", A), timeout=30)  # the record names its owner

    # The producer retries after JetStream forgot the first id: the stream stores a copy.
    async def copy_stored() -> int | None:
        ack = await env.bus.publish(first, workspace_id="demo")
        return None if ack.duplicate else ack.seq

    seq = await eventually(copy_stored, timeout=30, interval=WINDOW_S / 2)
    await eventually(lambda: settled(env, "p-1", A), timeout=60)
    await eventually(lambda: outbound_empty(env), timeout=30)
    assert seq > 1
    assert env.sent(TOKEN_A) == ["scheduled"]


async def test_a_campaign_id_started_with_another_message_is_422(env: Env) -> None:
    campaign = {
        "campaign_id": "spring",
        "channel": "telegram",
        "accounts": ["shop"],
        "recipients": ["7001"],
        "content": {"kind": "text", "text": "spring offer"},
    }
    url = f"{env.url}/v1/campaigns"
    assert (await env.http.post(url, json=campaign, headers=A)).status_code == 202

    async def started() -> bool:
        r = await env.http.get(f"{url}/spring", headers=A)
        return r.status_code == 200 and r.json()["status"] in ("running", "completed")

    await eventually(started, timeout=30)
    again = await env.http.post(url, json={**campaign, "recipients": ["7001", "7002"]}, headers=A)
    assert again.status_code == 202, again.text  # a retry: the first start stands
    other = {**campaign, "content": {"kind": "text", "text": "autumn offer"}}
    changed = await env.http.post(url, json=other, headers=A)
    assert changed.status_code == 422, changed.text
    assert "idempotency_conflict" in changed.text
    assert "content" in changed.text

    async def completed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await env.http.get(f"{url}/spring", headers=A)).json()
        return body if body["status"] == "completed" else None

    assert (await eventually(completed, timeout=60))["sent"] == 1
    await eventually(lambda: outbound_empty(env), timeout=30)
    assert env.sent(TOKEN_A) == ["spring offer"]


async def test_two_starts_of_one_campaign_with_other_messages_at_once_are_not_both_accepted(
    env: Env,
) -> None:
    """Both starts find no campaign yet; before, both were answered 202 and JetStream's
    duplicate window dropped the second command, whose caller believed its message was on
    its way. Now the second waits for the first (409) or is refused (422); one is sent."""
    url = f"{env.url}/v1/campaigns"
    base = {"campaign_id": "twins", "channel": "telegram", "accounts": ["shop"],
            "recipients": ["7101"]}  # fmt: skip
    bodies = [{**base, "content": {"kind": "text", "text": t}} for t in ("left", "right")]
    answers = await asyncio.gather(*(env.http.post(url, json=b, headers=A) for b in bodies))
    codes = sorted(r.status_code for r in answers)
    assert codes in ([202, 409], [202, 422]), [r.text for r in answers]
    accepted = next(b for b, r in zip(bodies, answers, strict=True) if r.status_code == 202)
    refused = next(b for b, r in zip(bodies, answers, strict=True) if r.status_code != 202)
    again = await env.http.post(url, json=refused, headers=A)
    assert again.status_code in (409, 422), again.text  # never accepted later either

    async def completed() -> bool:
        r = await env.http.get(f"{url}/twins", headers=A)
        return r.status_code == 200 and r.json()["status"] == "completed"

    await eventually(completed, timeout=60)
    await eventually(lambda: outbound_empty(env), timeout=30)
    assert accepted["content"]["text"] in env.sent(TOKEN_A)
    assert refused["content"]["text"] not in env.sent(TOKEN_A)


async def test_a_batch_number_sent_again_with_other_recipients_is_422(env: Env) -> None:
    """A batch is stored once by its number: another list under a number already taken was
    answered 202 and silently dropped; now the caller is told, and the same list again is
    the first answer."""
    url = f"{env.url}/v1/campaigns"
    start = {"campaign_id": "batches", "channel": "telegram", "accounts": ["shop"],
             "recipients": ["7201"], "final": False,
             "content": {"kind": "text", "text": "in batches"}}  # fmt: skip
    assert (await env.http.post(url, json=start, headers=A)).status_code == 202
    first = {"batch": 1, "recipients": [{"recipient": "7202"}]}
    r = await env.http.post(f"{url}/batches/recipients", json=first, headers=A)
    assert r.status_code == 202, r.text
    again = await env.http.post(f"{url}/batches/recipients", json=first, headers=A)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (202, "true")
    other = {"batch": 1, "recipients": [{"recipient": "7203"}]}
    r = await env.http.post(f"{url}/batches/recipients", json=other, headers=A)
    assert r.status_code == 422, r.text
    last = {"batch": 2, "recipients": [{"recipient": "7204"}], "final": True}
    assert (
        await env.http.post(f"{url}/batches/recipients", json=last, headers=A)
    ).status_code == 202

    async def completed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await env.http.get(f"{url}/batches", headers=A)).json()
        return body if body["status"] == "completed" else None

    assert (await eventually(completed, timeout=60))["sent"] == 3
