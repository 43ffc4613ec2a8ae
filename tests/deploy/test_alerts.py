"""The alerts: the PrometheusRule ships in every overlay with the same rules as the plain rules
file, every alert fires on recorded series (`promtool test rules`), every metric a rule reads
is one the services really export, and every alert links to a runbook section that exists."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.deploy.support import DEPLOY, OVERLAYS, ROOT, build, find, one
from tests.support.scripts import load_script

RULES = DEPLOY / "prometheus/switchboard-alerts.yaml"
RULES_TEST = Path(__file__).with_name("alerts.test.yaml")
RENDER = DEPLOY / "prometheus/to_prometheusrule.py"
RUNBOOKS = ROOT / "docs/runbooks.md"
# The modules whose import registers every metric the services export.
EXPORTERS = (
    "switchboard.runtime.service",
    "switchboard.ingest.app",
    "switchboard.crm.app",
    "switchboard.outbound.app",
    "switchboard.mtproto.app",
    "switchboard.analytics.app",
)
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return rules


def _alerts(groups: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in groups["groups"] for r in g["rules"] if "alert" in r]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: apt-get install prometheus (just test installs it)")
    return path


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_every_build_ships_the_rules_file_as_a_prometheusrule(overlay: str) -> None:
    rule = one(build(overlay), "PrometheusRule", "switchboard-alerts")
    assert rule["spec"] == _rules(), "prometheusrule.yaml's spec must equal the rules file"
    assert len(find(build(overlay), "PrometheusRule")) == 1


def test_the_prometheusrule_file_is_generated_from_the_rules_file() -> None:
    render = load_script(str(RENDER.relative_to(ROOT)), "to_prometheusrule")
    assert render.TARGET.read_text() == render.render(_rules()), "run `just alerts`"


def test_at_least_twelve_alerts_each_with_a_runbook_section() -> None:
    alerts = _alerts(_rules())
    assert len(alerts) >= 12
    assert len({a["alert"] for a in alerts}) == len(alerts), "alert names are unique"
    anchors = _anchors(RUNBOOKS.read_text())
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/runbooks.md"), (alert["alert"], url)
        assert anchor in anchors, f"{alert['alert']}: no section #{anchor} in docs/runbooks.md"
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert {"summary", "description"} <= set(alert["annotations"])


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_recorded_series(tmp_path: Path) -> None:
    """`promtool test rules` on alerts.test.yaml, which must fire every alert at least once.
    Annotations are left out of the comparison (their templates are checked above)."""
    rules = _rules()
    for alert in _alerts(rules):
        alert.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    cases = yaml.safe_load(RULES_TEST.read_text())
    cases["rule_files"] = ["rules.yaml"]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(cases))
    fired = {
        t["alertname"]
        for case in cases["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    assert fired == {a["alert"] for a in _alerts(rules)}, "every alert needs a test that fires it"
    result = subprocess.run(
        [_promtool(), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _exported() -> set[str]:
    for module in EXPORTERS:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


# Series Prometheus makes itself for every scrape target (no service exports them).
PROMETHEUS_OWN = {"up"}


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bswitchboard_[a-z0-9_]+", expr))


def _reads_only_prometheus_own(expr: str) -> bool:
    return bool(re.match(r"^\s*(" + "|".join(PROMETHEUS_OWN) + r")\{", expr))


def test_every_metric_a_rule_reads_is_exported_by_a_service() -> None:
    exported = _exported()
    for alert in _alerts(_rules()):
        names = _metric_names(alert["expr"])
        assert names or _reads_only_prometheus_own(alert["expr"]), alert["alert"]
        for name in names:
            base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
            assert name in exported or base in exported, f"{alert['alert']}: {name}"


def test_a_renamed_metric_is_caught() -> None:
    """The check above bites: a metric nobody exports is reported."""
    exported = _exported()
    assert "switchboard_consumer_pending_messages" in exported
    assert "switchboard_consumer_pending_msgs" not in exported
