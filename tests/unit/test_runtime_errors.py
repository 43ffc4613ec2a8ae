"""The runtime has one exception root, and the tree in ``runtime.errors`` names every
exception the runtime defines (so the documentation cannot fall behind the code)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import switchboard.runtime
from switchboard.runtime import errors
from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.settings import ConfigError

OUTSIDE = {ConfigError}  # a SystemExit: ends start-up, not meant to be caught


def _runtime_exceptions() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(switchboard.runtime.__path__, "switchboard.runtime."):
        if ".testing" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.add(obj)
    return found


def test_every_runtime_exception_has_the_one_root() -> None:
    found = _runtime_exceptions()
    assert len(found) > 10
    strays = sorted(
        e.__qualname__ for e in found - OUTSIDE if not issubclass(e, SwitchboardRuntimeError)
    )
    assert strays == []


def test_the_documented_tree_names_every_runtime_exception() -> None:
    doc = errors.__doc__ or ""
    missing = sorted(e.__qualname__ for e in _runtime_exceptions() if e.__qualname__ not in doc)
    assert missing == []


def test_near_synonyms_are_gone() -> None:
    names = {e.__qualname__ for e in _runtime_exceptions()}
    assert "LostLeadershipError" not in names
    assert "LeaseLostError" in names
