"""`switchboard-sandbox`: serve the fake providers, or drive traffic into a running sandbox."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from switchboard.sandbox.config import SandboxConfig
from switchboard.sandbox.traffic import parse_duration

DEFAULT_URL = "http://127.0.0.1:8090"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard-sandbox", description="Faithful fake chat providers for Switchboard."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve every provider on one port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--demo", action="store_true", help="register the demo accounts")
    serve.add_argument("--config", help="JSON file with sandbox settings")
    serve.add_argument(
        "--strict-chats",
        action="store_true",
        help="unknown Telegram chat ids give 'chat not found'",
    )
    serve.add_argument("--no-rate-limits", action="store_true", help="disable rate limits")
    serve.add_argument(
        "--mtproto-port",
        type=int,
        help="TCP port of the wire-level MTProto server (default: the config's, 0 = free)",
    )
    serve.add_argument("--log-level", default="info")

    traffic = commands.add_parser("traffic", help="simulate users writing to a bot")
    traffic.add_argument("--url", default=DEFAULT_URL, help="base URL of the running sandbox")
    traffic.add_argument(
        "--provider", default="telegram", choices=["telegram", "whatsapp", "viber"]
    )
    traffic.add_argument(
        "--bot",
        required=True,
        help="bot token, id or username; WhatsApp: phone_number_id; Viber: bot uri or token",
    )
    traffic.add_argument("--rate", type=float, default=10.0, help="updates per second")
    amount = traffic.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int)
    amount.add_argument("--duration", help="e.g. 30s, 2m")
    traffic.add_argument("--mix", help="weights, e.g. text=60,photo=10,callback_query=5")
    traffic.add_argument("--seed", type=int, default=0)
    traffic.add_argument("--users", type=int, default=50)
    traffic.add_argument("--no-wait", action="store_true", help="start the job and return")
    return parser


def parse_mix(text: str | None) -> dict[str, float] | None:
    """`text=60,photo=10` -> {"text": 60.0, "photo": 10.0}."""
    if not text:
        return None
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if not name.strip() or not weight.strip():
            raise ValueError(f"mix entries look like kind=weight, got {part!r}")
        mix[name.strip()] = float(weight)
    return mix


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from switchboard.sandbox.app import create_app

    config = SandboxConfig.from_file(args.config) if args.config else SandboxConfig()
    config.demo = config.demo or args.demo
    config.telegram.strict_chats = config.telegram.strict_chats or args.strict_chats
    if args.no_rate_limits:
        config.telegram.limits.enabled = False
    config.mtproto_wire.host = args.host
    if args.mtproto_port is not None:
        config.mtproto_wire.port = args.mtproto_port
    app = create_app(config)
    print(
        f"switchboard-sandbox on http://{args.host}:{args.port} "
        f"(telegram at /telegram/bot<token>/<method>, the MTProto server's address at "
        f"/mtproto/server, control at /_sandbox)",
        flush=True,
    )
    if config.demo:
        print("demo bot: token 100000001:demo (@switchboard_demo_bot)", flush=True)
    # MTProto update streams stay open until their clients leave: bound the shutdown wait,
    # then the streams end as if the server had dropped them.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
    )
    return 0


def _traffic(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "bot": args.bot,
        "rate": args.rate,
        "seed": args.seed,
        "users": args.users,
        "mix": parse_mix(args.mix),
    }
    if args.count is not None:
        body["count"] = args.count
    else:
        body["duration"] = parse_duration(args.duration)
    base = args.url.rstrip("/") + f"/_sandbox/{args.provider}/traffic"
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = client.post(base, json=body)
        if response.status_code >= 400:
            print(f"error: {response.json().get('error', response.text)}", file=sys.stderr)
            return 1
        job = response.json()
        print(f"traffic job {job['id']} started for bot {job['account']}", flush=True)
        if args.no_wait:
            return 0
        last = -1
        while job["status"] == "running":
            time.sleep(0.2)
            job = client.get(f"{base}/{job['id']}").json()
            if job["produced"] != last:
                last = job["produced"]
                print(f"  {last} updates", flush=True)
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(job["by_kind"].items()))
        print(f"{job['status']}: {job['produced']} updates ({kinds})", flush=True)
        if job["status"] != "done":
            print(f"error: {job.get('error')}", file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `switchboard-sandbox` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        return _traffic(args)
    except (ValueError, OSError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
