"""Two workspaces on one deployment: B can neither read, nor change, nor use anything of A's.

The route list comes from each service's own OpenAPI document (outbound, crm, analytics,
mtproto, flows), so a new route is walked without anyone listing it; a route that takes a body
fails the suite until it has one here. For every route B's key names A's objects (its
account, campaign, message, contact, lead, conversation, session, flow, run) and the answer
must be
exactly the answer B gets naming objects that exist nowhere (ids replaced): another
workspace's object does not exist for B, with no 409 or count that would leak it. A's
requests to the same routes prove the ids are real. Afterwards A's objects are as they were
and the sandbox received nothing from B, over HTTP or over the bus.

Excluded, as operator-only or provider-facing: ingest (webhooks are authenticated by each
account's own secret, its admin routes by the operator token) and ``/health/*`` (served to
operators; moving it off the API port is part of the API-keys work).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from telethon.crypto import AuthKey
from telethon.sessions import StringSession
from tests.support.conv import publish_all, received
from tests.support.flow_docs import keyword_flow
from tests.support.outbound import register, sandbox_account, text_send
from tests.support.stack import API_KEY, OTHER_KEY, service_env
from tests.support.streams import stream_messages
from tests.support.telegram_sandbox import serve_telegram_sandbox

from switchboard.analytics.app import create_app as analytics_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.app import create_app as crm_app
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import ChangeLeadStage
from switchboard.flows.app import create_app as flows_app
from switchboard.flows.settings import FlowsSettings
from switchboard.mtproto.app import create_app as mtproto_app
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.outbound.app import create_app as outbound_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox


def _session_string() -> str:
    """A StringSession Telethon reads (its key known to no server): an import body."""
    made = StringSession()
    made.set_dc(2, "127.0.0.1", 443)
    made.auth_key = AuthKey(b"k" * 256)
    return str(made.save())


SESSION = _session_string()
pytestmark = pytest.mark.e2e
ADMIN = "tenancy-admin-token-3f1"
TOKEN_A = "300000021:tenancy-a"
TOKEN_B = "300000022:tenancy-b"
A = {"Authorization": f"Bearer {API_KEY}"}  # workspace demo
B = {"Authorization": f"Bearer {OTHER_KEY}"}  # workspace other
SECRET_TEXT = "only-for-workspace-a-4711"
# Fixed windows: answers are compared byte for byte, so nothing may depend on "now".
WINDOW = {"from": "2026-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z"}
EXCLUDED_PREFIXES = ("/health/",)
# Ids are per workspace, and a campaign's batches may come before its start: B adding a
# batch under A's campaign id adds it to B's own (pending) campaign of that id, as for any id.
APPENDS = {("outbound", "POST", "/v1/campaigns/{campaign_id}/recipients")}
# Routes that name nothing and make something of B's own (a new flow under a fresh id, a
# validation): 2xx for B, with B's own new id in the answer, so only the status is compared.
# Walked last, so that B's listings before them are compared with a ghost's.
OWN = {
    ("flows", "POST", "/v1/flows"),
    ("flows", "POST", "/v1/flows/validate"),
    ("outbound", "POST", "/v1/templates"),  # template names are per workspace
}
# A flow of A's (a long delay keeps its run waiting): B may neither read, revise, publish,
# archive, dry-run it, nor see or release its runs.
FLOW = keyword_flow(
    "Tenancy A",
    "tenancy-start",
    wait={"type": "delay", "seconds": 86400, "next": "bye"},
    bye={"type": "end", "text": "a day later"},
)
# MTProto session ids are per workspace: a route that creates a session under the id the
# caller chooses gives B its own session under A's id, exactly as under a free id (answers
# compared by status: each is B's new session). Walked last: B's own session under an id
# answers B's later requests naming it.
CLAIMS = {
    ("mtproto", "PUT", "/v1/sessions/{session_id}"),
    ("mtproto", "POST", "/v1/sessions/{session_id}/login"),
}
MT_PHONE = "+15553010001"  # A's Telegram user in the sandbox's MTProto fake
MT_API_ID = 12345
MT_API_HASH = "0123456789abcdef0123456789abcdef"


@dataclass
class Ids:
    """The objects a request names, by kind: A's (real) or ghosts (existing nowhere)."""

    account: str
    campaign: str
    message: str
    contact: str
    contact2: str
    lead: str
    conversation: str
    session: str
    flow: str
    run: str
    template: str
    post: str

    def path_params(self) -> dict[str, str]:
        return {
            "campaign_id": self.campaign,
            "message_id": self.message,
            "contact_id": self.contact,
            "lead_id": self.lead,
            "conversation_id": self.conversation,
            "session_id": self.session,
            "job_id": f"{self.session}-job",
            "ref": f"@{self.session}",
            "flow_id": self.flow,
            "revision": "1",
            "run_id": self.run,
            "name": self.template,
            "post_id": self.post,
            "query_id": "mtquery:tenancy",
        }

    def query(self) -> dict[str, str]:
        """Filters naming the objects (sent only where a route declares them)."""
        return {
            **WINDOW,
            "account": self.account,
            "campaign": self.campaign,
            "contact_id": self.contact,
            "channel": "telegram",
            "text": SECRET_TEXT,
            "flow_id": self.flow,
            "q": "ann",
        }

    def words(self) -> list[str]:
        return [
            self.account, self.campaign, self.message, self.contact, self.contact2,
            self.lead, self.conversation, self.session, self.flow, self.run, self.template,
            self.post,
        ]  # fmt: skip


