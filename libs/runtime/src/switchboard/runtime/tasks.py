"""Ending tasks for certain: cancel, and cancel again until they have ended.

A single cancel can be lost in Python 3.11: ``asyncio.wait_for`` returns the result of a
call that completes as the cancel arrives (python/cpython#86296), nats-py wraps every
request in it, and Telethon's own helper swallows a cancel. A task looping around such a call
then runs on, and whoever awaited its end after one cancel waited for ever: an MTProto
session's wind-down after a drop hung so, and the session stayed down under a lease it
kept renewing. Our own code uses ``asyncio.timeout`` instead (ruff bans ``wait_for`` in
``src``), but only a second cancel ends a task that a library's lost one left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
AGAIN_AFTER_S = 1.0  # a cancel not taken within this long is taken to be lost


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]], *, again_after_s: float = AGAIN_AFTER_S
) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling a task again each
    ``again_after_s`` it runs on (a cleanup that awaits longer than that is cut short, as
    the projection's producer always was). Their results and errors are dropped (retrieved,
    so asyncio does not log them as never retrieved); a cancel of the caller is raised
    after the tasks have ended."""
    ended = list(tasks)
    pending = {task for task in ended if not task.done()}
    interrupted: asyncio.CancelledError | None = None
    while pending:
        for task in pending:
            task.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=again_after_s)
        except asyncio.CancelledError as exc:
            interrupted = exc  # finish ending them first: nothing may outlive this call
            continue
        for task in pending:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.warning("a task ran on after its cancel; cancelling it again", task=name)
    for task in ended:
        if not task.cancelled():
            task.exception()
    if interrupted is not None:
        raise interrupted
