"""The analytics dashboard in headless Chromium (Debian ``chromium``), driven over the
DevTools protocol: signed in with a bearer key, every chart of a workspace with data draws
coloured marks in a screenshot, and the same page for an empty workspace draws none."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.support.conv import T0, publish_all, received, sent
from tests.support.stack import API_KEY, OTHER_KEY, service_env

from switchboard.analytics.app import create_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events.catalog.common import Channel, Chat
from switchboard.events.catalog.crm import ContactCreated, Identity, LeadCreated, LeadStageChanged
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryQueued,
    DeliveryReceipt,
    DeliverySent,
)
from switchboard.events.catalog.flows import RunRecorded
from switchboard.events.catalog.mtproto import BackfillProgressed, SessionConnected
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

pytestmark = pytest.mark.e2e
CHARTS = (
    "messages",
    "deliveries",
    "failures",
    "send_latency",
    "e2e_latency",
    "first_response",
    "funnel",
    "conversion_rate",
    "campaigns",
    "mtproto",
    "flow_funnel",
)
RANGE = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z"
INSTALL = "chromium is missing: install it with `apt-get install -y chromium` (Debian)"

# Runs in the page: decode the screenshot and count, inside each chart's box, the pixels
# drawn in a colour (bars and lines); axes, labels and "no data" notes are grey.
COUNT = """
async (png, boxes) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + png;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const out = {};
  for (const [id, b] of Object.entries(boxes)) {
    const data = ctx.getImageData(b.x, b.y, Math.max(1, b.w), Math.max(1, b.h)).data;
    let coloured = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i], g = data[i + 1], bl = data[i + 2];
      if (Math.max(r, g, bl) - Math.min(r, g, bl) > 60) coloured++;
    }
    out[id] = coloured;
  }
  return out;
}
"""
BOXES = """
(() => {
  const out = {};
  for (const fig of document.querySelectorAll('figure.chart')) {
    const svg = fig.querySelector('svg');
    const r = svg.getBoundingClientRect();
    out[fig.id.replace('chart-', '')] = {
      x: Math.round(r.left + scrollX), y: Math.round(r.top + scrollY),
      w: Math.round(r.width), h: Math.round(r.height),
      points: Number(svg.dataset.points),
    };
  }
  return out;
})()
"""


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands on one page session."""

    def __init__(self, ws: Any, session: str) -> None:
        self.ws, self.session, self.next_id = ws, session, 1000
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def page(cls, ws: Any) -> DevTools:
        browser = cls(ws, "")
        target = await browser.call("Target.createTarget", url="about:blank")
        attached = await browser.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        return cls(ws, attached["sessionId"])

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        await self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    async def open(self, url: str, headers: dict[str, str]) -> None:
        await self.call("Page.enable")
        await self.call("Network.enable")
        await self.call("Network.setExtraHTTPHeaders", headers=headers)
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1440,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.events.clear()
        await self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(await asyncio.wait_for(self.ws.recv(), 30)))

    async def chart_pixels(self, path: Path) -> dict[str, dict[str, int]]:
        """Screenshot the whole page (saved to ``path``) and count coloured chart pixels."""
        boxes = await self.evaluate(BOXES)
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        counts = await self.evaluate(f"({COUNT})({json.dumps(shot['data'])}, {json.dumps(boxes)})")
        return {k: {"points": boxes[k]["points"], "coloured": counts[k]} for k in boxes}


@contextlib.asynccontextmanager
async def chromium(tmp: Path) -> AsyncIterator[Any]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail(INSTALL)
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp / 'profile'}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        url = await asyncio.to_thread(_devtools_url, proc.stderr)
        async with websockets.connect(url, max_size=64 * 1024 * 1024) as ws:
            yield ws
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _devtools_url(stderr: Any) -> str:
    for raw in stderr:
        line = raw.decode(errors="replace")
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    raise RuntimeError("chromium exited before opening the DevTools port")


