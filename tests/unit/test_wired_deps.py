"""``Wired``: the slot a composition root fills with its typed dependencies at start."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from switchboard.runtime.deps import NotStartedError, Wired


@dataclass(frozen=True)
class _Deps:
    name: str


def test_reading_before_start_names_the_service() -> None:
    slot: Wired[_Deps] = Wired("demo")
    with pytest.raises(NotStartedError, match="demo has not started"):
        slot()


def test_reads_what_start_set_and_a_restart_replaces_it() -> None:
    slot: Wired[_Deps] = Wired("demo")
    slot.set(_Deps("first"))
    assert slot().name == "first"
    slot.set(_Deps("second"))
    assert slot().name == "second"
