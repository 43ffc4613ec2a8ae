"""What every provider's settings share: JSON form, checked partial updates, rate-limit sets.

A provider's config is a dataclass deriving from `ProviderSettings`: plain fields (numbers,
flags, names) and nested ones (its `RuleLimits`, a `RetryPolicy`, status settings). An
update is all or nothing for the plain fields: a candidate is built and checked first.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any, ClassVar, Self

from switchboard.sandbox.ratelimit import penalty_from_json, rule_from_json


def check_fractions(settings: object, *names: str) -> None:
    """ValueError naming the first of the attributes `names` of `settings` outside 0..1
    (a rate or share of events)."""
    for name in names:
        if not 0.0 <= getattr(settings, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")


def check_not_negative(settings: object, *names: str) -> None:
    """ValueError naming the first of the attributes `names` of `settings` below 0 (a delay
    or a count)."""
    for name in names:
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} cannot be negative")


class RuleLimits:
    """Base of a provider's rate limits: `enabled`, named rules (`None` disables one) and an
    optional `penalty` for repeat offenders; subclasses are dataclasses naming the rules."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            plain = item.name == "enabled" or value is None
            out[item.name] = value if plain else value.to_json()
        return out

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update (`{"bot": {"limit": 5, "window": 1}, "group": null}`)."""
        unknown = set(data) - {item.name for item in fields(self)}
        if unknown:
            raise ValueError(f"unknown limit names: {sorted(unknown)}")
        for name, value in data.items():
            if name == "enabled":
                self.enabled = bool(value)
            elif name == "penalty":
                self.penalty = penalty_from_json(value)
            else:
                setattr(self, name, rule_from_json(value))


class ProviderSettings:
    """Base of a provider's config dataclass: `to_json`, checked `update`, `from_dict`."""

    LABEL: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ValueError for settings the fake cannot honour (nothing by default)."""

    def _nested(self) -> set[str]:
        return {f.name for f in fields(self) if is_dataclass(getattr(self, f.name))}

    def to_json(self) -> dict[str, Any]:
        """Every setting, nested ones (limits, retries, status settings) as objects."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, RuleLimits):
                out[item.name] = value.to_json()
            elif is_dataclass(value) and not isinstance(value, type):
                out[item.name] = asdict(value)
            else:
                out[item.name] = value
        return out

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update; unknown names and values the fake cannot honour are
        a ValueError and change nothing of the plain settings."""
        names = {f.name for f in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown {self.LABEL} settings: {sorted(unknown)}")
        nested = self._nested()
        plain = (names - nested) & set(data)
        candidate = replace(self, **{name: data[name] for name in plain})
        for name in plain:
            setattr(self, name, getattr(candidate, name))
        for name in nested & set(data):
            value = data[name]
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a JSON object")
            current = getattr(self, name)
            if isinstance(current, RuleLimits):
                current.update(value)
            else:
                setattr(self, name, replace(current, **value))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        """Build from this provider's part of a sandbox JSON config."""
        config = cls()
        if data:
            config.update(dict(data))
        return config