def _content(text: str) -> dict[str, Any]:
    return {"kind": "text", "text": text}


# (service, method, path) -> the body B sends; every route with a body needs one.
BODIES: dict[tuple[str, str, str], Callable[[Ids], dict[str, Any]]] = {
    ("outbound", "POST", "/v1/uploads"): lambda i: {},  # not multipart: 422 for anyone
    ("outbound", "POST", "/v1/messages"): lambda i: {
        "message_id": "b-msg-1", "channel": "telegram", "account": i.account,
        "recipient": "5001", "content": _content("from b"),
    },
    ("outbound", "POST", "/v1/messages/{message_id}/reschedule"): lambda i: {
        "not_before": "2099-01-02T00:00:00Z",
    },
    ("outbound", "POST", "/v1/messages/{message_id}/edit"): lambda i: {"text": "from b"},
    ("outbound", "POST", "/v1/messages/{message_id}/delete"): lambda i: {},
    ("outbound", "POST", "/v1/callbacks/answer"): lambda i: {
        "request_id": "b-answer-1", "channel": "telegram", "account": i.account,
        "callback_query_id": "1234567890", "text": "from b",
    },
    ("outbound", "POST", "/v1/campaigns"): lambda i: {
        "campaign_id": i.campaign, "channel": "telegram", "accounts": [i.account],
        "recipients": ["5001"], "content": _content("from b"),
    },
    ("crm", "POST", "/v1/campaigns"): lambda i: {
        "campaign_id": i.campaign, "segment": {"channel": "telegram", "account": i.account},
        "content": _content("from b"),
    },
    ("outbound", "POST", "/v1/campaigns/{campaign_id}/recipients"): lambda i: {
        "batch": 1, "recipients": [{"recipient": "5002", "account": "acct-b"}], "final": True,
    },
    ("crm", "POST", "/v1/contacts/{contact_id}"): lambda i: {
        "display_name": "Mallory", "note": "b",
    },
    ("crm", "POST", "/v1/contacts/{contact_id}/merge"): lambda i: {"merged_contact_id": i.contact2},
    ("crm", "POST", "/v1/contacts/{contact_id}/split"): lambda i: {
        "channel": "telegram", "external_id": "5001",
    },
    ("crm", "POST", "/v1/leads/{lead_id}/stage"): lambda i: {"to_stage": "won"},
    ("crm", "POST", "/v1/leads/{lead_id}/assign"): lambda i: {"assignee": "mallory"},
    ("mtproto", "POST", "/v1/sessions/{session_id}/login"): lambda i: {"phone": "+15550001111"},
    ("mtproto", "POST", "/v1/sessions/{session_id}/login/code"): lambda i: {"code": "12345"},
    ("mtproto", "POST", "/v1/sessions/{session_id}/login/password"): lambda i: {"password": "pw"},
    ("mtproto", "PUT", "/v1/sessions/{session_id}"): lambda i: {
        "session": SESSION, "api_id": 1, "api_hash": "a" * 32,
    },
    ("mtproto", "POST", "/v1/sessions/{session_id}/subscriptions"): lambda i: {"peer": "@channel"},
    ("mtproto", "POST", "/v1/sessions/{session_id}/backfills"): lambda i: {"peer": "@channel"},
    ("mtproto", "POST", "/v1/sessions/{session_id}/messages"): lambda i: {
        "message_id": "b-mt-1", "peer": "@someone", "text": "from b",
    },
    ("flows", "POST", "/v1/flows"): lambda i: {**FLOW, "name": "B's own"},
    ("flows", "POST", "/v1/flows/validate"): lambda i: FLOW,
    ("flows", "PUT", "/v1/flows/{flow_id}"): lambda i: {**FLOW, "name": "Mallory's"},
    ("flows", "POST", "/v1/flows/{flow_id}/publish"): lambda i: {"revision": 1},
    ("flows", "POST", "/v1/flows/{flow_id}/dry-run"): lambda i: {"start_text": "tenancy-start"},
    ("outbound", "POST", "/v1/templates"): lambda i: {"name": i.template, "body": "from b"},
    ("outbound", "PUT", "/v1/templates/{name}"): lambda i: {"body": "from b {{ x }}"},
    ("outbound", "POST", "/v1/calendar/posts"): lambda i: {
        "destination": {"channel": "telegram", "account": i.account, "chat": "5001"},
        "at": "2099-01-02T00:00:00Z", "content": _content("from b"), "force": True,
    },
    ("outbound", "PATCH", "/v1/calendar/posts/{post_id}"): lambda i: {
        "at": "2099-01-03T00:00:00Z", "content": _content("from b"), "force": True,
    },
}  # fmt: skip


