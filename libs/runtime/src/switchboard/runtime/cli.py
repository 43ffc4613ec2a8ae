"""``switchboard``: the operator command (dev stack, DLQ, API keys)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from switchboard.runtime import devstack
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import list_dead_letters, redrive
from switchboard.runtime.keys_cli import add_keys_parser, run_keys


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    plugins = {ep.name: ep for ep in entry_points(group="switchboard.commands")}
    if args_in and args_in[0] in plugins:
        # Service-specific commands (e.g. `switchboard crm rebuild`) live with their service.
        result: int = plugins[args_in[0]].load()(args_in[1:])
        return result
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SWITCHBOARD_DATA", ".data"))
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the whole platform on embedded servers")
    sub.add_parser("down", help="stop the platform started by `up`")
    dlq = sub.add_parser("dlq", help="list or redrive dead letters")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument(
        "--nats-url", default=os.environ.get("SWITCHBOARD_NATS_URL", "nats://127.0.0.1:4222")
    )
    dlq.add_argument("--seq", type=int, action="append", help="DLQ sequence(s) to redrive")
    dlq.add_argument("--limit", type=int, default=100)
    add_keys_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "up":
        return devstack.up(args.data)
    if args.command == "down":
        return devstack.down(args.data)
    if args.command == "keys":
        return asyncio.run(run_keys(args))
    return asyncio.run(_dlq(args))


async def _dlq(args: argparse.Namespace) -> int:
    # Credentials as the services take them, so the CLI works against a secured NATS too.
    password = os.environ.get("SWITCHBOARD_NATS_PASSWORD")
    bus = await Bus.connect(
        args.nats_url,
        name="switchboard-cli",
        user=os.environ.get("SWITCHBOARD_NATS_USER"),
        password=password,
        creds=os.environ.get("SWITCHBOARD_NATS_CREDS_FILE"),
    )
    try:
        letters = await list_dead_letters(bus, args.limit)
        if args.action == "list":
            for letter in letters:
                print(
                    json.dumps(
                        {
                            "seq": letter.sequence,
                            "subject": letter.subject,
                            "reason": letter.reason,
                            "consumer": letter.consumer,
                            "deliveries": letter.deliveries,
                            "time": letter.time,
                        }
                    )
                )
            return 0
        wanted = set(args.seq or [])
        for letter in letters:
            if not wanted or letter.sequence in wanted:
                await redrive(bus, letter)
                print(f"redriven {letter.sequence} -> {letter.subject}")
        return 0
    finally:
        await bus.close()


if __name__ == "__main__":
    raise SystemExit(main())
