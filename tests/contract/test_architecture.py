"""The import-linter contracts are part of the suite, and they really bite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(
    config: Path, cwd: Path, extra_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = f"{extra_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), "--config", str(config), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _contracts() -> list[dict[str, object]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = data["tool"]["importlinter"]["contracts"]
    return contracts


def test_contracts_are_kept() -> None:
    result = _lint_imports(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_service_is_under_contract() -> None:
    services = {f"switchboard.{p.name}" for p in (ROOT / "services").iterdir() if p.is_dir()}
    independence = next(c for c in _contracts() if c["id"] == "services-independent")
    no_sandbox = next(c for c in _contracts() if c["id"] == "services-no-sandbox")
    assert services <= set(independence["modules"])  # type: ignore[arg-type]
    assert services <= set(no_sandbox["source_modules"])  # type: ignore[arg-type]


def test_a_deliberate_violation_fails(tmp_path: Path) -> None:
    """A new service that imports another service and the sandbox breaks the contracts."""
    pkg = tmp_path / "switchboard" / "violator"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import switchboard.crm.queries\nimport switchboard.sandbox\n")
    lines = ["[tool.importlinter]", 'root_packages = ["switchboard"]', ""]
    for contract in _contracts():
        contract = dict(contract)
        for key in ("modules", "source_modules"):
            if (
                contract["id"] in ("services-independent", "services-no-sandbox")
                and key in contract
            ):
                contract[key] = [*contract[key], "switchboard.violator"]  # type: ignore[misc]
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in contract.items()]
        lines.append("")
    config = tmp_path / "importlinter.toml"
    config.write_text("\n".join(lines))
    result = _lint_imports(config, tmp_path, extra_path=tmp_path)
    assert result.returncode != 0, result.stdout
    assert "Services never import each other BROKEN" in result.stdout
    assert "Services never import the sandbox (tests may) BROKEN" in result.stdout
    assert "switchboard.violator -> switchboard.crm" in result.stdout
