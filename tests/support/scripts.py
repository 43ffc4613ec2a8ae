"""The repository's scripts (docs generators, benchmarks, renderers) are files, not modules
of a package: this loads one as a module a test can call."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(path: Path, name: str) -> ModuleType:
    """A fresh module run from the script at ``path``, registered as ``name`` in
    ``sys.modules`` (dataclasses and pickling look a class's module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
