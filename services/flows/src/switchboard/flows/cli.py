"""``switchboard flows ...`` (also ``switchboard-flows``): manage flow documents over the API.

``validate FILE`` checks a document locally; ``push FILE`` creates a flow (or a revision with
``--flow``) and ``--publish`` makes it live; ``demo`` publishes the demo flow once. A FILE
is JSON, or YAML when it ends in ``.yaml`` / ``.yml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from switchboard.flows.demo import DEMO_FLOW, DEMO_NAME
from switchboard.flows.document import InvalidFlowError, parse, validate


def _load(path: str) -> Any:
    is_yaml = Path(path).suffix.lower() in (".yaml", ".yml")
    return parse(Path(path).read_text(), "application/yaml" if is_yaml else "application/json")


def _problems(exc: InvalidFlowError) -> int:
    for p in exc.problems:
        print(f"{p['path']}: {p['reason']}", file=sys.stderr)
    return 1


def push(http: httpx.Client, doc: Any, flow_id: str | None, publish: bool) -> dict[str, Any]:
    r = http.put(f"/v1/flows/{flow_id}", json=doc) if flow_id else http.post("/v1/flows", json=doc)
    if r.status_code >= 400:
        raise SystemExit(f"{r.status_code}: {r.text}")
    body: dict[str, Any] = r.json()
    if publish:
        r = http.post(f"/v1/flows/{body['id']}/publish", json={"revision": body["latest_revision"]})
        if r.status_code >= 400:
            raise SystemExit(f"{r.status_code}: {r.text}")
        body = r.json()
    return body


def demo(http: httpx.Client) -> dict[str, Any]:
    """Publish the demo flow unless a flow of that name exists already."""
    r = http.get("/v1/flows")
    r.raise_for_status()
    for item in r.json()["items"]:
        if item["name"] == DEMO_NAME:
            return dict(item)
    return push(http, DEMO_FLOW, None, publish=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard flows", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8085", help="the flows API")
    parser.add_argument("--api-key", default="demo-key", help="an API key of the workspace")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a flow document (JSON or YAML) locally")
    v.add_argument("file")
    p = sub.add_parser("push", help="create a flow or a new revision of one")
    p.add_argument("file")
    p.add_argument("--flow", help="the flow to revise (default: a new flow)")
    p.add_argument("--publish", action="store_true", help="make the new revision live")
    sub.add_parser("demo", help="publish the demo flow (once)")
    args = parser.parse_args(argv)
    if args.command == "validate":
        try:
            validate(_load(args.file))
        except InvalidFlowError as exc:
            return _problems(exc)
        print("valid")
        return 0
    headers = {"Authorization": f"Bearer {args.api_key}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=10) as http:
        if args.command == "push":
            try:
                doc = _load(args.file)
            except InvalidFlowError as exc:
                return _problems(exc)
            result = push(http, doc, args.flow, args.publish)
        else:
            result = demo(http)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
