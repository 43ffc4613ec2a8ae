"""``switchboard mtproto ...`` (also ``switchboard-mtproto``): operate the MTProto gateway.

A client of the gateway's HTTP API, so the operator's machine needs the workspace's API key
(``SWITCHBOARD_API_KEY``; ``reencrypt`` needs the operator token), never the encryption
keys. The login code and the password are prompted for, and a session to import is read
from the environment: secrets are never taken as arguments, where shell history and ``ps``
would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import httpx


def _secret(env: str, prompt: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        raise SystemExit(f"set {env} (secrets are not taken as arguments)")
    return getpass.getpass(prompt)


def _show(response: httpx.Response) -> int:
    try:
        body: Any = response.json()
    except ValueError:
        body = {"status": response.status_code, "text": response.text[:300]}
    print(json.dumps(body, indent=2))
    return 0 if response.status_code < 400 else 1


def _login(http: httpx.Client, args: argparse.Namespace) -> int:
    """Start a login, then prompt for the code (and the password when asked)."""
    base = f"/v1/sessions/{args.session}/login"
    body: dict[str, Any] = {"phone": args.phone}
    if args.workspace:
        body["workspace_id"] = args.workspace
    if args.api_id:
        body["api_id"] = args.api_id
        body["api_hash"] = _secret("SWITCHBOARD_MTPROTO_API_HASH", "api hash: ")
    r = http.post(base, json=body)
    if r.status_code >= 400:
        return _show(r)
    r = http.post(f"{base}/code", json={"code": input("login code: ").strip()})
    if r.status_code < 400 and r.json().get("state") == "password_needed":
        password = _secret("SWITCHBOARD_MTPROTO_PASSWORD", "two-step password: ")
        r = http.post(f"{base}/password", json={"password": password})
    return _show(r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard mtproto", description=__doc__)
    parser.add_argument(
        "--url", default=os.environ.get("SWITCHBOARD_MTPROTO_URL", "http://127.0.0.1:8083")
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("SWITCHBOARD_API_KEY"),
        help="the workspace's API key (its sessions only)",
    )
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("SWITCHBOARD_ADMIN_TOKEN"),
        help="the operator token (reencrypt only)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sessions", help="list sessions (never their secrets)")
    show = sub.add_parser("show", help="a session with its subscriptions and backfills")
    show.add_argument("session")
    login = sub.add_parser("login", help="log a Telegram account in (prompts for the code)")
    login.add_argument("session")
    login.add_argument("--phone", required=True)
    login.add_argument("--workspace", help="default: the key's workspace")
    login.add_argument("--api-id", type=int, help="app id (default: the gateway's)")
    imp = sub.add_parser("import", help="import a StringSession from SWITCHBOARD_MTPROTO_SESSION")
    imp.add_argument("session")
    imp.add_argument("--api-id", type=int, required=True)
    imp.add_argument("--workspace", help="default: the key's workspace")
    logout = sub.add_parser("logout", help="revoke a session at Telegram and delete it")
    logout.add_argument("session")
    subscribe = sub.add_parser("subscribe", help="read a channel, group or chat")
    subscribe.add_argument("session")
    subscribe.add_argument("peer")
    backfill = sub.add_parser("backfill", help="read a peer's history into conv events")
    backfill.add_argument("session")
    backfill.add_argument("peer")
    backfill.add_argument("--max-messages", type=int)
    backfill.add_argument("--until", help="ISO date: stop at older messages")
    sub.add_parser("reencrypt", help="re-encrypt every session with the active key")
    args = parser.parse_args(argv)
    operator = args.command == "reencrypt"
    token = args.admin_token if operator else args.api_key
    if not token:
        raise SystemExit(
            "set SWITCHBOARD_ADMIN_TOKEN or pass --admin-token"
            if operator
            else "set SWITCHBOARD_API_KEY or pass --api-key (a key of the sessions' workspace)"
        )
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as http:
        return _run(http, args)


def _run(http: httpx.Client, args: argparse.Namespace) -> int:
    command = args.command
    if command == "sessions":
        return _show(http.get("/v1/sessions"))
    if command == "show":
        return _show(http.get(f"/v1/sessions/{args.session}"))
    if command == "login":
        return _login(http, args)
    if command == "import":
        body = {
            "session": _secret("SWITCHBOARD_MTPROTO_SESSION", "StringSession: "),
            "api_id": args.api_id,
            "api_hash": _secret("SWITCHBOARD_MTPROTO_API_HASH", "api hash: "),
        }
        if args.workspace:
            body["workspace_id"] = args.workspace
        return _show(http.put(f"/v1/sessions/{args.session}", json=body))
    if command == "logout":
        return _show(http.delete(f"/v1/sessions/{args.session}"))
    if command == "subscribe":
        return _show(http.post(f"/v1/sessions/{args.session}/subscriptions",
                               json={"peer": args.peer}))  # fmt: skip
    if command == "backfill":
        body = {"peer": args.peer, "max_messages": args.max_messages, "until": args.until}
        body = {k: v for k, v in body.items() if v is not None}
        return _show(http.post(f"/v1/sessions/{args.session}/backfills", json=body))
    return _show(http.post("/admin/keys/reencrypt"))


if __name__ == "__main__":
    raise SystemExit(main())
