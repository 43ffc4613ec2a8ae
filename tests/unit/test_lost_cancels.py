"""A cancel that arrives as an awaited call completes is not lost, and a task that lost one
anyway (a library's ``asyncio.wait_for``) is still ended (python/cpython#86296)."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from switchboard.mtproto.ports import DisconnectedError, UserDeactivatedError
from switchboard.mtproto.runner import SessionRunner
from switchboard.mtproto.telethon_adapter import TelethonClient
from switchboard.runtime.tasks import cancel_and_wait


async def _answered_as_cancelled(run: Any) -> asyncio.Task[Any]:
    """A task inside ``run(call)``, cancelled in the same loop turn as ``call`` answers."""
    answer = asyncio.Event()

    async def call() -> str:
        await answer.wait()
        return "answer"

    task = asyncio.create_task(run(call()))
    for _ in range(3):  # into the call, waiting for its answer
        await asyncio.sleep(0)
    answer.set()
    task.cancel()
    return task


async def test_a_telethon_call_cancelled_as_it_answers_is_still_cancelled() -> None:
    """Every session loop awaits Telethon through ``_run``: with ``wait_for`` a cancel there
    was lost, and the loop ran on after its session had been wound down."""
    client: Any = SimpleNamespace(_timeout=5.0)
    task = await _answered_as_cancelled(lambda call: TelethonClient._run(client, call))
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_call_whose_request_telethon_cancels_answers_disconnected() -> None:
    """Telethon cancels the requests pending when its connection goes down (its update loop
    disconnects on a banned account). Raised as CancelledError, that ended the session's
    runner silently; it is the connection's end, with the reason when Telethon knows it."""
    loop = asyncio.get_running_loop()
    request: asyncio.Future[str] = loop.create_future()
    loop.call_soon(request.cancel)
    client: Any = SimpleNamespace(_timeout=5.0, _updates_error=lambda: None)
    with pytest.raises(DisconnectedError):
        await TelethonClient._run(client, request)
    banned = UserDeactivatedError("USER_DEACTIVATED_BAN")
    request = loop.create_future()
    loop.call_soon(request.cancel)
    client._updates_error = lambda: banned
    with pytest.raises(UserDeactivatedError):
        await TelethonClient._run(client, request)


async def test_the_fault_is_real_with_wait_for() -> None:
    """The test above would pass vacuously if the race did not lose a cancel: it does."""
    task = await _answered_as_cancelled(lambda call: asyncio.wait_for(call, 5))
    assert await task == "answer"


async def test_a_task_that_lost_its_cancel_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0
    rounds = 0

    async def loop_losing_two_cancels() -> None:
        nonlocal swallowed, rounds
        while True:
            rounds += 1
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if swallowed == 2:
                    raise
                swallowed += 1  # as a library's wait_for drops one

    task = asyncio.create_task(loop_losing_two_cancels(), name="stubborn")
    await asyncio.sleep(0)
    await cancel_and_wait([task], again_after_s=0.01)
    assert task.cancelled()
    assert (swallowed, rounds) == (2, 3)


async def test_ended_tasks_errors_are_retrieved_and_the_caller_s_cancel_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    may_end = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if may_end.is_set():
                    raise

    running = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    ending = asyncio.create_task(cancel_and_wait([failed, running], again_after_s=0.01))
    await asyncio.sleep(0.05)
    ending.cancel()  # the caller is cancelled while a task still runs
    await asyncio.sleep(0.05)
    assert not ending.done(), "nothing may outlive cancel_and_wait"
    may_end.set()
    with pytest.raises(asyncio.CancelledError):
        await ending
    assert running.cancelled()
    del failed  # collected: an error never retrieved would be logged now
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_session_runner_ended_by_a_stray_cancel_says_so() -> None:
    """A CancelledError nobody asked for (a library cancelled a future the runner awaited)
    ended the runner without a word, and its session flapped with no trace in the logs."""
    runner: Any = object.__new__(SessionRunner)
    released = asyncio.Event()

    async def stray() -> None:
        raise asyncio.CancelledError  # as a cancelled request's future raises it

    async def release() -> None:
        released.set()

    runner.session_id = "s1"
    runner._run = stray
    runner._set_connected = lambda value: None
    runner.lease = SimpleNamespace(release=release)
    runner.health = SimpleNamespace(forget=lambda name: None)
    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(SessionRunner._main(runner))
    assert released.is_set()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "session runner ended by a cancel of its own"
    ]