@dataclass
class Route:
    service: str
    method: str
    path: str
    params: dict[str, str]  # name -> in
    has_body: bool

    def url(self, base: str, ids: Ids) -> str:
        values = ids.path_params()
        return base + re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], self.path)

    def query(self, ids: Ids) -> dict[str, str]:
        wanted = {n for n, where in self.params.items() if where == "query"}
        return {k: v for k, v in ids.query().items() if k in wanted}

    def body(self, ids: Ids) -> dict[str, Any] | None:
        if not self.has_body:
            return None
        make = BODIES.get((self.service, self.method, self.path))
        assert make is not None, f"add a body for {self.service} {self.method} {self.path}"
        return make(ids)

    @property
    def names_objects(self) -> bool:
        return "{" in self.path


def routes(service: str, doc: dict[str, Any]) -> list[Route]:
    found = []
    for path, ops in doc["paths"].items():
        if path.startswith(EXCLUDED_PREFIXES):
            continue
        for method, op in ops.items():
            params = {p["name"]: p["in"] for p in op.get("parameters", [])}
            found.append(Route(service, method.upper(), path, params, "requestBody" in op))
    return found


@dataclass
class Env:
    box: Sandbox
    urls: dict[str, str]
    http: httpx.AsyncClient
    bus: Bus
    nats_url: str
    a: Ids = field(init=False)
    a_key: str = field(init=False)  # the fake's auth key of A's MTProto session

    def used(self) -> list[str]:
        """The MTProto calls made with A's session that act for its user (sends, reads of
        peers, joins, logouts), as method:params; the updates loop of a live session is not."""
        acting = ("messages.", "channels.", "contacts.", "auth.")
        requests = self.box.recorder.requests(provider="mtproto", account=self.a_key)
        return [f"{r.method}:{r.params}" for r in requests if (r.method or "").startswith(acting)]

    def sent(self) -> list[str]:
        requests = self.box.recorder.requests(provider="telegram", method="sendMessage")
        return [f"{r.path}:{r.params.get('text')}" for r in requests if r.ok]

    async def call(self, route: Route, ids: Ids, auth: dict[str, str]) -> httpx.Response:
        return await self.http.request(
            route.method,
            route.url(self.urls[route.service], ids),
            params=route.query(ids),
            json=route.body(ids),
            headers=auth,
        )


