"""JSON Schema and AsyncAPI export of the catalog, and the compatibility rules between a
published schema snapshot and the current model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from switchboard.events.base import Message
from switchboard.events.registry import all_models
from switchboard.events.streams import STREAMS, stream_for_subject
from switchboard.events.subjects import command_subject, event_subject


def subject_pattern(model: type[Message]) -> str:
    """The wildcard subject every message of this (name, version) is published under."""
    build = command_subject if model.kind == "command" else event_subject
    return build(model.name, model.version) + ".>"


def json_schema(model: type[Message]) -> dict[str, Any]:
    """The JSON Schema of one (name, version), with its catalog coordinates."""
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = f"https://switchboard.dev/schemas/{model.name}.v{model.version}.json"
    schema["x-switchboard"] = {
        "name": model.name,
        "version": model.version,
        "kind": model.kind,
        "type": model.type_name(),
        "subject": subject_pattern(model),
        "stream": stream_for_subject(subject_pattern(model).removesuffix(".>") + ".x").name,
    }
    return schema


def dumps(document: dict[str, Any]) -> str:
    """Stable serialization so that regenerating changes nothing."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of every channel (subject) and message in the catalog."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in all_models():
        key = f"{model.name}.v{model.version}".replace(".", "_")
        messages[key] = {
            "name": model.type_name(),
            "title": model.__name__,
            "summary": " ".join((model.__doc__ or "").split()),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"$ref": f"schemas/{model.name}.v{model.version}.json"},
        }
        channels[key] = {
            "address": subject_pattern(model),
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "x-stream": json_schema(model)["x-switchboard"]["stream"],
        }
        operations[key] = {
            "action": "receive" if model.kind == "event" else "send",
            "channel": {"$ref": f"#/channels/{key}"},
        }
    header_names = (
        "ce-id",
        "ce-type",
        "ce-source",
        "ce-specversion",
        "ce-time",
        "ce-subject",
        "traceparent",
        "tracestate",
        "correlation-id",
        "causation-id",
        "workspace-id",
        "Nats-Msg-Id",
    )
    headers = {
        "type": "object",
        "required": ["ce-id", "ce-type", "ce-source", "ce-specversion", "Nats-Msg-Id"],
        "properties": {h: {"type": "string"} for h in header_names},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Switchboard events",
            "version": "1",
            "description": "Versioned events and commands on NATS JetStream. Streams: "
            + ", ".join(f"{s.name} ({' '.join(s.subjects)})" for s in STREAMS),
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "localhost:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {"CloudEventsHeaders": headers}},
    }


def write_schemas(out: Path) -> list[Path]:
    """Write one schema file per (name, version) plus ``asyncapi.json``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    wanted = {f"{m.name}.v{m.version}.json": json_schema(m) for m in all_models()}
    wanted["asyncapi.json"] = asyncapi()
    for stale in out.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for filename, document in wanted.items():
        path = out / filename
        text = dumps(document)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def incompatibilities(old: dict[str, Any], new: dict[str, Any], where: str = "") -> list[str]:
    """Why a payload valid under ``old`` might be invalid under ``new`` (empty: compatible).

    The rules of DESIGN §2: only optional fields may be added; nothing may be removed,
    become required, change type or lose an enum value. Definitions are compared by name.
    """
    problems: list[str] = []
    if where:  # a definition: its own type and enum count too
        problems += _compare_types(old, new, where.rstrip("."))
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in old_props:
        if name not in new_props:
            problems.append(f"{where}{name}: field removed")
    for name in set(new.get("required", ())) - set(old.get("required", ())):
        problems.append(f"{where}{name}: became required")
    for name, old_prop in old_props.items():
        new_prop = new_props.get(name)
        if new_prop is None:
            continue
        problems += _compare_types(old_prop, new_prop, f"{where}{name}")
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for def_name, old_def in old_defs.items():
        if def_name not in new_defs:
            problems.append(f"$defs.{def_name}: definition removed")
            continue
        problems += incompatibilities(old_def, new_defs[def_name], f"$defs.{def_name}.")
    if where == "" and old.get("x-switchboard", {}).get("subject") != new.get(
        "x-switchboard", {}
    ).get("subject"):
        problems.append("subject changed")
    return problems


def _compare_types(old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
    problems = []
    if "type" in old and "type" in new and old["type"] != new["type"]:
        problems.append(f"{where}: type {old['type']} -> {new['type']}")
    if "$ref" in old and old.get("$ref") != new.get("$ref"):
        problems.append(f"{where}: reference {old['$ref']} -> {new.get('$ref')}")
    if "enum" in old:
        lost = set(map(str, old["enum"])) - set(map(str, new.get("enum", old["enum"])))
        if lost:
            problems.append(f"{where}: enum values removed {sorted(lost)}")
    if "const" in old and new.get("const", old["const"]) != old["const"]:
        problems.append(f"{where}: const changed")
    for bound, tighter in (
        ("maxLength", min),
        ("minLength", max),
        ("maximum", min),
        ("minimum", max),
        ("maxItems", min),
        ("minItems", max),
    ):
        if bound in new and (bound not in old or tighter(old[bound], new[bound]) != old[bound]):
            problems.append(f"{where}: {bound} tightened")
    return problems
