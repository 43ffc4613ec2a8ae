"""``switchboard up``: the whole platform on one machine with no configuration.

Embedded NATS and Postgres, the sandbox providers, every installed service as its own
process (like production), a demo Telegram bot wired to ingest. Data lives under ``.data/``
and survives restarts; Ctrl-C or ``switchboard down`` stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import httpx

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres, die_with_parent, free_port
from switchboard.runtime.settings import parse_keyring

# Dev defaults (a contract: the README and the checks use them).
PORTS = {
    "ingest": 8080, "crm": 8081, "outbound": 8082, "mtproto": 8083, "analytics": 8084,
    "flows": 8085,
}  # fmt: skip
# /metrics and /health/* of each service, apart from its API (see ServiceSettings.ops_port).
OPS_PORTS = {name: port + 1000 for name, port in PORTS.items()}
SANDBOX_PORT = 8090
NATS_PORT = 4222
# Below the kernel's ephemeral range (32768+ on Linux), which every outgoing connection draws
# its local port from, and below embedded.free_port's range: at 55432 a busy machine's
# connection held the port once and `switchboard up` refused to start (a full test run).
POSTGRES_PORT = 7432
DEMO_ACCOUNT = "demo"
DEMO_BOT_TOKEN = "100000001:demo"
DEMO_SECRET = "demo-secret"
DEMO_API_KEY = "demo-key"
DEMO_WORKSPACE = "demo"
ADMIN_TOKEN = "demo-admin"
DEMO_SESSION = "demo"  # an MTProto user session on the sandbox's fake Telegram
DEMO_PHONE = "+15550100001"
ENV_FILE = "env"  # in the data directory: the services' settings, for the CLI beside them
SANDBOX_API_ID, SANDBOX_API_HASH = 1, "0" * 32  # the fake Telegram's app: any is taken
HOST = "127.0.0.1"


def installed_services() -> dict[str, str]:
    """Services registered under the ``switchboard.services`` entry-point group."""
    found = {ep.name: ep.value for ep in entry_points(group="switchboard.services")}
    return dict(sorted(found.items(), key=lambda kv: PORTS.get(kv[0], 9999)))


def dev_keys(data: Path) -> str:
    """The dev encryption keyring, generated once and kept with the data it protects."""
    path = data / "dev-encryption-keys"
    if not path.exists():
        path.write_text(f"dev1:{Keyring.generate_key()}\n")
        path.chmod(0o600)
    return path.read_text().strip()


def dev_pepper(data: Path) -> str:
    """The dev API key pepper, generated once beside the data (``switchboard keys`` reads
    it from there when SWITCHBOARD_API_KEY_PEPPER is not set)."""
    path = data / "dev-api-key-pepper"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Stack:
    data: Path
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def env(self, keys: str, pepper: str = "") -> dict[str, str]:
        assert self.nats is not None
        assert self.postgres is not None
        return {
            **os.environ,
            "SWITCHBOARD_NATS_URL": self.nats.url,
            "SWITCHBOARD_DATABASE_URL": self.postgres.url,
            "SWITCHBOARD_ENCRYPTION_KEYS": keys,
            "SWITCHBOARD_API_KEYS": f"{DEMO_API_KEY}={DEMO_WORKSPACE}",
            "SWITCHBOARD_ADMIN_TOKEN": ADMIN_TOKEN,
            # One object store for every service: outbound keeps uploads, the CRM downloads.
            "SWITCHBOARD_OBJECTS__LOCAL_DIR": str((self.data / "objects").resolve()),
            **({"SWITCHBOARD_API_KEY_PEPPER": pepper} if pepper else {}),
            "SWITCHBOARD_HTTP_HOST": HOST,
            "SWITCHBOARD_SANDBOX_URL": f"http://{HOST}:{SANDBOX_PORT}",
            "SWITCHBOARD_PUBLIC_URL": f"http://{HOST}:{PORTS['ingest']}",
            # The dev stack is offline: the gateway's Telethon talks to the sandbox's
            # wire-level MTProto fake (its address from SANDBOX_URL/mtproto/server).
            "SWITCHBOARD_MTPROTO_ADAPTER": "sandbox",
            # The app a login uses when the request names none (the README's login example):
            # the fake takes any, as the demo session's import does.
            "SWITCHBOARD_MTPROTO_API_ID": str(SANDBOX_API_ID),
            "SWITCHBOARD_MTPROTO_API_HASH": SANDBOX_API_HASH,
            # The sandbox's files (Viber's media URLs) are on this machine, not public.
            "SWITCHBOARD_CRM_MEDIA_PRIVATE_URLS": "true",
        }

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        logs = self.data / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
        if self.postgres:
            self.postgres.stop()
        if self.nats:
            self.nats.stop()
        (self.data / "stack.json").unlink(missing_ok=True)
        (self.data / ENV_FILE).unlink(missing_ok=True)

    def write_env(self, env: dict[str, str]) -> Path:
        """The settings the services run with, as shell exports (``set -a; . .data/env``):
        the CLI beside the stack (``crm rebuild``, ``ingest renormalize``, ``accounts``)
        needs the same NATS, database and keys. Owner-only: it holds the dev keys."""
        extra = {
            "SWITCHBOARD_INGEST_URL": f"http://{HOST}:{PORTS['ingest']}",
            "SWITCHBOARD_API_KEY": DEMO_API_KEY,
        }
        chosen = {k: v for k, v in env.items() if k.startswith("SWITCHBOARD_")} | extra
        path = self.data / ENV_FILE
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(chosen.items())))
        return path


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])  # noqa: ASYNC240
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} was not ready at {url} within 60 s")


async def _register_demo(nats_url: str, keys: str, sandbox: bool) -> None:
    bus = await Bus.connect(nats_url, name="devstack")
    try:
        await bus.provision()
        store = AccountStore(await bus.kv("accounts"), Keyring.from_mapping(parse_keyring(keys)))
        if await store.get(Channel.TELEGRAM, DEMO_ACCOUNT) is None:
            await store.put(
                Account(
                    channel=Channel.TELEGRAM,
                    id=DEMO_ACCOUNT,
                    workspace_id=DEMO_WORKSPACE,
                    settings={
                        "api_base_url": f"http://{HOST}:{SANDBOX_PORT}/telegram",
                        "username": "switchboard_demo_bot",
                    },
                    secrets={"token": DEMO_BOT_TOKEN, "webhook_secret": DEMO_SECRET},
                )
            )
    finally:
        await bus.close()
    if sandbox:
        # Point the sandbox's demo bot at ingest, as adding a real bot would.
        async with httpx.AsyncClient(timeout=5) as client:
            await client.post(
                f"http://{HOST}:{SANDBOX_PORT}/telegram/bot{DEMO_BOT_TOKEN}/setWebhook",
                json={
                    "url": f"http://{HOST}:{PORTS['ingest']}/webhooks/telegram/{DEMO_ACCOUNT}",
                    "secret_token": DEMO_SECRET,
                },
            )
            if "mtproto" in installed_services():
                await _register_demo_session(client)


async def _register_demo_session(client: httpx.AsyncClient) -> None:
    """A demo Telegram user session for the MTProto gateway: a user of the sandbox's fake
    Telegram (which forgets its users when it stops, so each start makes a new one) whose
    session is imported as ``demo``. A session left from the last run is revoked by the
    gateway as soon as it connects (the fake no longer knows its key); until then the
    import answers 409, so it is retried for a while."""
    sandbox = f"http://{HOST}:{SANDBOX_PORT}/_sandbox/mtproto"
    r = await client.post(
        f"{sandbox}/users", json={"phone": DEMO_PHONE, "first_name": "Demo", "sessions": 1}
    )
    r.raise_for_status()
    session = r.json()["sessions"][0]["session"]
    body = {"session": session, "api_id": SANDBOX_API_ID, "api_hash": SANDBOX_API_HASH,
            "workspace_id": DEMO_WORKSPACE}  # fmt: skip
    url = f"http://{HOST}:{PORTS['mtproto']}/v1/sessions/{DEMO_SESSION}"
    # The gateway acts for a workspace only with that workspace's key (the operator token
    # opens operator routes only).
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    deadline = time.monotonic() + 30
    while True:
        r = await client.put(url, json=body, headers=headers)
        if r.status_code != 409 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    r.raise_for_status()


def _publish_demo_flow(url: str, log: Path) -> None:
    """The demo bot's flow (/start: a greeting with two buttons), published once through the
    flows CLI: the runtime never imports a service."""
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "switchboard.flows.cli", "--url", url, "--api-key",
             DEMO_API_KEY, "demo"],
            stdout=out, stderr=subprocess.STDOUT, check=True, timeout=60,
        )  # fmt: skip


def up(data: Path) -> int:
    """Start everything, print where it is, and run until interrupted."""
    data = data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    pidfile = data / "stack.json"
    if pidfile.exists():
        old = json.loads(pidfile.read_text()).get("pid")
        if old and _alive(old):
            print(f"the stack is already running (pid {old}); `switchboard down` stops it")
            return 1
    stack = Stack(data)
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        progress(started, "starting NATS (JetStream)")
        stack.nats = EmbeddedNats(data / "nats", port=_port(NATS_PORT)).start()
        first = not (data / "postgres").exists()
        progress(started, "starting Postgres" + (" (first run: creating the database)" * first))
        stack.postgres = EmbeddedPostgres(data / "postgres", port=_port(POSTGRES_PORT)).start()
        keys = dev_keys(data)
        env = stack.env(keys, dev_pepper(data))
        stack.write_env(env)
        has_sandbox = importlib.util.find_spec("switchboard.sandbox.cli") is not None
        if has_sandbox:
            progress(started, "starting the sandbox providers")
            stack.spawn(
                "sandbox",
                [
                    sys.executable,
                    "-m",
                    "switchboard.sandbox.cli",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(SANDBOX_PORT),
                    "--demo",
                ],
                env,
            )
            stack.urls["sandbox"] = f"http://{HOST}:{SANDBOX_PORT}"
            asyncio.run(
                _wait_ready(
                    f"{stack.urls['sandbox']}/_sandbox/health",
                    stack.procs["sandbox"],
                    "sandbox",
                    data / "logs/sandbox.log",
                )
            )
        names = list(installed_services())
        progress(started, f"starting {len(names)} services: {', '.join(names)}")
        for name in names:
            port = PORTS.get(name) or free_port()
            svc_env = {**env, f"SWITCHBOARD_{name.upper()}_HTTP_PORT": str(port)}
            if name in OPS_PORTS:
                svc_env[f"SWITCHBOARD_{name.upper()}_OPS_PORT"] = str(OPS_PORTS[name])
            stack.spawn(name, [sys.executable, "-m", f"switchboard.{name}"], svc_env)
            stack.urls[name] = f"http://{HOST}:{port}"
        for i, name in enumerate(names, 1):
            asyncio.run(
                _wait_ready(
                    f"{stack.urls[name]}/readyz",
                    stack.procs[name],
                    name,
                    data / "logs" / f"{name}.log",
                )
            )
            progress(started, f"{name} is ready ({i}/{len(names)})")
        progress(started, "registering the demo account")
        asyncio.run(_register_demo(stack.nats.url, keys, has_sandbox))
        if "flows" in stack.urls:
            _publish_demo_flow(stack.urls["flows"], data / "logs" / "flows-demo.log")
        pidfile.write_text(
            json.dumps({"pid": os.getpid(), "children": [p.pid for p in stack.procs.values()]})
        )
        _print_banner(stack)
        progress(started, "ready")
        while not stopping:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {data}/logs/{name}.log")
                    stopping = True
            time.sleep(0.5)
        return 0
    except Exception as exc:
        print(f"switchboard up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...")
        stack.stop()
        print("stopped")


def progress(since: float, step: str) -> None:
    """One line per start-up step, with the seconds since ``up`` began (a slow first start
    shows where it is instead of looking stuck)."""
    print(f"[{time.monotonic() - since:5.1f}s] {step}", flush=True)


def _port(preferred: int) -> int:
    """The fixed dev port, if nothing listens there (TIME_WAIT from our last run is fine)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, preferred))
        except OSError:
            raise RuntimeError(
                f"port {preferred} on {HOST} is taken; stop whatever uses it"
            ) from None
    return preferred


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def down(data: Path) -> int:
    """Stop a stack started by ``switchboard up`` in the same data dir."""
    pidfile = data.resolve() / "stack.json"
    if not pidfile.exists():
        print("no stack is running")
        return 0
    info = json.loads(pidfile.read_text())
    pid = info.get("pid")
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    for child in info.get("children", []):
        if _alive(child):
            os.kill(child, signal.SIGTERM)
    pidfile.unlink(missing_ok=True)
    print("stopped")
    return 0


