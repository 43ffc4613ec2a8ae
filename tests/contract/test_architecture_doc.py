"""``docs/architecture.md`` is generated from the declarations that run the system and is
checked here: regenerated, it must equal the file; every handler and decision it names must
exist; every consumer must name its handler (so a new one cannot be left out of the table)."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    return load_script("docs/generate_architecture.py", "generate_architecture")


def test_the_architecture_document_is_up_to_date() -> None:
    gen = _generator()
    assert (ROOT / "docs" / "architecture.md").read_text() == gen.render(), (
        "docs/architecture.md is stale: run uv run python docs/generate_architecture.py"
    )


def test_every_declared_handler_and_decision_exists() -> None:
    gen = _generator()
    missing = []
    for reader in gen.readers():
        for ref in (*reader.handlers, *reader.decides):
            try:
                obj = gen.resolve(ref)
            except (ImportError, AttributeError):
                missing.append(ref)
                continue
            assert callable(obj), ref
    assert missing == []


def test_every_consumer_names_its_handler() -> None:
    unnamed = [f"{r.service}/{r.consumer}" for r in _generator().readers() if not r.handlers]
    assert unnamed == []


def test_declared_decisions_are_plain_functions() -> None:
    """A decision is a function of its inputs: not a coroutine (it does no I/O)."""
    gen = _generator()
    coroutines = [
        ref
        for r in gen.readers()
        for ref in r.decides
        if inspect.iscoroutinefunction(gen.resolve(ref))
    ]
    assert coroutines == []
