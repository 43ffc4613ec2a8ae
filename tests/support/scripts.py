"""The repository's scripts (``bench/*.py``, ``docs/generate_*.py``) are files, not
packages: tests load them as modules by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str, name: str) -> ModuleType:
    """The script at ``ROOT / relative``, executed as module ``name``. It is registered in
    ``sys.modules`` first, as an import would, because dataclasses look their module up there."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
