"""`switchboard up` as a user runs it: the README's curl scenario on the dev defaults."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from switchboard.runtime.devstack import OPS_PORTS, PORTS, SANDBOX_PORT
from switchboard.runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

UPDATE = {
    "update_id": 1,
    "message": {
        "message_id": 1, "date": 1763640000, "text": "Hi, I need a quote",
        "from": {"id": 555, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": 555, "type": "private"},
    },
}  # fmt: skip


async def test_up_serves_the_readme_scenario_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = (tmp_path / "up.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard.runtime.cli", "--data", str(data), "up"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    ingest, crm = f"http://127.0.0.1:{PORTS['ingest']}", f"http://127.0.0.1:{PORTS['crm']}"
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def up() -> bool:
                assert proc.poll() is None, (tmp_path / "up.log").read_text()
                return (data / "stack.json").exists()

            await eventually(up, timeout=90, interval=0.2, message="switchboard up")
            # It says what it is doing while it prepares (a slow first start is not silent).
            said = (tmp_path / "up.log").read_text()
            assert "starting NATS" in said, said
            assert re.search(r"\] \w+ is ready \(\d+/\d+\)", said), said
            hook = f"{ingest}/webhooks/telegram/demo"
            good = {"X-Telegram-Bot-Api-Secret-Token": "demo-secret"}
            r = await http.post(hook, json=UPDATE, headers=good)
            assert r.status_code == 200, r.text

            async def visible() -> bool:
                r = await http.get(f"{crm}/v1/conversations",
                                   headers={"Authorization": "Bearer demo-key"})  # fmt: skip
                return r.status_code == 200 and r.json()["items"] != []

            await eventually(visible, timeout=10, message="message visible in the crm")
            bad = await http.post(hook, json={**UPDATE, "update_id": 2},
                                  headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})  # fmt: skip
            assert bad.status_code == 401
            me = await http.get(f"http://127.0.0.1:{SANDBOX_PORT}/telegram/bot100000001:demo/getMe")
            assert me.json()["result"]["username"] == "switchboard_demo_bot"
            for name in ("ingest", "crm", "flows"):
                port, ops = PORTS[name], OPS_PORTS[name]
                assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                # Metrics live on the ops port only, never beside the API.
                assert (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 404
                metrics = await http.get(f"http://127.0.0.1:{ops}/metrics")
                assert "switchboard_" in metrics.text

            # Active health: the demo bot and the demo user session, each probed (on the ops
            # port: /health/* names accounts, so the API port answers it only to the operator).
            for service, key in (("outbound", "telegram/demo"), ("mtproto", "mtproto/demo")):
                url = f"http://127.0.0.1:{OPS_PORTS[service]}/health/integrations"

                async def probed(url: str = url, key: str = key) -> bool:
                    entry = (await http.get(url)).json()["integrations"].get(key)
                    if not entry:
                        return False
                    # A probe, or its own traffic: a real call that succeeded is the cheapest
                    # proof of health, and defers the probe (runtime.integrations.probe_due).
                    return bool(
                        (entry.get("probe") or {}).get("ok") or entry.get("last_success_at")
                    )

                await eventually(probed, timeout=30, message=f"{service} probed {key}")

            # The README's login, as written: a user the fake Telegram knows (its "SMS" code
            # fixed), the phone alone (the app is the gateway's default), then the code.
            # Before, the first step answered 400 "api_id and api_hash are needed".
            mt = f"http://127.0.0.1:{PORTS['mtproto']}/v1/sessions/sales-1"
            key = {"Authorization": "Bearer demo-key"}
            r = await http.post(f"http://127.0.0.1:{SANDBOX_PORT}/_sandbox/mtproto/users",
                                json={"phone": "+447700900123", "first_name": "Sales",
                                      "code": "12345"})  # fmt: skip
            assert r.status_code in (200, 201), r.text
            r = await http.post(f"{mt}/login", json={"phone": "+447700900123"}, headers=key)
            assert (r.status_code, r.json().get("state")) == (200, "code_sent"), r.text
            r = await http.post(f"{mt}/login/code", json={"code": "12345"}, headers=key)
            assert (r.status_code, r.json().get("state")) == (200, "authorized"), r.text

            # The CLI beside the stack, with the settings `up` wrote (the README's rebuild):
            # without them every command stopped at "setting ... is invalid".
            settings = data / "env"
            assert settings.stat().st_mode & 0o777 == 0o600  # it holds the dev keys
            cli_env = {**env, **dict(
                (k, shlex.split(v)[0]) for k, _, v in
                (line.partition("=") for line in settings.read_text().splitlines())
            )}  # fmt: skip
            for args in (["crm", "rebuild"], ["keys", "list"]):
                done = subprocess.run(
                    [sys.executable, "-m", "switchboard.runtime.cli", *args],
                    env=cli_env, capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, (tmp_path / "up.log").read_text()
    assert not (data / "stack.json").exists()
    assert not (data / "env").exists()
