"""Writes ``docs/asyncapi/<service>.json``: each service's consumers as an AsyncAPI 3.0
document, built by FastStream from the same ``Subscription`` declarations the service runs
(``switchboard.runtime.subscribers``); each message refers to the catalog's JSON Schemas.

A script rather than a ``switchboard-events`` subcommand: the catalog and the runtime may not
import the services, this needs their declarations. ``tests/contract/test_asyncapi_docs.py``
regenerates the documents and fails when one is stale, and checks that the services declare
exactly the durables of the topology.

    uv run python docs/generate_asyncapi.py          # rewrite docs/asyncapi/
    uv run python docs/generate_asyncapi.py --check  # exit 1 when a document is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from switchboard.events.schemas import dumps
from switchboard.events.topology import SERVICES
from switchboard.runtime.subscribers import asyncapi, declared

OUT = Path(__file__).resolve().parent / "asyncapi"


def documents() -> dict[str, str]:
    """File name -> content of every service's document."""
    return {f"{svc.name}.json": dumps(asyncapi(svc.name, declared(svc.name))) for svc in SERVICES}


def main(argv: list[str]) -> int:
    wanted = documents()
    if "--check" in argv:
        stale = [
            name
            for name, text in wanted.items()
            if not (OUT / name).exists() or (OUT / name).read_text() != text
        ]
        stale += [p.name for p in OUT.glob("*.json") if p.name not in wanted]
        for name in stale:
            print(f"docs/asyncapi/{name} is stale: run uv run python docs/generate_asyncapi.py")
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name, text in wanted.items():
        path = OUT / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for path in OUT.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
