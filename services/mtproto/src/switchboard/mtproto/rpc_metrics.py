"""Metrics by MTProto method for a Telethon client: latency histogram per TL method and
error counts per RPC error name, plus the depth of the clients' live-update queues.

Every request a ``TelegramClient`` makes, its high-level helpers' included
(``get_entity``, ``send_message``, ``sign_in``), goes through ``client._call``; wrapping
that one method per client measures them all under Telegram's own method names.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

from telethon import TelegramClient

from switchboard.mtproto.metrics import RPC_ERRORS, RPC_LATENCY, UPDATE_QUEUE_DEPTH

_QUEUES: weakref.WeakSet[Any] = weakref.WeakSet()


def method_name(request: Any) -> str:
    """Telegram's name of a TL request: ``GetHistoryRequest`` in ``functions.messages`` ->
    ``messages.getHistory``; a list of requests is named by its first."""
    if isinstance(request, list | tuple):
        return method_name(request[0]) if request else "batch"
    name = type(request).__name__.removesuffix("Request")
    name = name[:1].lower() + name[1:]
    module = type(request).__module__.rsplit(".", 1)[-1]
    return name if module == "functions" else f"{module}.{name}"


def instrument(client: TelegramClient, error_label: Callable[[BaseException], str]) -> None:
    """Measure every request of ``client``; ``error_label`` names a failure (the RPC error
    name with its number as X, so labels stay few)."""
    call = client._call

    async def measured(sender: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        method = method_name(request)
        started = time.perf_counter()
        try:
            return await call(sender, request, *args, **kwargs)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                RPC_ERRORS.labels(method, error_label(exc)).inc()
            raise
        finally:
            RPC_LATENCY.labels(method).observe(time.perf_counter() - started)

    client._call = measured


def watch_queue(owner: Any) -> None:
    """Count ``owner._queue`` (its live updates not yet read) in the queue-depth gauge for
    as long as the owner lives."""
    _QUEUES.add(owner)


def _depth() -> float:
    return float(sum(owner._queue.qsize() for owner in list(_QUEUES)))


UPDATE_QUEUE_DEPTH.set_function(_depth)
