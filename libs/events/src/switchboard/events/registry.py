"""The registry of every (name, version) in the catalog, and the upcasters between versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from switchboard.events.base import Message
from switchboard.events.errors import CatalogError

M = TypeVar("M", bound=type[Message])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_MODELS: dict[tuple[str, int], type[Message]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UnknownMessageError(CatalogError, LookupError):
    """The (name, version) is not in the catalog."""


def register(name: str, version: int) -> Callable[[M], M]:
    """Class decorator: give a model its catalog name and version and register it."""

    def wrap(cls: M) -> M:
        key = (name, version)
        if key in _MODELS and _MODELS[key] is not cls:
            raise ValueError(f"{name} v{version} is registered twice")
        if not cls.__doc__ or not cls.__doc__.strip():
            raise ValueError(f"{cls.__name__} needs a docstring saying what it means")
        cls.name = name
        cls.version = version
        _MODELS[key] = cls
        return cls

    return wrap


def upcaster(name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning the JSON of ``name`` v``from_version`` into v+1."""

    def wrap(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(name, from_version)] = fn
        return fn

    return wrap


def model_for(name: str, version: int) -> type[Message]:
    """The model class of one (name, version)."""
    try:
        return _MODELS[(name, version)]
    except KeyError:
        raise UnknownMessageError(f"{name} v{version} is not in the event catalog") from None


def latest_version(name: str) -> int:
    """The highest registered version of ``name``."""
    versions = [v for (n, v) in _MODELS if n == name]
    if not versions:
        raise UnknownMessageError(f"{name} is not in the event catalog")
    return max(versions)


def upcast(name: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run the upcasters from ``version`` to the latest one; returns (version, data)."""
    target = latest_version(name)
    while version < target:
        step = _UPCASTERS.get((name, version))
        if step is None:
            raise UnknownMessageError(f"no upcaster from {name} v{version} to v{version + 1}")
        data = step(data)
        version += 1
    return version, data


def all_models() -> list[type[Message]]:
    """Every registered model, sorted by (name, version)."""
    return [_MODELS[k] for k in sorted(_MODELS)]
