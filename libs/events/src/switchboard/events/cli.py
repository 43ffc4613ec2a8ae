"""``switchboard-events``: export the catalog's JSON Schemas and AsyncAPI document, and the
deployment artefacts generated from it (NACK resources, NATS users and permissions)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from switchboard.events.k8s import render
from switchboard.events.registry import all_models
from switchboard.events.schemas import asyncapi, dumps, json_schema, write_schemas

DEFAULT_OUT = Path(__file__).resolve().parents[3] / "schemas"
_REPO = Path(__file__).resolve().parents[5]
DEFAULT_K8S_OUT = _REPO / "deploy/k8s/base/jetstream"
DEFAULT_NATS_VALUES = _REPO / "deploy/nats/values.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard-events", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    schemas = sub.add_parser("schemas", help="write libs/events/schemas/ (idempotent)")
    schemas.add_argument("--out", type=Path, default=DEFAULT_OUT)
    snap = sub.add_parser("snapshot", help="add missing compatibility snapshots (never rewrites)")
    snap.add_argument("--out", type=Path, required=True)
    sub.add_parser("asyncapi", help="print the AsyncAPI document")
    sub.add_parser("list", help="list every (name, version)")
    k8s = sub.add_parser(
        "k8s", help="write the NACK resources and the NATS Helm values (idempotent)"
    )
    k8s.add_argument("--out", type=Path, default=DEFAULT_K8S_OUT, help="NACK manifests dir")
    k8s.add_argument(
        "--nats-values",
        type=Path,
        default=None,
        help="NATS Helm values file to write (default: deploy/nats/values.yaml of this "
        "checkout when --out is the default; otherwise only written when given)",
    )
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
    elif args.command == "k8s":
        values = args.nats_values
        if values is None and args.out == DEFAULT_K8S_OUT:
            values = DEFAULT_NATS_VALUES
        for path in render(args.out, values):
            print(path)
    elif args.command == "asyncapi":
        json.dump(asyncapi(), sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for model in all_models():
            print(f"{model.type_name():50} {model.kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