GHOST = Ids(
    account="acct-ghost-9x",
    campaign="camp-ghost-9x",
    message="msg-ghost-9x",
    contact="ct_ghost9x",
    contact2="ct_ghost9y",
    lead="ld_ghost9x",
    conversation="cv_ghost9x",
    session="sess-ghost-9x",
    flow="fl_ghost9x",
    run="run_ghost9x",
    template="tpl-ghost-9x",
    post="post-ghost-9x",
)


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    bots = (TOKEN_A, "a_bot"), (TOKEN_B, "b_bot")
    async with serve_telegram_sandbox(*bots) as (box, sandbox, stack):
        for key, value in service_env(
            nats_url,
            postgres_url,
            SWITCHBOARD_ADMIN_TOKEN=ADMIN,
            SWITCHBOARD_MTPROTO_ADAPTER="sandbox",
            SWITCHBOARD_SANDBOX_URL=sandbox,
        ).items():
            monkeypatch.setenv(key, value)
        bus = await Bus.connect(nats_url, name="tenancy")
        stack.push_async_callback(bus.close)
        await register(
            bus,
            sandbox_account(sandbox, Channel.TELEGRAM, "acct-a-7f3", {"token": TOKEN_A}),
            sandbox_account(sandbox, Channel.TELEGRAM, "acct-b", {"token": TOKEN_B}, "other"),
        )
        apps = {
            "outbound": outbound_app(load_settings(OutboundSettings)),
            "crm": crm_app(load_settings(CrmSettings)),
            "analytics": analytics_app(load_settings(AnalyticsSettings)),
            "mtproto": mtproto_app(load_settings(MtprotoSettings)),
            "flows": flows_app(load_settings(FlowsSettings)),
        }
        urls = {name: await stack.enter_async_context(serve_app(app)) for name, app in apps.items()}
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        env = Env(box, urls, http, bus, nats_url)
        env.a = await _workspace_a(env)
        yield env


async def _mtproto_session_a(env: Env, session_id: str) -> None:
    """A's Telegram user with a pre-authorized session, imported with A's key; returns once
    the gateway holds it, connected (so it could send, were anyone let through)."""
    _, keys = env.box.mtproto.add_user(MT_PHONE, first_name="Ann", username="ann_a", sessions=1)
    env.a_key = keys[0].key_id
    r = await env.http.put(
        f"{env.urls['mtproto']}/v1/sessions/{session_id}",
        headers=A,
        json={"session": keys[0].session, "api_id": MT_API_ID, "api_hash": MT_API_HASH},
    )
    assert r.status_code == 201, r.text
    assert r.json()["workspace_id"] == "demo"

    async def connected() -> bool:
        shown = await env.http.get(f"{env.urls['mtproto']}/v1/sessions/{session_id}", headers=A)
        live = env.box.mtproto.connection_log(key_id=env.a_key)["active"]
        return bool(live) and shown.json()["holder"] is not None

    await eventually(connected, timeout=30)


async def _workspace_a(env: Env) -> Ids:
    """A's objects: two customers who wrote, their contacts, leads and conversations, a
    message A sent, a campaign A scheduled (it waits, so it could still be changed) and a
    live MTProto session (a Telegram user account A connected)."""
    account = "acct-a-7f3"
    await publish_all(
        env.nats_url,
        [
            received(Channel.TELEGRAM, account, "5001", f"hello {SECRET_TEXT}", 1),
            received(Channel.TELEGRAM, account, "5002", "another customer", 2, name="Bo"),
        ],
        workspace="demo",
    )

    async def crm_items(path: str) -> list[dict[str, Any]] | None:
        r = await env.http.get(f"{env.urls['crm']}{path}", headers=A)
        items: list[dict[str, Any]] = r.json()["items"]
        return items if len(items) == 2 else None

    contacts = await eventually(lambda: crm_items("/v1/contacts"), timeout=30)
    leads = await eventually(lambda: crm_items("/v1/leads"), timeout=30)
    conversations = await eventually(lambda: crm_items("/v1/conversations"), timeout=30)
    sent = await env.http.post(
        f"{env.urls['outbound']}/v1/messages",
        headers=A,
        json={
            "message_id": "a-msg-1",
            "channel": "telegram",
            "account": account,
            "recipient": "5001",
            "content": _content("a's answer"),
        },
    )
    assert sent.status_code == 202, sent.text
    campaign = await env.http.post(
        f"{env.urls['outbound']}/v1/campaigns",
        headers=A,
        json={
            "campaign_id": "a-camp-1",
            "channel": "telegram",
            "accounts": [account],
            "recipients": ["5001", "5002"],
            "content": _content("a's offer"),
            "not_before": "2099-01-01T00:00:00Z",
        },
    )
    assert campaign.status_code == 202, campaign.text

    async def ready() -> bool:
        message = await env.http.get(f"{env.urls['outbound']}/v1/messages/a-msg-1", headers=A)
        camp = await env.http.get(f"{env.urls['outbound']}/v1/campaigns/a-camp-1", headers=A)
        return (
            message.status_code == 200
            and message.json()["status"] == "sent"
            and (camp.status_code == 200 and camp.json()["status"] == "running")
        )

    await eventually(ready, timeout=30)
    await _mtproto_session_a(env, "sess-a-1")
    flow, run = await _flow_a(env, account)
    template, post = await _calendar_a(env, account)
    first = next(c for c in contacts if c["display_name"] == "Ada")
    return Ids(
        account=account,
        campaign="a-camp-1",
        message="a-msg-1",
        contact=first["id"],
        contact2=next(c["id"] for c in contacts if c["id"] != first["id"]),
        lead=next(lead["id"] for lead in leads if lead["contact_id"] == first["id"]),
        conversation=next(c["id"] for c in conversations if c["contact_id"] == first["id"]),
        session="sess-a-1",
        flow=flow,
        run=run,
        template=template,
        post=post,
    )


