"""``switchboard ingest ...`` (also ``switchboard-ingest``): ingest operations.

``accounts ...`` is a client of the admin HTTP API (so the operator's machine needs the
admin token, never the encryption keys). Secrets are read from the environment or prompted
for, never taken on the command line where shell history and ``ps`` would keep them.

``renormalize --since <ISO time>`` talks to NATS (``SWITCHBOARD_NATS_*``, as the service)
and normalizes again the provider payloads ``RAW`` holds from then on, replacing in ``CONV``
what older normalizers made of them (see ``switchboard.ingest.renormalize``); rebuild the
projections afterwards (``switchboard crm rebuild``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import httpx

from switchboard.ingest.renormalize import renormalize
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime import identity
from switchboard.runtime.service import connect_bus
from switchboard.runtime.settings import ConfigError, load_settings

SECRET_NAMES = {
    "telegram": ["token"],
    "viber": ["token"],
    "whatsapp": ["app_secret", "access_token"],
    "generic": [],
}
# generic accounts that name a provider (--setting provider=...) carry its credentials
PROVIDER_SECRETS = {"sendpulse": ["client_id", "client_secret"], "metacapi": ["access_token"]}


def _secret(name: str, channel: str) -> str:
    env = f"SWITCHBOARD_{channel.upper()}_{name.upper()}"
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        raise SystemExit(f"set {env} (secrets are not taken as arguments)")
    return getpass.getpass(f"{channel} {name}: ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-ingest", description=__doc__)
    parser.add_argument(
        "--url", default=os.environ.get("SWITCHBOARD_INGEST_URL", "http://127.0.0.1:8080")
    )
    parser.add_argument("--admin-token", default=os.environ.get("SWITCHBOARD_ADMIN_TOKEN"))
    sub = parser.add_subparsers(dest="command", required=True)
    accounts = sub.add_parser("accounts", help="manage channel accounts").add_subparsers(
        dest="action", required=True
    )
    accounts.add_parser("list", help="list accounts (secret names only)")
    for action, text in (
        ("add", "check the credentials, then add the account and register its webhook"),
        ("check", "check an account's credentials with its provider, saving nothing"),
    ):
        add = accounts.add_parser(action, help=text)
        add.add_argument("channel", choices=sorted(SECRET_NAMES))
        add.add_argument("id")
        add.add_argument("--workspace", default="default")
        add.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE")
    update = accounts.add_parser(
        "update", help="change an account's settings or secrets in place (checked first)"
    )
    update.add_argument("channel", choices=sorted(SECRET_NAMES))
    update.add_argument("id")
    update.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE")
    update.add_argument("--unset", action="append", default=[], metavar="KEY")
    update.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME",
        help="replace this secret (read from SWITCHBOARD_<CHANNEL>_<NAME>, or asked)",
    )
    rotate = accounts.add_parser("rotate", help="rotate an account's webhook secret")
    rotate.add_argument("channel", choices=sorted(SECRET_NAMES))
    rotate.add_argument("id")
    remove = accounts.add_parser("remove", help="remove an account and its webhook")
    remove.add_argument("channel", choices=sorted(SECRET_NAMES))
    remove.add_argument("id")
    accounts.add_parser("reencrypt", help="re-encrypt all accounts with the active key")
    again = sub.add_parser("renormalize", help="normalize RAW again and replace what changed")
    again.add_argument(
        "--since", required=True, type=_when, help="ISO 8601 time, e.g. 2026-11-20T00:00:00Z"
    )
    args = parser.parse_args(argv)
    if args.command == "renormalize":
        return asyncio.run(_renormalize(args.since))
    if not args.admin_token:
        raise SystemExit("set SWITCHBOARD_ADMIN_TOKEN or pass --admin-token")

    headers = {"Authorization": f"Bearer {args.admin_token}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as http:
        response = _run(http, args)
    if response.status_code >= 400:
        print(_error_text(response), file=sys.stderr)
        return 1
    if response.content:
        print(json.dumps(response.json(), indent=2))
    return 0


def _when(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def _renormalize(since: datetime) -> int:
    try:
        settings = load_settings(IngestSettings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    identity.configure(settings.identity_pepper.get_secret_value())  # seals as the service
    bus = await connect_bus(settings, "ingest-renormalize")
    try:
        report = await renormalize(bus, await bus.kv("dedup"), since)
    finally:
        await bus.close()
    print(json.dumps({k: v for k, v in asdict(report).items() if k != "changes"}))
    return 0


def _run(http: httpx.Client, args: argparse.Namespace) -> httpx.Response:
    if args.action == "list":
        return http.get("/admin/accounts")
    if args.action in ("add", "check"):
        settings: dict[str, Any] = dict(s.split("=", 1) for s in args.setting)
        names = SECRET_NAMES[args.channel] + PROVIDER_SECRETS.get(
            str(settings.get("provider", "")), []
        )
        secrets = {name: _secret(name, args.channel) for name in names}
        body = {
            "channel": args.channel,
            "id": args.id,
            "workspace_id": args.workspace,
            "settings": settings,
            "secrets": secrets,
        }
        path = "/admin/accounts" if args.action == "add" else "/admin/accounts/check"
        return http.post(path, json=body)
    if args.action == "update":
        change: dict[str, Any] = dict(s.split("=", 1) for s in args.setting)
        change.update(dict.fromkeys(args.unset))
        secrets_ = {name: _secret(name, args.channel) for name in args.secret}
        path = f"/admin/accounts/{args.channel}/{args.id}"
        return http.patch(path, json={"settings": change, "secrets": secrets_})
    if args.action == "rotate":
        return http.post(f"/admin/accounts/{args.channel}/{args.id}/rotate")
    if args.action == "remove":
        return http.delete(f"/admin/accounts/{args.channel}/{args.id}")
    return http.post("/admin/keys/reencrypt")


def _error_text(response: httpx.Response) -> str:
    """A problem document as one line per thing wrong (its detail, then each field)."""
    try:
        problem = response.json()
        lines = [f"{response.status_code} {problem['code']}: {problem['detail']}"]
        errors = problem.get("errors") or []
        if len(errors) > 1:
            lines += [f"  {e['path']}: {e['message']}" for e in errors]
        return "\n".join(lines)
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"


if __name__ == "__main__":
    raise SystemExit(main())
