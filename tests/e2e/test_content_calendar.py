"""The content calendar against the sandbox Telegram with real NATS: a post made from a
versioned template is a scheduled send; a second post to the same channel within the gap is
a 409 naming the first unless forced; an edit (time, then content) goes through the schedule
desk; the post arrives in the sandbox channel, not before its time, rendered with its values
escaped; and another workspace sees none of it (404). A new post or a content edit cut by a
crash between its steps is finished by the next read, never left pointing at an unqueued
send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.outbound import outbound_stack, telegram_shop
from tests.support.stack import API_KEY, OTHER_KEY

from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.calendar.settle import Settler
from switchboard.outbound.schedule import ScheduleDesk
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000041:calendar-a"
CHAT = -1001500
A = {"Authorization": f"Bearer {API_KEY}"}  # workspace demo, account shop
B = {"Authorization": f"Bearer {OTHER_KEY}"}  # workspace other
DEST = {"channel": "telegram", "account": "shop", "chat": "@shopnews"}
VALUES = {"title": "<Sale>", "deal": "5 & 6"}


@dataclass
class Env:
    box: Sandbox
    url: str
    http: httpx.AsyncClient

    async def call(
        self, method: str, path: str, auth: dict[str, str] = A, **kw: Any
    ) -> httpx.Response:
        return await self.http.request(method, self.url + path, headers=auth, **kw)

    def channel_posts(self) -> list[dict[str, Any]]:
        return self.box.telegram.messages(TOKEN, chat_id=CHAT)


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "calendar_bot")
    box.telegram.add_chat(TOKEN, CHAT, "channel", username="shopnews", title="Shop news")
    async with outbound_stack(
        box, nats_url, monkeypatch, lambda sandbox: [telegram_shop(sandbox, TOKEN)], timeout=30
    ) as stack:
        yield Env(box, stack.url, stack.http)


def ahead(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def queued(env: Env, post: dict[str, Any]) -> bool:
    """The post's send has been taken by outbound (its record exists)."""
    r = await env.call("GET", f"/v1/messages/{post['message_id']}")
    return r.status_code == 200