async def _calendar_a(env: Env, account: str) -> tuple[str, str]:
    """A's post template and a post of A's scheduled far ahead (so it could still change)."""
    outbound = env.urls["outbound"]
    body = {"name": "a-tpl-1", "body": "a's {{ x }}"}
    r = await env.http.post(f"{outbound}/v1/templates", json=body, headers=A)
    assert r.status_code == 201, r.text
    post = {
        "destination": {"channel": "telegram", "account": account, "chat": "5001"},
        "at": "2099-01-01T12:00:00Z",
        "template": {"name": "a-tpl-1", "variables": {"x": "post"}},
    }
    r = await env.http.post(f"{outbound}/v1/calendar/posts", json=post, headers=A)
    assert r.status_code == 201, r.text
    return "a-tpl-1", str(r.json()["post_id"])


async def _flow_a(env: Env, account: str) -> tuple[str, str]:
    """A's published flow and a run of it (waiting on its delay), started by a customer."""
    flows = env.urls["flows"]
    r = await env.http.post(f"{flows}/v1/flows", json=FLOW, headers=A)
    assert r.status_code == 201, r.text
    flow_id: str = r.json()["id"]
    r = await env.http.post(f"{flows}/v1/flows/{flow_id}/publish", headers=A)
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)  # the delay counts from the message: a day from now
    start = received(Channel.TELEGRAM, account, "5003", "tenancy-start", 3, name="Cy")
    start = start.model_copy(update={"sent_at": now, "received_at": now})
    await publish_all(env.nats_url, [start], workspace="demo")

    async def run() -> str | None:
        r = await env.http.get(f"{flows}/v1/runs", params={"flow_id": flow_id}, headers=A)
        items = r.json()["items"]
        return str(items[0]["id"]) if items else None

    return flow_id, await eventually(run, timeout=30, message="A's run started")


def _normalized(text: str, ids: Ids) -> str:
    for word in sorted(ids.words(), key=len, reverse=True):
        text = text.replace(word, "<id>")
    return text


async def _snapshot(env: Env) -> dict[str, Any]:
    """What A can see of its objects (compared before and after B's requests)."""
    a, urls = env.a, env.urls
    paths = [
        f"{urls['crm']}/v1/contacts/{a.contact}",
        f"{urls['crm']}/v1/contacts/{a.contact2}",
        f"{urls['crm']}/v1/leads/{a.lead}",
        f"{urls['crm']}/v1/conversations/{a.conversation}/messages",
        f"{urls['outbound']}/v1/messages/{a.message}",
        f"{urls['outbound']}/v1/campaigns/{a.campaign}",
        f"{urls['mtproto']}/v1/sessions/{a.session}",
        f"{urls['flows']}/v1/flows/{a.flow}",
        f"{urls['flows']}/v1/runs/{a.run}",
        f"{urls['outbound']}/v1/templates/{a.template}",
        f"{urls['outbound']}/v1/calendar/posts/{a.post}",
    ]
    out: dict[str, Any] = {}
    for path in paths:
        r = await env.http.get(path, headers=A)
        assert r.status_code == 200, (path, r.text)
        out[path] = r.json()
    return out


