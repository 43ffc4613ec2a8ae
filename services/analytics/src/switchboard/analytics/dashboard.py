"""The built-in dashboard at ``/``: one server-rendered page of inline SVG charts over the
same queries as the API (no JavaScript, no build step, nothing fetched from elsewhere).

Browsers sign in once with the workspace's API key (kept in an HttpOnly, SameSite=Strict
cookie); scripts may send the usual ``Authorization: Bearer`` header instead.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
from switchboard.runtime.auth import ApiKeyAuth, AuthError
from switchboard.runtime.db import Conn

COOKIE = "switchboard_analytics_key"
_env = Environment(
    loader=PackageLoader("switchboard.analytics", "templates"),
    autoescape=select_autoescape(["html", "jinja"]),
)


def workspace_of(request: Request, auth: ApiKeyAuth) -> str | None:
    """The workspace of the bearer key or the sign-in cookie; None when neither is valid."""
    try:
        return auth.workspace(request)
    except AuthError:
        pass
    key = request.cookies.get(COOKIE, "")
    for known, workspace in auth.keys.items():
        if key and hmac.compare_digest(known.encode(), key.encode()):
            return workspace
    return None


LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def login_page(message: str | None = None, status: int = 401) -> HTMLResponse:
    return HTMLResponse(_env.get_template("login.html.jinja").render(message=message), status)


async def login(request: Request, auth: ApiKeyAuth) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    key = (form.get("key") or [""])[0].strip()
    if not any(hmac.compare_digest(k.encode(), key.encode()) for k in auth.keys):
        return login_page("That key is not valid for any workspace.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        # Behind a TLS-terminating ingress the pod sees plain http, so the cookie is Secure
        # everywhere except on a loopback host (a developer's browser on http://127.0.0.1).
        secure=request.url.hostname not in LOOPBACK,
        max_age=30 * 86400,
    )
    return response


def logout() -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _labels(window: Window, points: Sequence[Mapping[str, Any]]) -> list[str]:
    fmt = "%m-%d" if window.bucket == "day" else "%m-%d %H:00"
    return [
        datetime.fromisoformat(p["bucket"].replace("Z", "+00:00")).strftime(fmt) for p in points
    ]


def _only(f: Filters, *names: str) -> Filters:
    given = f.given()
    return Filters(**{k: v for k, v in given.items() if k in names})


async def render(
    conn: Conn, ws: str, query: Mapping[str, str], stages: Sequence[str]
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
        conversions=conv,
        ranges=_ranges(query),
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
