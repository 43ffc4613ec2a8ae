"""Shared helpers of the deployment tests: paths, `kubectl kustomize`, schema validation,
`.dockerignore` matching and what a service's settings class needs from its environment."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.settings import CrmSettings
from switchboard.events.topology import SERVICES
from switchboard.flows.settings import FlowsSettings
from switchboard.ingest.settings import IngestSettings
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.settings import DatabaseSettings, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
CRDS = K8S / "crds"
NATS_VALUES = DEPLOY / "nats/values.yaml"
POSTGRES = DEPLOY / "postgres/cluster.yaml"
DOCKERFILE = ROOT / "docker/Dockerfile"
COMPOSE = ROOT / "docker/compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
GUIDE = ROOT / "docs/deploy.md"
# Kubernetes versions the manifests must validate against: the oldest the guide supports
# and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())

# The settings class of each service. New services add one line; a test checks that every
# service of the topology has one.
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "crm": CrmSettings,
    "outbound": OutboundSettings,
    "mtproto": MtprotoSettings,
    "analytics": AnalyticsSettings,
    "flows": FlowsSettings,
}


def tool(name: str) -> str:
    """A console script installed in this environment (kubectl, hadolint, checkov)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{name} is not installed: run `uv sync` (root dev group)")
    return str(path)


@functools.cache
def _build(path: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def build(overlay: str) -> list[dict[str, Any]]:
    """The rendered resources of ``overlays/<overlay>`` (or ``base``); a deep copy each time."""
    path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
    docs: list[dict[str, Any]] = json.loads(json.dumps(_build(path)))
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ----------------------------------------------------------------------------- validation


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the vendored JSON Schema of a custom resource."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        props = schema["properties"]
        schemas[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    return schemas


def validation_errors(doc: dict[str, Any], k8s_version: str) -> list[str]:
    """Problems of one resource: built-in kinds against the Kubernetes schemas (strict),
    custom resources against the vendored CRD subsets. Unknown kinds are a problem too."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    name = f"{key[1]}/{doc.get('metadata', {}).get('name')}"
    schema = crd_schemas().get(key)
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        return [
            f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {key[0]} {key[1]} (vendor its CRD under deploy/k8s/crds)"]
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(map(str, exc.absolute_path))
        return [f"{name} (k8s {k8s_version}): {path}: {exc.message}"]
    return []


# ----------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(exclude?, pattern) in file order, as Docker reads them."""
    rules: list[tuple[bool, str]] = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = os.path.normpath(pattern.strip("/")).replace(os.sep, "/")
        rules.append((not negate, pattern))
    return rules


def _segment(segment: str) -> str:
    """One path segment of a Go ``filepath.Match`` pattern as a regex (``*`` stops at /)."""
    out, i = "", 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and "]" in segment[i:]:
            j = segment.index("]", i)
            body = segment[i + 1 : j]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return out


@functools.cache
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern: ``filepath.Match`` per segment, ``**`` any directories."""
    regex = ""
    for segment in pattern.split("/"):
        regex += "(?:.*/)?" if segment == "**" else _segment(segment) + "/"
    return re.compile("^" + regex.removesuffix("/") + "$")


def docker_excluded(rel: str) -> bool:
    """Would Docker leave ``rel`` out of the build context? Rules apply in order, the last
    that matches the path or one of its parent directories wins (moby/patternmatcher)."""
    parts = rel.split("/")
    paths = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    excluded = False
    for exclude, pattern in dockerignore_patterns():
        if any(_pattern_regex(pattern).match(p) for p in paths):
            excluded = exclude
    return excluded


def context_files() -> Iterator[str]:
    """Every file of the checkout Docker would send as the build context."""
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".git/", ".venv/", ".data/")) or not path.is_file():
            continue
        if not docker_excluded(rel):
            yield rel


# ----------------------------------------------------------------------------- settings


def field_env_names(cls: type[ServiceSettings], field: str) -> tuple[str, str]:
    """The two names a setting is read from: service-specific, then shared."""
    return (f"SWITCHBOARD_{cls.service.upper()}_{field.upper()}", f"SWITCHBOARD_{field.upper()}")


def env_field(cls: type[ServiceSettings], env: str) -> str | None:
    """The settings field an environment variable sets, or None when it sets nothing. A
    nested model's member (``SWITCHBOARD_OBJECTS__LOCAL_DIR``, the ``__`` delimiter) sets its
    field when the member exists."""
    for field in cls.model_fields:
        if env in field_env_names(cls, field):
            return field
        for name in field_env_names(cls, field):
            member = env.upper().removeprefix(name.upper() + "__")
            model = cls.model_fields[field].annotation
            nested = isinstance(model, type) and issubclass(model, BaseModel)
            if nested and member != env.upper() and member.lower() in model.model_fields:
                return field
    return None


def _local_default(info: FieldInfo) -> bool:
    default = info.get_default(call_default_factory=False)
    return isinstance(default, str) and ("127.0.0.1" in default or "localhost" in default)


def needed_in_container(cls: type[ServiceSettings]) -> set[str]:
    """Fields a container must set: the required ones, and those whose default points at
    this machine (NATS, Postgres, the listen address), which is wrong in a container."""
    return {
        name
        for name, info in cls.model_fields.items()
        if info.is_required() or _local_default(info)
    }


def is_secret_field(cls: type[ServiceSettings], field: str) -> bool:
    """Settings that must come from a Secret: SecretStr fields, and keys/tokens/passwords."""
    info = cls.model_fields[field]
    text = f"{info.annotation}"
    return "SecretStr" in text or any(
        w in field for w in ("key", "secret", "token", "password", "database_url")
    )


def uses_postgres(cls: type[ServiceSettings]) -> bool:
    return issubclass(cls, DatabaseSettings)


def services() -> list[str]:
    return [s.name for s in SERVICES]