@pytest.fixture
async def analytics(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    for key, value in service_env(
        nats_url, postgres_url, SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL="px-1"
    ).items():
        monkeypatch.setenv(key, value)
    async with serve_app(create_app(load_settings(AnalyticsSettings))) as url:
        yield url


def _traffic() -> list[Any]:
    """A morning of activity on two channels, touching every chart."""
    out: list[Any] = []
    for i in range(12):
        chat = str(500 + i % 4)
        out.append(received(Channel.TELEGRAM, "shop", chat, f"hello {i}", i * 600))
        out.append(sent(Channel.TELEGRAM, "shop", chat, f"m-{i}", f"p-{i}", "hi!", i * 600 + 45))
    for i in range(6):
        out.append(received(Channel.WHATSAPP, "wa1", f"49176000{i}", "hallo", 400 + i * 900))
    at = T0 + timedelta(minutes=1)
    for i in range(12):
        base = {
            "message_id": f"m-{i}",
            "channel": Channel.TELEGRAM,
            "account": "shop",
            "recipient": str(500 + i % 4),
        }
        out.append(
            DeliveryQueued(
                **base, at=at + timedelta(seconds=i * 600), campaign_id="promo" if i % 2 else None
            )
        )
        if i % 5 == 4:
            out.append(
                DeliveryFailed(
                    **base,
                    at=at + timedelta(seconds=i * 600 + 2),
                    reason="Forbidden: bot was blocked by the user",
                    error_code="telegram_403",
                    permanent=True,
                    attempts=1,
                )
            )
        else:
            out.append(
                DeliverySent(
                    **base,
                    at=at + timedelta(seconds=i * 600, milliseconds=150 + 40 * i),
                    provider_message_id=f"p-{i}",
                )
            )
            out.append(
                DeliveryReceipt(
                    channel=Channel.TELEGRAM,
                    account="shop",
                    recipient=base["recipient"],
                    status="delivered",
                    provider_message_id=f"p-{i}",
                    at=at + timedelta(seconds=i * 600 + 5),
                )
            )
    return out


def _crm_and_mtproto() -> list[Any]:
    out: list[Any] = [
        ContactCreated(
            contact_id=f"ct_{i}",
            display_name=f"Person {i}",
            identities=(Identity(channel=Channel.TELEGRAM, external_id=str(500 + i)),),
            source_channel=Channel.TELEGRAM,
        )
        for i in range(4)
    ]
    for i in range(4):
        out.append(
            LeadCreated(
                lead_id=f"ld_{i}",
                contact_id=f"ct_{i}",
                stage="new",
                source_channel=Channel.TELEGRAM,
                campaign_id="promo" if i % 2 else None,
            )
        )
    for i, stage in ((0, "contacted"), (0, "qualified"), (0, "won"), (1, "contacted"), (2, "lost")):
        out.append(
            LeadStageChanged(
                lead_id=f"ld_{i}",
                contact_id=f"ct_{i}",
                from_stage="new",
                to_stage=stage,
                value=Decimal("250") if stage == "won" else None,
            )
        )
    at = T0 + timedelta(hours=1)
    out += [
        SessionConnected(session_id="reader1", at=at, instance="i-1"),
        BackfillProgressed(
            session_id="reader1",
            at=at,
            job_id="j1",
            chat=Chat(id="-1001"),
            fetched=100,
            offset_id=50,
        ),
    ]
    # Two runs of one flow: one completes, one is handed off after its greeting.
    for run, status, steps in (
        ("r1", "ended", [("greet", "send", "sent"), ("thanks", "send", "sent")]),
        ("r2", "handed_off", [("greet", "send", "sent"), ("human", "handoff", "handed_off")]),
    ):
        out.append(
            RunRecorded.model_validate(
                {
                    "session": f"s-{run}",
                    "run_id": run,
                    "flow_id": "welcome",
                    "revision": 1,
                    "conversation": {
                        "channel": "telegram",
                        "account": "demo",
                        "chat_id": "501",
                        "sender_id": "501",
                    },
                    "status": status,
                    "input_id": f"in-{run}",
                    "input_kind": "text",
                    "decision": 1,
                    "steps": [{"step": a, "type": b, "outcome": c} for a, b, c in steps],
                }
            )
        )
    return out


async def test_dashboard_draws_every_chart_with_data_and_none_without(
    analytics: str, nats_url: str, tmp_path: Path
) -> None:
    await publish_all(nats_url, _traffic())
    from switchboard.runtime.bus import Bus

    bus = await Bus.connect(nats_url, name="dashboard-test")
    try:
        for i, model in enumerate(_crm_and_mtproto()):
            await bus.publish(model, workspace_id="demo", time=T0 + timedelta(minutes=2 * i))
    finally:
        await bus.close()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(timeout=10) as http:

        async def ready() -> bool:
            r = await http.get(f"{analytics}/v1/mtproto?{RANGE}", headers=auth)
            funnel = await http.get(f"{analytics}/v1/funnel?{RANGE}", headers=auth)
            msgs = await http.get(f"{analytics}/v1/messages?{RANGE}", headers=auth)
            dels = await http.get(f"{analytics}/v1/deliveries?{RANGE}", headers=auth)
            flows = await http.get(f"{analytics}/v1/flows/funnel?{RANGE}", headers=auth)
            return (
                bool(flows.json()["flows"])
                and bool(r.json()["backfill"])
                and funnel.json()["created"] == 4
                and msgs.json()["totals"] == {"inbound": 18, "outbound": 12}
                and dels.json()["totals"]["delivered"] == 10
            )

        await eventually(ready, timeout=20, message="everything rolled up")
        form = await http.get(f"{analytics}/")
        assert form.status_code == 401  # the sign-in page, with its CSRF token
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        signed = await http.post(f"{analytics}/login", data={"key": API_KEY, "csrf": csrf})
        assert signed.status_code == 303
        assert "httponly" in signed.headers["set-cookie"].lower()
        page = await http.get(f"{analytics}/?{RANGE}")  # the cookie signs the browser in
        assert page.status_code == 200
        assert 'id="tile-inbound">18<' in page.text
        wrong = await http.post(f"{analytics}/login", data={"key": "not-a-key", "csrf": csrf})
        assert wrong.status_code == 401

    async with chromium(tmp_path) as ws:
        page = await DevTools.page(ws)
        await page.open(f"{analytics}/?{RANGE}", auth)
        title = await page.evaluate("document.title")
        assert title == "Switchboard analytics"
        full = await page.chart_pixels(tmp_path / "dashboard.png")
        inbound = await page.evaluate("document.getElementById('tile-inbound').textContent")
        assert inbound.strip() == "18"

        empty_page = await DevTools.page(ws)
        await empty_page.open(f"{analytics}/?{RANGE}", {"Authorization": f"Bearer {OTHER_KEY}"})
        empty = await empty_page.chart_pixels(tmp_path / "empty.png")

    assert sorted(full) == sorted(CHARTS)
    for chart in CHARTS:
        assert full[chart]["points"] > 0, chart
        assert full[chart]["coloured"] > 40, (chart, full[chart])
        assert empty[chart] == {"points": 0, "coloured": 0}, (chart, empty[chart])
