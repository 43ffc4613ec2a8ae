"""``switchboard-events``: export the catalog's JSON Schemas and AsyncAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from switchboard.events.registry import all_models
from switchboard.events.schemas import asyncapi, dumps, json_schema, write_schemas

DEFAULT_OUT = Path(__file__).resolve().parents[3] / "schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-events", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    schemas = sub.add_parser("schemas", help="write libs/events/schemas/ (idempotent)")
    schemas.add_argument("--out", type=Path, default=DEFAULT_OUT)
    snap = sub.add_parser("snapshot", help="add missing compatibility snapshots (never rewrites)")
    snap.add_argument("--out", type=Path, required=True)
    sub.add_parser("asyncapi", help="print the AsyncAPI document")
    sub.add_parser("list", help="list every (name, version)")
    args = parser.parse_args(argv)

    if args.command == "schemas":
        for path in write_schemas(args.out):
            print(path)
    elif args.command == "snapshot":
        args.out.mkdir(parents=True, exist_ok=True)
        for model in all_models():
            path = args.out / f"{model.name}.v{model.version}.json"
            if not path.exists():
                path.write_text(dumps(json_schema(model)))
                print(f"added {path}")
    elif args.command == "asyncapi":
        json.dump(asyncapi(), sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for model in all_models():
            print(f"{model.type_name():50} {model.kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
