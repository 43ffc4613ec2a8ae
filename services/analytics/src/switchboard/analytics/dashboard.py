"""The built-in dashboard at ``/``: one server-rendered page of inline SVG charts over the
same queries as the API (no JavaScript, no build step, nothing fetched from elsewhere).

Browsers sign in with the workspace's API key to a server-side session (see
:mod:`switchboard.analytics.signin`: the cookie holds a random id, never the key); scripts
may send the usual ``Authorization: Bearer`` header instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from switchboard.analytics import queries
from switchboard.analytics.charts import Series, bar_chart, hbar_chart, line_chart
from switchboard.analytics.params import (
    FILTERS,
    BadParameterError,
    Filters,
    Window,
    parse_filters,
    parse_window,
)
from switchboard.analytics.signin import SignIn, SignInStore, retry_after
from switchboard.runtime.auth import ApiKeyAuth, AuthError, ScopeError
from switchboard.runtime.db import Conn
from switchboard.runtime.keys import PREFIX as KEY_PREFIX
from switchboard.runtime.keys import KeyCache, Principal, Scope

COOKIE = "switchboard_analytics_session"
CSRF_COOKIE = "switchboard_analytics_csrf"
_env = Environment(
    loader=PackageLoader("switchboard.analytics", "templates"),
    autoescape=select_autoescape(["html", "jinja"]),
)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass
class Gate:
    """What signing in needs: the keys, the sign-in store (once started) and the limits."""

    auth: ApiKeyAuth
    keys: Callable[[], KeyCache | None]
    sessions: Callable[[], SignInStore]
    per_ip: int
    per_key: int
    window: timedelta


@dataclass(frozen=True)
class Viewer:
    workspace: str
    signin: SignIn | None  # None: a script with a bearer key


async def viewer(request: Request, gate: Gate) -> Viewer | None:
    """Who looks: a bearer key with the read scope, or a live sign-in; None otherwise."""
    if request.headers.get("authorization"):
        try:
            return Viewer(gate.auth.workspace(request, Scope.READ), None)
        except (AuthError, ScopeError):
            return None
    signin = await gate.sessions().get(request.cookies.get(COOKIE, ""))
    if signin is None:
        return None
    cache = gate.keys()
    if signin.key_id is not None and (cache is None or not cache.usable(signin.key_id)):
        # The key it signed in with was revoked or expired: so is the sign-in.
        await gate.sessions().end(request.cookies.get(COOKIE, ""))
        return None
    return Viewer(signin.workspace_id, signin)


def login_page(
    request: Request, message: str | None = None, status: int = 401, **headers: str
) -> HTMLResponse:
    """The sign-in form with its CSRF token (double submit: the form field must equal the
    cookie, which a page of another site can neither read nor set)."""
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    body = _env.get_template("login.html.jinja").render(message=message, csrf=token)
    response = HTMLResponse(body, status, headers=headers or None)
    _cookie(response, request, CSRF_COOKIE, token)
    return response


async def login(request: Request, gate: Gate) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    given = (form.get("csrf") or [""])[0]
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return login_page(request, "The form expired; please sign in again.", 403)
    store = gate.sessions()
    client = request.client.host if request.client else "unknown"
    key = (form.get("key") or [""])[0].strip()
    for kind, value, limit in (("ip", client, gate.per_ip), ("key", key, gate.per_key)):
        if await store.count_attempt(kind, value, gate.window) > limit:
            wait = str(retry_after(store.now(), gate.window))  # the counters' clock
            return login_page(request, "Too many sign-in attempts; try again later.", 429,
                              **{"Retry-After": wait})  # fmt: skip
    principal = await _principal(key, gate)
    if principal is None:
        return login_page(request, "That key is not valid for any workspace.")
    if Scope.READ not in principal.scopes:
        return login_page(request, "That key may not read this workspace's analytics.", 403)
    session_id, _ = await store.create(principal.workspace, principal.key_id)
    response = RedirectResponse("/", status_code=303)
    _cookie(response, request, COOKIE, session_id)
    return response


async def logout(request: Request, gate: Gate) -> Response:
    """End the sign-in everywhere (the session is deleted, not only the cookie)."""
    session_id = request.cookies.get(COOKIE, "")
    signin = await gate.sessions().get(session_id)
    if signin is not None:
        form = parse_qs((await request.body()).decode(errors="replace"))
        given = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(given.encode(), signin.csrf.encode()):
            return HTMLResponse("The sign-out form expired; reload the page.", 403)
        await gate.sessions().end(session_id)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    return response


async def _principal(key: str, gate: Gate) -> Principal | None:
    if not key:
        return None
    cache = gate.keys()
    if cache is not None and key.startswith(KEY_PREFIX):
        return await cache.authenticate(key)
    return gate.auth.config_principal(key)


def _cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        # Behind a TLS-terminating ingress the pod sees plain http, so the cookie is Secure
        # everywhere except on a loopback host (a developer's browser on http://127.0.0.1).
        secure=request.url.hostname not in LOOPBACK,
        path="/",
    )


def _labels(window: Window, points: Sequence[Mapping[str, Any]]) -> list[str]:
    fmt = "%m-%d" if window.bucket == "day" else "%m-%d %H:00"
    return [
        datetime.fromisoformat(p["bucket"].replace("Z", "+00:00")).strftime(fmt) for p in points
    ]


def _only(f: Filters, *names: str) -> Filters:
    given = f.given()
    return Filters(**{k: v for k, v in given.items() if k in names})


async def render(
    conn: Conn, ws: str, query: Mapping[str, str], stages: Sequence[str], csrf: str = ""
) -> HTMLResponse:
    try:
        window = parse_window(query.get("from"), query.get("to"), query.get("bucket"), _now())
        f = parse_filters(query, FILTERS)
    except BadParameterError as exc:
        body = _env.get_template("error.html.jinja").render(message=exc.message)
        return HTMLResponse(body, 400)
    msgs = await queries.messages(conn, ws, window, _only(f, "channel", "account"))
    dels = await queries.deliveries(conn, ws, window, _only(f, "provider", "account", "campaign"))
    lat = await queries.latency(conn, ws, window, _only(f, "channel", "account"))
    frt = await queries.first_response(conn, ws, window, _only(f, "channel", "account"))
    fun = await queries.funnel(conn, ws, window, _only(f, "source", "campaign"), stages)
    camp = await queries.campaigns(conn, ws, window, _only(f, "campaign", "provider", "account"))
    mt = await queries.mtproto(conn, ws, window, _only(f, "account"))
    flows = await queries.flow_funnel(conn, ws, window, None)
    conv = await queries.conversions(conn, ws, window, 20)
    labels = _labels(window, msgs["series"])
    charts = {
        "messages": bar_chart(
            labels,
            [
                Series("inbound", [p["inbound"] for p in msgs["series"]]),
                Series("outbound", [p["outbound"] for p in msgs["series"]]),
            ],
            stacked=True,
        ),
        "deliveries": bar_chart(
            [f"{r['provider']}/{r['account']}" for r in dels["by_provider"]],
            [
                Series(o, [r[o] for r in dels["by_provider"]])
                for o in ("sent", "delivered", "read", "failed", "undelivered")
            ],
        ),
        "failures": hbar_chart(
            [
                (r["reason"], r["count"], f"{r['outcome']} on {r['provider']}")
                for r in dels["failure_reasons"][:10]
            ]
        ),
        "send_latency": _latency_bars(lat["send"]["by_channel"]),
        "e2e_latency": _latency_bars(lat["end_to_end"]["by_channel"]),
        "first_response": line_chart(
            labels,
            [
                Series("p50", [_sec(p["p50_ms"]) for p in frt["series"]]),
                Series("p95", [_sec(p["p95_ms"]) for p in frt["series"]]),
            ],
            unit="s",
        ),
        "funnel": hbar_chart(
            [
                (s["stage"], s["reached"], f"{s['rate'] * 100:.0f}%" if s["rate"] else "")
                for s in fun["stages"]
            ]
        ),
        "conversion_rate": line_chart(
            labels,
            [
                Series(
                    stage,
                    [
                        _pct(next(x for x in p["stages"] if x["stage"] == stage))
                        for p in fun["series"]
                    ],
                )
                for stage in [s["stage"] for s in fun["stages"]][1:4]
            ],
            unit="%",
            top=100.0,
        ),
        "campaigns": bar_chart(
            [c["campaign_id"] for c in camp["items"]],
            [
                Series(o, [c[o] for c in camp["items"]])
                for o in ("sent", "delivered", "read", "failed")
            ],
        ),
        "mtproto": hbar_chart(
            [(e["name"].split(".", 1)[-1], e["count"], "") for e in mt["events"]]
        ),
        # The busiest flow's steps: how many runs reached each (the table has every flow).
        "flow_funnel": hbar_chart(
            [
                (s["step"], s["reached"], f"{(s['reach_rate'] or 0) * 100:.0f}%")
                for s in (
                    max(flows["flows"], key=lambda x: x["runs_started"])["steps"]
                    if flows["flows"]
                    else []
                )
            ]
        ),
    }
    page = _env.get_template("dashboard.html.jinja").render(
        workspace=ws,
        window=window,
        filters=f.given(),
        filter_names=FILTERS,
        charts=charts,
        messages=msgs,
        deliveries=dels,
        latency=lat,
        first_response=frt,
        funnel=fun,
        campaigns=camp,
        mtproto=mt,
        flow_funnel=flows,
        conversions=conv,
        ranges=_ranges(query),
        csrf=csrf,
    )
    return HTMLResponse(page)


def _latency_bars(rows: Sequence[Mapping[str, Any]]) -> Any:
    """p50/p95/p99 per channel, in the unit that suits the largest value."""
    top = max((r["p99_ms"] or 0 for r in rows), default=0)
    scale, unit = (60_000, "min") if top >= 600_000 else (1000, "s") if top >= 10_000 else (1, "ms")
    return bar_chart(
        [r["channel"] for r in rows],
        [
            Series(q, [None if r[f"{q}_ms"] is None else r[f"{q}_ms"] / scale for r in rows])
            for q in ("p50", "p95", "p99")
        ],
        unit=unit,
    )


def _sec(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 1)


def _pct(row: Mapping[str, Any]) -> float | None:
    return None if row["rate"] is None else round(row["rate"] * 100, 1)


def _ranges(query: Mapping[str, str]) -> list[tuple[str, str]]:
    """Links for common ranges, keeping the filters."""
    keep = {k: v for k, v in query.items() if k in FILTERS}
    return [
        (name, "/?" + urlencode({**keep, **params}))
        for name, params in (
            ("last 24 hours", {"bucket": "hour", "from": _ago(1)}),
            ("last 7 days", {"bucket": "hour"}),
            ("last 30 days", {"bucket": "day", "from": _ago(30)}),
        )
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def _ago(days: int) -> str:
    from datetime import timedelta

    return (_now() - timedelta(days=days)).replace(microsecond=0).isoformat()