async def test_b_can_neither_read_nor_change_nor_use_anything_of_a(env: Env) -> None:
    walked: list[str] = []
    before, sent_before, used_before = await _snapshot(env), env.sent(), env.used()
    every: list[Route] = []
    for service, base in env.urls.items():
        every += routes(service, (await env.http.get(f"{base}/openapi.json")).json())
    # Appending routes last: what they create for B must not answer B's other requests.
    every.sort(key=lambda r: (r.service, r.method, r.path) in APPENDS | OWN | CLAIMS)
    for route in every:
        service = route.service
        name = f"{service} {route.method} {route.path}"
        theirs = await env.call(route, env.a, B)
        assert SECRET_TEXT not in theirs.text, name
        walked.append(name)
        ghost = await env.call(route, GHOST, B)
        assert theirs.status_code == ghost.status_code, (name, theirs.text, ghost.text)
        if (service, route.method, route.path) in OWN:
            assert theirs.status_code < 300, (name, theirs.text)  # B's own, nothing of A's
            continue
        if (
            service,
            route.method,
            route.path,
        ) in CLAIMS:  # B's own under A's id, as under a free one
            assert _normalized(theirs.text, env.a) == _normalized(ghost.text, GHOST), name
            continue
        assert _normalized(theirs.text, env.a) == _normalized(ghost.text, GHOST), name
        appends = (service, route.method, route.path) in APPENDS
        if (route.names_objects or route.has_body) and not appends:
            assert theirs.status_code >= 400, (name, theirs.text)
        # (A's message is a text: it has attachments to list, but no file to download)
        no_file = route.path.endswith("/media")
        if route.names_objects and route.method == "GET" and "{job_id}" not in route.path:
            mine = await env.call(route, env.a, A)  # the ids are real: A sees them
            # (A's query id was never asked: its answer is still pending for A)
            ok = 202 if "{query_id}" in route.path else 200
            assert mine.status_code == (404 if no_file else ok), (name, mine.text)
            assert not no_file or mine.json()["code"] == "no_attachment", mine.text
    # every service took part, and the routes that name objects were all walked
    assert {w.split()[0] for w in walked} == {"outbound", "crm", "analytics", "mtproto", "flows"}
    assert len(walked) >= 40, walked
    assert {(r.service, r.method, r.path) for r in every} >= CLAIMS
    assert await _snapshot(env) == before  # nothing of A's changed
    assert env.sent() == sent_before  # and nothing was sent through A's account
    assert env.used() == used_before  # nor through A's MTProto session
    # B imported a session of its own under A's id, as under a free one: B sees its own under
    # that id, A still its own, and nothing of B's answers names anything else.
    for session in (env.a.session, GHOST.session):
        mine = await env.http.get(f"{env.urls['mtproto']}/v1/sessions/{session}", headers=B)
        assert mine.status_code == 200, mine.text
        assert (mine.json()["session_id"], mine.json()["workspace_id"]) == (session, "other")
    listed = await env.http.get(f"{env.urls['mtproto']}/v1/sessions", headers=B)
    ids = sorted(s["session_id"] for s in listed.json()["items"])
    assert ids == sorted([env.a.session, GHOST.session]), listed.text
    assert await _snapshot(env) == before


async def test_a_send_through_another_workspaces_account_is_refused_and_nothing_is_sent(
    env: Env,
) -> None:
    sent_before = env.sent()
    body = {
        "message_id": "b-msg-2",
        "channel": "telegram",
        "account": env.a.account,
        "recipient": "5001",
        "content": _content("through a's bot"),
    }
    r = await env.http.post(f"{env.urls['outbound']}/v1/messages", headers=B, json=body)
    assert r.status_code == 404, r.text
    # over the bus: a foreign account is an unknown one, delivery.failed, nothing sent
    cmd = text_send("b-bus-1", "5001", "through a's bot over the bus", account=env.a.account)
    await env.bus.publish(cmd, workspace_id="other")
    # and a CRM command from B naming A's lead is rejected with the reason
    await env.bus.publish(ChangeLeadStage(lead_id=env.a.lead, to_stage="won"), workspace_id="other")

    async def outcomes() -> dict[str, Any] | None:
        delivery = await stream_messages(env.nats_url, "DELIVERY")
        crm = await stream_messages(env.nats_url, "CRM")
        failed = [d for d in delivery if d.model.name == "delivery.failed"]
        rejected = [d for d in crm if d.model.name == "crm.command_rejected"]
        return {"failed": failed, "rejected": rejected} if failed and rejected else None

    found = await eventually(outcomes, timeout=30)
    failed = found["failed"][0]
    assert failed.envelope.workspace_id == "other"
    assert failed.model.message_id == "b-bus-1"
    assert failed.model.error_code == "unknown_account"
    assert found["rejected"][0].model.status == 404
    mine = await env.http.get(f"{env.urls['outbound']}/v1/messages/b-bus-1", headers=B)
    assert mine.json()["status"] == "failed"
    assert env.sent() == sent_before
    lead = await env.http.get(f"{env.urls['crm']}/v1/leads/{env.a.lead}", headers=A)
    assert lead.json()["stage"] == "new"


