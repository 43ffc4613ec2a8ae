"""``switchboard keys create|list|rotate|revoke``: the operator's API key commands, straight
against the ``api_keys`` bucket (the same store as the ``/admin/api-keys`` API)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from switchboard.events.streams import API_KEYS, CLOCK
from switchboard.runtime.bus import Bus
from switchboard.runtime.keys import AlreadyRotatedError, KeyStore, parse_scopes
from switchboard.runtime.servertime import ServerClock


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, rotate or revoke API keys")
    keys.add_argument(
        "--nats-url", default=os.environ.get("SWITCHBOARD_NATS_URL", "nats://127.0.0.1:4222")
    )
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new key, printed once")
    create.add_argument("--workspace", required=True)
    create.add_argument("--scopes", required=True, type=_scopes, help="e.g. read,send,admin")
    create.add_argument("--expires", type=_expiry, help="ISO time or a duration: 30d, 12h")
    create.add_argument("--name", help="what the key is for")
    listing = actions.add_parser("list", help="keys (never the keys themselves), as JSON lines")
    listing.add_argument("--workspace")
    rotate = actions.add_parser("rotate", help="a new key for an old one, printed once")
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--grace",
        type=_duration,
        default=timedelta(0),
        help="how long the old key keeps working (e.g. 1h); default: not at all",
    )
    revoke = actions.add_parser("revoke", help="the key authenticates nothing from now on")
    revoke.add_argument("key_id")


async def run_keys(args: argparse.Namespace) -> int:
    pepper = _pepper(args.data)
    if pepper is None:
        print(
            "keys: set SWITCHBOARD_API_KEY_PEPPER (the services' value) to manage API keys.",
            file=sys.stderr,
        )
        return 2
    bus = await Bus.connect(
        args.nats_url,
        name="switchboard-cli",
        user=os.environ.get("SWITCHBOARD_NATS_USER"),
        password=os.environ.get("SWITCHBOARD_NATS_PASSWORD"),
        creds=os.environ.get("SWITCHBOARD_NATS_CREDS_FILE"),
    )
    try:
        await bus.ensure_bucket(CLOCK)
        clock = ServerClock(bus.js, CLOCK.name)  # rotations' grace ends as services read it
        await clock.sync()
        store = KeyStore(await bus.ensure_bucket(API_KEYS), pepper, clock.utcnow)
        return await _act(store, args)
    finally:
        await bus.close()


async def _act(store: KeyStore, args: argparse.Namespace) -> int:
    if args.action == "create":
        record, key = await store.create(
            args.workspace, args.scopes, expires_at=args.expires, name=args.name
        )
        _say(f"created key {record.key_id} for workspace {record.workspace_id!r} "
             f"({','.join(record.scopes)}); it is shown once, here:")  # fmt: skip
        print(key)
        return 0
    if args.action == "list":
        for record in await store.list(args.workspace):
            print(json.dumps(record.public()))
        return 0
    if args.action == "rotate":
        try:
            rotated = await store.rotate(args.key_id, args.grace)
        except AlreadyRotatedError as exc:
            _say(f"keys: {exc}.")
            return 1
        if rotated is None:
            _say(f"keys: no usable key {args.key_id!r}.")
            return 1
        record, key = rotated
        _say(f"key {args.key_id} replaced by {record.key_id}; the new key, shown once:")
        print(key)
        return 0
    revoked = await store.revoke(args.key_id)
    if revoked is None:
        _say(f"keys: no key {args.key_id!r}.")
        return 1
    _say(f"revoked key {revoked.key_id} of workspace {revoked.workspace_id!r}")
    return 0


def _say(line: str) -> None:
    # Messages on stderr, the key alone on stdout: `KEY=$(switchboard keys create ...)` works.
    print(line, file=sys.stderr)


def _pepper(data: Path) -> bytes | None:
    value = os.environ.get("SWITCHBOARD_API_KEY_PEPPER")
    if value is None:
        dev = data / "dev-api-key-pepper"  # written by `switchboard up`
        value = dev.read_text().strip() if dev.exists() else None
    return value.encode() if value else None


def _scopes(value: str) -> frozenset[Any]:
    try:
        return parse_scopes(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(value: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is no duration (e.g. 90s, 15m, 12h, 30d)")
    return timedelta(seconds=int(number) * units[unit])


def _expiry(value: str) -> datetime:
    if value[-1:] in ("s", "m", "h", "d") and value[:-1].isdigit():
        return datetime.now(UTC) + _duration(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither an ISO time nor a duration (e.g. 30d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