def _print_banner(stack: Stack) -> None:
    assert stack.nats is not None
    assert stack.postgres is not None
    lines = [
        "",
        "Switchboard is up:",
        *(f"  {name:<10} {url}" for name, url in stack.urls.items()),
        f"  {'nats':<10} {stack.nats.url}",
        f"  {'postgres':<10} {stack.postgres.url}",
        "",
        f"  demo Telegram account '{DEMO_ACCOUNT}' (bot {DEMO_BOT_TOKEN}), "
        f"webhook secret '{DEMO_SECRET}'",
        f"  API key '{DEMO_API_KEY}' (workspace '{DEMO_WORKSPACE}'), admin token '{ADMIN_TOKEN}'",
        f"  MTProto user session '{DEMO_SESSION}' on the sandbox's fake Telegram (Telethon "
        "reaches it at GET /mtproto/server of the sandbox; examples/mtproto_telethon_script.py)",
        "  /metrics and /health/* of each service on its port + 1000 (e.g. 9080)",
        f"  the CLI beside it takes the stack's settings: set -a; . {stack.data / ENV_FILE}; "
        "set +a",
        "  then e.g. more API keys: uv run switchboard keys create --workspace W --scopes "
        "read,send",
        f"  logs in {stack.data}/logs; Ctrl-C or `just down` stops everything",
        "",
    ]
    print("\n".join(lines), flush=True)