async def test_a_batch_before_its_start_cannot_pin_another_workspace_s_account(
    env: Env,
) -> None:
    """A campaign's batch may come before its start, when the channel is not known yet:
    its pinned accounts were not checked at all, and a batch naming A's bot was a 202 (the
    sender refused each recipient later). Now an account no channel of B's has is a 404."""
    url = f"{env.urls['outbound']}/v1/campaigns/b-early/recipients"
    theirs = {"batch": 1, "recipients": [{"recipient": "5003", "account": env.a.account}]}
    r = await env.http.post(url, json=theirs, headers=B)
    assert r.status_code == 404, r.text
    assert env.a.account in r.json()["detail"]
    own = {"batch": 1, "recipients": [{"recipient": "5003", "account": "acct-b"}]}
    r = await env.http.post(url, json=own, headers=B)
    assert r.status_code == 202, r.text


async def test_a_flow_cannot_be_scoped_to_another_workspace_s_account(env: Env) -> None:
    """A flow's ``channels`` naming A's bot was saved and published for B, silently never
    running: now it is a 422 naming the field, the same as for an account that does not
    exist, on save, revision and validate; B's own account is taken."""
    flows = env.urls["flows"]

    def scoped(account: str) -> dict[str, Any]:
        return {**FLOW, "name": "scoped", "channels": [{"channel": "telegram", "account": account}]}

    answers = []
    for account in (env.a.account, GHOST.account):
        for path in ("/v1/flows", "/v1/flows/validate"):
            r = await env.http.post(f"{flows}{path}", json=scoped(account), headers=B)
            assert r.status_code == 422, r.text
            assert [e["path"] for e in r.json()["errors"]] == ["body.channels[0].account"]
            answers.append(r.json()["detail"].replace(account, "<account>"))
    assert len(set(answers)) == 1, answers  # A's account answers as a missing one
    r = await env.http.post(f"{flows}/v1/flows", json=scoped("acct-b"), headers=B)
    assert r.status_code == 201, r.text
    r = await env.http.put(
        f"{flows}/v1/flows/{r.json()['id']}", json=scoped(env.a.account), headers=B
    )
    assert r.status_code == 422, r.text


async def test_a_campaign_id_of_another_workspace_is_a_new_campaign(env: Env) -> None:
    # B starts a campaign under A's campaign id, through its own account: a campaign of its
    # own (no 409 telling the id exists), and A's campaign is untouched.
    before = await _snapshot(env)
    r = await env.http.post(
        f"{env.urls['outbound']}/v1/campaigns",
        headers=B,
        json={
            "campaign_id": env.a.campaign,
            "channel": "telegram",
            "accounts": ["acct-b"],
            "recipients": ["6001"],
            "content": _content("b's own offer"),
        },
    )
    assert r.status_code == 202, r.text

    async def completed() -> dict[str, Any] | None:
        mine = await env.http.get(
            f"{env.urls['outbound']}/v1/campaigns/{env.a.campaign}", headers=B
        )
        body: dict[str, Any] = mine.json()
        return body if body.get("status") == "completed" else None

    done = await eventually(completed, timeout=60)
    assert (done["total"], done["sent"], done["accounts"]) == (1, 1, ["acct-b"])
    assert await _snapshot(env) == before
    assert [s for s in env.sent() if TOKEN_B in s] == [
        f"/telegram/bot{TOKEN_B}/sendMessage:b's own offer"
    ]
