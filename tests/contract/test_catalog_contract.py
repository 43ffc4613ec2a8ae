"""The event catalog's public contract: every (name, version) has a frozen schema snapshot
and golden payloads, and no change may make an old payload undecodable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from switchboard.events import all_models, decode_message, encode, model_for
from switchboard.events.cli import main as events_cli
from switchboard.events.schemas import incompatibilities, json_schema

HERE = Path(__file__).parent
SNAPSHOTS = HERE / "snapshots"
GOLDEN = HERE / "golden"
KEYS = [f"{m.name}.v{m.version}" for m in all_models()]


def _snapshot(key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SNAPSHOTS / f"{key}.json").read_text())
    return data


@pytest.mark.parametrize("key", KEYS)
def test_every_message_has_a_snapshot_and_golden_payloads(key: str) -> None:
    assert (SNAPSHOTS / f"{key}.json").exists(), f"run `just schemas` to snapshot {key}"
    assert list((GOLDEN / key).glob("*.json")), f"add golden payloads under golden/{key}/"


@pytest.mark.parametrize("key", KEYS)
def test_current_schema_is_compatible_with_snapshot(key: str) -> None:
    name, _, version = key.rpartition(".v")
    current = json_schema(model_for(name, int(version)))
    assert incompatibilities(_snapshot(key), current) == []


@pytest.mark.parametrize(
    "path", sorted(GOLDEN.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_golden_payloads_decode_to_the_latest_version(path: Path) -> None:
    name, _, version = path.parent.name.rpartition(".v")
    headers = {
        "ce-id": "golden-1",
        "ce-type": f"switchboard.{name}.v{version}",
        "ce-source": "tests",
        "ce-specversion": "1.0",
    }
    decoded = decode_message("x", headers, path.read_bytes())
    assert decoded.wire_version == int(version)
    # and what the model writes back decodes to the same model
    again = encode(decoded.model, source="tests")
    assert decode_message(again.subject, again.headers, again.body).model == decoded.model


def test_no_snapshot_without_a_model() -> None:
    orphans = {p.stem for p in SNAPSHOTS.glob("*.json")} - set(KEYS)
    assert not orphans, f"versions removed from the catalog: {orphans} (old versions stay forever)"


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    """`just schemas` was run: regenerating into a temp dir gives the committed files."""
    committed = Path(__file__).resolve().parents[2] / "libs/events/schemas"
    events_cli(["schemas", "--out", str(tmp_path)])
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    on_disk = {p.name: p.read_text() for p in committed.glob("*.json")}
    assert generated == on_disk, "run `just schemas` and commit libs/events/schemas/"


def test_schemas_are_idempotent(tmp_path: Path) -> None:
    events_cli(["schemas", "--out", str(tmp_path)])
    first = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    events_cli(["schemas", "--out", str(tmp_path)])
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == first


def test_compatibility_rules_catch_breaking_changes() -> None:
    """The checker itself: each breaking change is named; adding an optional field is fine."""
    old = _snapshot("conv.message_received.v1")
    new = json.loads(json.dumps(old))
    assert incompatibilities(old, new) == []
    new["properties"]["mood"] = {"type": "string"}
    assert incompatibilities(old, new) == []
    removed = json.loads(json.dumps(old))
    del removed["properties"]["reply_to"]
    assert incompatibilities(old, removed) == ["reply_to: field removed"]
    required = json.loads(json.dumps(old))
    required["required"].append("reply_to")
    assert incompatibilities(old, required) == ["reply_to: became required"]
    enum = json.loads(json.dumps(old))
    enum["$defs"]["Channel"]["enum"].remove("viber")
    assert any("enum values removed ['viber']" in p for p in incompatibilities(old, enum))
