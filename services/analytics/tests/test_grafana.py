"""The Grafana dashboard in deploy/grafana queries metrics the services really export, and
shows every business metric of the analytics service (its service-health row reads the
runtime's vitals and the outbound and mtproto metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import switchboard.analytics.metrics as business
import switchboard.mtproto.metrics as sessions
import switchboard.outbound.app as outbound
import switchboard.runtime.metrics as technical
import switchboard.runtime.vitals as vitals

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/switchboard-business.json"
SUFFIXES = ("_bucket", "_total", "_count", "_sum")


def _exported() -> set[str]:
    names: set[str] = set()
    for collector in (business, technical, vitals, outbound, sessions):
        assert collector  # imported for its registrations
    for metric in REGISTRY.collect():
        names.add(metric.name)
        for sample in metric.samples:
            names.add(sample.name)
    return names


def test_every_panel_queries_exported_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exported = _exported()
    used: set[str] = set()
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"switchboard_[a-z_]+", target["expr"]))
            assert names, panel["title"]
            for name in names:
                base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
                assert name in exported or base in exported, (panel["title"], name)
            used |= names
    business_metrics = {
        m.name for m in REGISTRY.collect() if m.name.startswith("switchboard_analytics_")
    }
    unused = {m for m in business_metrics if not any(u.startswith(m) for u in used)}
    assert unused == set()
