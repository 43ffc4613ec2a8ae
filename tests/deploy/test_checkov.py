"""Security policy scan with checkov: the rendered overlays, the Postgres cluster and the
Dockerfile. Findings must be exactly the ones accepted (with reasons) in deploy/k8s/CHECKOV.md:
a new finding fails, and so does an accepted one that no longer occurs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.support import DOCKERFILE, K8S, OVERLAYS, POSTGRES, build, tool

ACCEPTED = K8S / "CHECKOV.md"


def _accepted() -> set[str]:
    return set(re.findall(r"^\| (CKV2?_[A-Z0-9]+_\d+) \|", ACCEPTED.read_text(), re.M))


def test_checkov_findings_are_exactly_the_accepted_ones(tmp_path: Path) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    for overlay in OVERLAYS:
        (scan / f"{overlay}.yaml").write_text(yaml.safe_dump_all(build(overlay), sort_keys=False))
    shutil.copy(POSTGRES, scan / "postgres.yaml")
    shutil.copy(DOCKERFILE, scan / "Dockerfile")
    result = subprocess.run(
        [
            tool("checkov"),
            "--directory", str(scan),
            "--framework", "kubernetes", "dockerfile",
            "--skip-download",  # offline: no policy or guideline download
            "--quiet", "--compact",
            "--output", "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BC_SKIP_MAPPING": "TRUE",
             "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "ERROR"},
    )  # fmt: skip
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}, result.stderr
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["check_type"]
        assert report["summary"]["passed"] > 0, report["check_type"]
    failed = {
        (f["check_id"], f["resource"]) for r in reports for f in r["results"]["failed_checks"]
    }
    new = sorted(f for f in failed if f[0] not in _accepted())
    assert new == [], f"new checkov findings (fix, or accept with a reason in {ACCEPTED.name})"
    stale = sorted(_accepted() - {check for check, _ in failed})
    assert stale == [], f"accepted in {ACCEPTED.name} but no longer found: remove them"
