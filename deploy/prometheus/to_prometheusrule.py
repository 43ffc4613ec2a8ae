"""Write deploy/k8s/base/alerts/prometheusrule.yaml from switchboard-alerts.yaml (`just alerts`):
the operator's PrometheusRule carries the plain rules file's groups as its spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "switchboard-alerts.yaml"
TARGET = HERE.parent / "k8s/base/alerts/prometheusrule.yaml"
HEADER = (
    "# GENERATED from deploy/prometheus/switchboard-alerts.yaml by `just alerts`: edit that\n"
    "# file, not this one (tests/deploy/test_alerts.py fails while they differ).\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, as they are written in the rules file."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(rules: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "switchboard-alerts"},
        "spec": rules,
    }
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=200)


if __name__ == "__main__":
    TARGET.write_text(render(yaml.safe_load(RULES.read_text())))
    print(f"wrote {TARGET.relative_to(HERE.parents[1])}")