async def test_a_templated_post_is_checked_edited_and_published(env: Env) -> None:
    r = await env.call(
        "POST", "/v1/templates", json={"name": "daily", "body": "<b>{{ title }}</b>: {{deal}}"}
    )
    assert r.status_code == 201, r.text
    r = await env.call("PUT", "/v1/templates/daily", json={"body": "<i>{{ title }}</i> {{deal}}"})
    assert r.status_code == 200, r.text
    assert [v["version"] for v in r.json()["versions"]] == [1, 2]
    r = await env.call("POST", "/v1/templates", json={"name": "daily", "body": "again"})
    assert r.status_code == 409, r.text

    naive = {
        "destination": DEST,
        "at": "2099-01-01T10:00:00",
        "content": {"kind": "text", "text": "x"},
    }
    r = await env.call("POST", "/v1/calendar/posts", json=naive)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "body.at"
    assert r.json()["code"] == "invalid_post"
    long = {"destination": DEST, "at": ahead(60), "content": {"kind": "text", "text": "x" * 4097}}
    r = await env.call("POST", "/v1/calendar/posts", json=long)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("too_long", "content.text")
    missing = {"destination": DEST, "at": ahead(60), "template": {"name": "daily"}}
    r = await env.call("POST", "/v1/calendar/posts", json=missing)
    assert r.status_code == 422, r.text
    assert r.json()["missing"] == ["title", "deal"]

    first = {
        "destination": DEST,
        "at": ahead(60),
        "template": {"name": "daily", "variables": VALUES},
    }
    r = await env.call("POST", "/v1/calendar/posts", json=first)
    assert r.status_code == 201, r.text
    post = r.json()
    assert post["status"] == "scheduled"
    assert post["template"] == {"name": "daily", "version": 2}
    assert post["content"]["text"] == "<i>&lt;Sale&gt;</i> 5 &amp; 6"

    near = {"destination": DEST, "at": ahead(120), "content": {"kind": "text", "text": "near"}}
    r = await env.call("POST", "/v1/calendar/posts", json=near)
    assert r.status_code == 409, r.text
    assert r.json()["other_post_id"] == post["post_id"]
    r = await env.call("POST", "/v1/calendar/posts", json={**near, "force": True})
    assert r.status_code == 201, r.text
    forced = r.json()
    elsewhere = {**DEST, "chat": "@othernews"}
    r = await env.call("POST", "/v1/calendar/posts", json={**near, "destination": elsewhere})
    assert r.status_code == 201, r.text  # another destination: no overlap
    other_chat = r.json()

    await eventually(lambda: queued(env, forced), message="the forced post's send is queued")
    r = await env.call("POST", f"/v1/calendar/posts/{forced['post_id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    # A cancelled post stays as it is: neither cancelled again nor changed.
    r = await env.call("POST", f"/v1/calendar/posts/{forced['post_id']}/cancel")
    assert (r.status_code, r.json()["code"]) == (409, "not_changeable"), r.text
    r = await env.call("PATCH", f"/v1/calendar/posts/{forced['post_id']}", json={"at": ahead(1200)})
    assert (r.status_code, r.json()["code"]) == (409, "not_changeable"), r.text
    await eventually(lambda: queued(env, other_chat), message="the other chat's send is queued")
    r = await env.call("POST", f"/v1/calendar/posts/{other_chat['post_id']}/cancel")
    assert r.status_code == 200, r.text

    # An edit that moves the post next to another is a 409 naming it.
    near_again = {
        "destination": DEST,
        "at": ahead(900),
        "content": {"kind": "text", "text": "later"},
    }
    r = await env.call("POST", "/v1/calendar/posts", json=near_again)
    assert r.status_code == 201, r.text
    later = r.json()
    r = await env.call("PATCH", f"/v1/calendar/posts/{post['post_id']}", json={"at": ahead(850)})
    assert r.status_code == 409, r.text
    assert r.json()["other_post_id"] == later["post_id"]

    # Moved later (the same send, rescheduled), then rendered from version 1 sooner.
    await eventually(lambda: queued(env, post), message="the post's send is queued")
    r = await env.call("PATCH", f"/v1/calendar/posts/{post['post_id']}", json={"at": ahead(90)})
    assert r.status_code == 200, r.text
    assert r.json()["message_id"] == post["message_id"]
    at = ahead(5)
    edit = {"at": at, "template": {"name": "daily", "version": 1, "variables": VALUES}}
    r = await env.call("PATCH", f"/v1/calendar/posts/{post['post_id']}", json=edit)
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["message_id"] != post["message_id"]
    assert edited["template"] == {"name": "daily", "version": 1}

    async def published() -> list[dict[str, Any]]:
        return env.channel_posts()

    arrived = await eventually(published, timeout=30, message="the post in the channel")
    # Version 1, the values escaped for HTML; the old send and the forced post never left.
    assert [m["text"] for m in arrived] == ["<b>&lt;Sale&gt;</b>: 5 &amp; 6"]
    sent = [r for r in env.box.recorder.requests(provider="telegram", method="sendMessage") if r.ok]
    assert [r.params.get("parse_mode") for r in sent] == ["HTML"]
    assert sent[0].at >= datetime.fromisoformat(at).timestamp()

    async def listed() -> list[dict[str, Any]] | None:
        r = await env.call("GET", "/v1/calendar", params={"from": ahead(-3600), "to": ahead(3600)})
        assert r.status_code == 200, r.text
        posts: list[dict[str, Any]] = r.json()["posts"]
        return posts if posts[0]["status"] == "published" else None

    posts = await eventually(listed, message="the calendar shows the post published")
    assert {p["post_id"]: p["status"] for p in posts} == {
        post["post_id"]: "published",
        forced["post_id"]: "cancelled",
        other_chat["post_id"]: "cancelled",
        later["post_id"]: "scheduled",
    }
    assert [p["at"] for p in posts] == sorted(p["at"] for p in posts)  # by time
    r = await env.call("PATCH", f"/v1/calendar/posts/{post['post_id']}", json={"at": ahead(300)})
    assert r.status_code == 409, r.text  # published: no longer changeable


async def test_another_workspace_sees_no_template_or_post(env: Env) -> None:
    r = await env.call("POST", "/v1/templates", json={"name": "mine", "body": "{{ x }}"})
    assert r.status_code == 201, r.text
    body = {"destination": DEST, "at": ahead(600), "content": {"kind": "text", "text": "a"}}
    r = await env.call("POST", "/v1/calendar/posts", json=body)
    assert r.status_code == 201, r.text
    post_id = r.json()["post_id"]

    assert (await env.call("GET", "/v1/templates/mine", B)).status_code == 404
    r = await env.call("PUT", "/v1/templates/mine", B, json={"body": "mallory"})
    assert r.status_code == 404, r.text
    assert (await env.call("GET", "/v1/templates", B)).json() == {"templates": []}
    assert (await env.call("GET", f"/v1/calendar/posts/{post_id}", B)).status_code == 404
    r = await env.call("PATCH", f"/v1/calendar/posts/{post_id}", B, json={"at": ahead(700)})
    assert r.status_code == 404, r.text
    r = await env.call("POST", f"/v1/calendar/posts/{post_id}/cancel", B)
    assert r.status_code == 404, r.text
    assert (await env.call("GET", "/v1/calendar", B)).json() == {"posts": []}
    # B cannot post through A's account, nor from A's template.
    r = await env.call("POST", "/v1/calendar/posts", B, json={**body, "force": True})
    assert r.status_code == 404, r.text
    with_template = {**body, "content": None, "template": {"name": "mine", "variables": {"x": "1"}}}
    r = await env.call("POST", "/v1/calendar/posts", B, json=with_template)
    assert r.status_code == 404, r.text
    # A's post is untouched.
    r = await env.call("GET", f"/v1/calendar/posts/{post_id}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "scheduled"


async def test_posts_placed_at_once_never_overlap(env: Env) -> None:
    """Each post is written before it looks for others: of posts placed at the same moment
    for one destination, at most one is accepted, the others are 409s."""
    at = ahead(3600)
    body = {"destination": DEST, "at": at, "content": {"kind": "text", "text": "race"}}
    answers = await asyncio.gather(
        *(env.call("POST", "/v1/calendar/posts", json=body) for _ in range(8))
    )
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {201, 409}, [r.text for r in answers]
    assert codes.count(201) <= 1, codes
    r = await env.call("GET", "/v1/calendar")
    assert r.status_code == 200, r.text
    assert len(r.json()["posts"]) == codes.count(201)


async def queued_post(env: Env, text: str) -> dict[str, Any]:
    """A text post ten minutes ahead, created and its send taken by outbound."""
    body = {"destination": DEST, "at": ahead(600), "content": {"kind": "text", "text": text}}
    r = await env.call("POST", "/v1/calendar/posts", json=body)
    assert r.status_code == 201, r.text
    post: dict[str, Any] = r.json()
    await eventually(lambda: queued(env, post), message="the post's send is queued")
    return post


class CrashError(Exception):
    """The instance dies here (raised between two steps of a request)."""


def crash_once(monkeypatch: pytest.MonkeyPatch, where: str, message_id: str) -> None:
    """Arm one crash of the next request: before the old send is cancelled (or moved), or
    before the new send (``message_id``) is queued."""
    if where in ("before_cancel", "before_move"):
        change = ScheduleDesk.change

        async def crashing_change(self: ScheduleDesk, *args: Any, **kw: Any) -> Any:
            monkeypatch.setattr(ScheduleDesk, "change", change)
            raise CrashError(where)

        monkeypatch.setattr(ScheduleDesk, "change", crashing_change)
        return
    publish = Bus.publish

    async def crashing_publish(self: Bus, message: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(message, SendMessage) and message.message_id == message_id:
            monkeypatch.setattr(Bus, "publish", publish)
            raise CrashError(where)
        return await publish(self, message, *args, **kw)

    monkeypatch.setattr(Bus, "publish", crashing_publish)


async def repaired(env: Env, post_id: str, text: str) -> list[str] | None:
    """Read the post (a read finishes a change a crash left unfinished) until its send has
    put ``text`` in the channel."""
    r = await env.call("GET", f"/v1/calendar/posts/{post_id}")
    assert r.status_code == 200, r.text
    texts = [m["text"] for m in env.channel_posts()]
    return texts if text in texts else None


@pytest.mark.parametrize("where", ["before_cancel", "before_queue"])
async def test_a_content_edit_cut_by_a_crash_is_finished_by_the_next_read(
    env: Env, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    post = await queued_post(env, "old")

    crash_once(monkeypatch, where, f"post-{post['post_id']}-1")
    edit = {"at": ahead(3), "content": {"kind": "text", "text": "new"}}
    r = await env.call("PATCH", f"/v1/calendar/posts/{post['post_id']}", json=edit)
    assert r.status_code == 500  # the request died half-way

    texts = await eventually(
        lambda: repaired(env, post["post_id"], "new"), timeout=60, message="the edit went out"
    )
    assert texts == ["new"]  # the edited post, once; the old content never
    r = await env.call("GET", f"/v1/messages/{post['message_id']}")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["error_code"]) == ("failed", "cancelled")
    r = await env.call("GET", f"/v1/calendar/posts/{post['post_id']}")
    assert r.json()["message_id"] == f"post-{post['post_id']}-1"
    assert r.json()["content"]["text"] == "new"


async def test_a_new_post_cut_by_a_crash_before_its_send_is_queued_still_goes_out(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"destination": DEST, "at": ahead(3), "content": {"kind": "text", "text": "born"}}
    publish = Bus.publish
    created: list[str] = []

    async def crashing_publish(self: Bus, message: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(message, SendMessage) and message.message_id.startswith("post-"):
            monkeypatch.setattr(Bus, "publish", publish)
            created.append(message.message_id)
            raise CrashError("before_queue")
        return await publish(self, message, *args, **kw)

    monkeypatch.setattr(Bus, "publish", crashing_publish)
    r = await env.call("POST", "/v1/calendar/posts", json=body)
    assert r.status_code == 500  # the request died half-way

    async def listed_and_sent() -> list[str] | None:
        r = await env.call("GET", "/v1/calendar")  # the listing repairs too
        assert r.status_code == 200, r.text
        texts = [m["text"] for m in env.channel_posts()]
        return texts if texts else None

    assert await eventually(listed_and_sent, timeout=60, message="the post went out") == ["born"]
    (post,) = (await env.call("GET", "/v1/calendar")).json()["posts"]
    assert post["message_id"] == created[0]


async def test_a_post_retried_under_its_idempotency_key_is_made_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose POST died half-way (500), or whose answer was lost, retries with the
    same ``Idempotency-Key``: one post, published once, and its answer; a repeat after that
    gets the same answer again (``Idempotent-Replayed``); another body under the key is 422
    naming the conflict; another workspace's same key is its own. Before, the key was
    ignored: the retry was refused by the gap check as if its own post were someone else's,
    or (forced) made a second post, published twice."""
    keyed = {**A, "Idempotency-Key": "launch-post"}
    body = {"destination": DEST, "at": ahead(3), "content": {"kind": "text", "text": "launch"}}
    publish = Bus.publish

    async def crashing_publish(self: Bus, message: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(message, SendMessage) and message.message_id.startswith("post-"):
            monkeypatch.setattr(Bus, "publish", publish)
            raise CrashError("before_queue")
        return await publish(self, message, *args, **kw)

    monkeypatch.setattr(Bus, "publish", crashing_publish)
    r = await env.call("POST", "/v1/calendar/posts", auth=keyed, json=body)
    assert r.status_code == 500  # the request died half-way
    r = await env.call("POST", "/v1/calendar/posts", auth=keyed, json=body)
    assert r.status_code == 201, r.text
    post = r.json()
    again = await env.call("POST", "/v1/calendar/posts", auth=keyed, json=body)
    assert (again.status_code, again.json()) == (201, post)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = {**body, "content": {"kind": "text", "text": "another"}}
    r = await env.call("POST", "/v1/calendar/posts", auth=keyed, json=other)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "idempotency_conflict"
    r = await env.call("POST", "/v1/calendar/posts", auth={**B, "Idempotency-Key": "launch-post"},
                       json=body)  # fmt: skip
    assert r.status_code == 404, r.text  # B's own request: B has no account "shop"

    async def sent() -> list[str] | None:
        texts = [m["text"] for m in env.channel_posts()]
        return texts if texts else None

    assert await eventually(sent, timeout=60, message="the post went out") == ["launch"]
    (listed,) = (await env.call("GET", "/v1/calendar")).json()["posts"]
    assert listed["post_id"] == post["post_id"]


async def test_a_move_cut_by_a_crash_is_finished_by_the_next_read(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = await queued_post(env, "soon")

    crash_once(monkeypatch, "before_move", post["message_id"])
    at = ahead(3)
    r = await env.call("PATCH", f"/v1/calendar/posts/{post['post_id']}", json={"at": at})
    assert r.status_code == 500  # the request died after writing the move, before making it

    # The post says the new time: the send goes out then (or, the move finished by a read
    # after that time, as soon as it can), not 10 minutes later.
    texts = await eventually(
        lambda: repaired(env, post["post_id"], "soon"), timeout=60, message="the move was made"
    )
    assert texts == ["soon"]
    sent = [r for r in env.box.recorder.requests(provider="telegram", method="sendMessage") if r.ok]
    assert sent[0].at >= datetime.fromisoformat(at).timestamp()
    r = await env.call("GET", f"/v1/calendar/posts/{post['post_id']}")
    assert r.json()["message_id"] == post["message_id"]  # the same send, moved
    shown_at = datetime.fromisoformat(r.json()["at"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(at) <= shown_at <= datetime.fromtimestamp(sent[0].at, UTC)


async def test_two_moves_of_a_post_at_once_never_leave_it_showing_another_time(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight moves of one post at once on `just up` answered seven 409 "the send cannot be
    changed: it has left" while it still waited, and a move's intent was written over
    another's: the calendar could show one time while the send left at the other. Here a
    second move comes while the first is being carried out: it is told to try again
    (Retry-After), and the post shows the time its send leaves at."""
    r = await env.call(
        "POST", "/v1/calendar/posts",
        json={"destination": DEST, "at": ahead(3600), "content": {"kind": "text", "text": "m"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    post = r.json()
    await eventually(lambda: queued(env, post), message="the post's send is queued")
    first_at, second_at = ahead(3), ahead(8)
    carrying_out, second_answered = asyncio.Event(), asyncio.Event()
    settle = Settler.settle

    async def slow_first(self: Settler, p: Any) -> Any:
        if p.unsettled and p.at == datetime.fromisoformat(first_at):
            carrying_out.set()
            await asyncio.wait_for(second_answered.wait(), 30)
        return await settle(self, p)

    monkeypatch.setattr(Settler, "settle", slow_first)
    path = f"/v1/calendar/posts/{post['post_id']}"
    first = asyncio.create_task(env.call("PATCH", path, json={"at": first_at}))
    await asyncio.wait_for(carrying_out.wait(), 30)
    second = await env.call("PATCH", path, json={"at": second_at})
    second_answered.set()
    r1 = await first
    assert r1.status_code == 200, r1.text
    assert second.status_code == 409, second.text
    assert "has left" not in second.text
    assert second.headers.get("Retry-After") == "1"
    view = (await env.call("GET", path)).json()
    assert view["at"] == r1.json()["at"]

    async def published() -> list[dict[str, Any]]:
        return env.channel_posts()

    (sent,) = await eventually(published, timeout=60)
    assert sent["date"] >= int(datetime.fromisoformat(view["at"]).timestamp())


async def test_a_templated_photo_post_goes_with_its_caption_in_the_template_s_markup(
    env: Env,
) -> None:
    """A template made text posts only: a photo post to a channel could not take one, and
    a raw media post's caption had no markup. The template's text is the photo's caption
    with its parse mode; a caption over Telegram's 1024 shown characters is a 422."""
    body = {"name": "photo_day", "body": "<b>{{ title }}</b> {{ deal }}"}
    r = await env.call("POST", "/v1/templates", json=body)
    assert r.status_code == 201, r.text
    media = {"kind": "photo", "source": {"url": "https://cdn.example.com/sofa.jpg"}}
    use = {"name": "photo_day", "variables": VALUES, "media": media}
    post = {"destination": DEST, "at": ahead(3), "template": use}
    too_long = {**post, "template": {**use, "variables": {**VALUES, "deal": "d" * 1100}}}
    r = await env.call("POST", "/v1/calendar/posts", json=too_long)
    assert (r.status_code, r.json().get("field")) == (422, "content.caption"), r.text
    r = await env.call("POST", "/v1/calendar/posts", json=post)
    assert r.status_code == 201, r.text
    assert r.json()["content"] == {
        "kind": "photo",
        "source": {"url": "https://cdn.example.com/sofa.jpg"},
        "caption": "<b>&lt;Sale&gt;</b> 5 &amp; 6",
        "parse_mode": "HTML",
    }

    async def published() -> list[dict[str, Any]]:
        return env.channel_posts()

    (arrived,) = await eventually(published, timeout=30, message="the photo in the channel")
    assert "photo" in arrived
    assert arrived["caption"] == "<b>&lt;Sale&gt;</b> 5 &amp; 6"  # the fake keeps what was sent
    (sent,) = env.box.recorder.requests(provider="telegram", method="sendPhoto", ok=True)
    assert sent.params["parse_mode"] == "HTML"
