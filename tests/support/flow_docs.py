"""Flow documents for tests, built from the parts that vary."""

from __future__ import annotations

from typing import Any


def keyword_flow(name: str, keyword: str, /, **steps: dict[str, Any]) -> dict[str, Any]:
    """A flow a message saying ``keyword`` starts, at its first step."""
    return {
        "name": name,
        "triggers": [{"type": "keyword", "keywords": [keyword]}],
        "start": next(iter(steps)),
        "steps": steps,
    }
