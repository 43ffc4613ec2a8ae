"""Metrics by method through the real Telethon adapter over the wire fake: every request
is timed under its TL method name, failures are counted by RPC error name, and the live
update queue's depth is a gauge."""

from __future__ import annotations

import asyncio
import weakref

import pytest
from prometheus_client import REGISTRY

from switchboard.mtproto import rpc_metrics
from switchboard.mtproto.ports import FloodWaitError, PeerNotFoundError
from switchboard.mtproto.rpc_metrics import method_name
from switchboard.runtime.testing import eventually

from .mtproto_support import Wire


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_method_names_are_telegrams() -> None:
    from telethon import functions, types

    assert method_name(functions.messages.GetHistoryRequest(
        types.InputPeerEmpty(), 0, None, 0, 1, 0, 0, 0)) == "messages.getHistory"  # fmt: skip
    assert method_name(functions.updates.GetStateRequest()) == "updates.getState"
    assert method_name(functions.PingRequest(1)) == "ping"
    assert method_name([functions.help.GetConfigRequest()]) == "help.getConfig"


async def test_latency_by_method_and_errors_by_rpc_name(wire: Wire) -> None:
    _, client = await wire.reader_of("Metrics", "metrics_wire", "15550007777")

    calls = sample("switchboard_mtproto_rpc_seconds_count", method="users.getUsers")
    missing = sample(
        "switchboard_mtproto_rpc_errors_total",
        method="contacts.resolveUsername",
        error="USERNAME_NOT_OCCUPIED",
    )
    floods = sample(
        "switchboard_mtproto_rpc_errors_total", method="messages.getHistory", error="FLOOD_WAIT_X"
    )
    await client.get_me()
    await client.get_me()
    assert sample("switchboard_mtproto_rpc_seconds_count", method="users.getUsers") == calls + 2
    with pytest.raises(PeerNotFoundError):
        await client.resolve_peer("@nobody_metrics")
    assert (
        sample(
            "switchboard_mtproto_rpc_errors_total",
            method="contacts.resolveUsername",
            error="USERNAME_NOT_OCCUPIED",
        )
        == missing + 1
    )
    peer = await client.resolve_peer("metrics_wire")
    wire.sandbox.mtproto.add_fault(method="messages.getHistory", seconds=7, times=1)
    with pytest.raises(FloodWaitError):
        await client.get_history(peer)
    assert (
        sample(
            "switchboard_mtproto_rpc_errors_total",
            method="messages.getHistory",
            error="FLOOD_WAIT_X",
        )
        == floods + 1
    )
    assert sample("switchboard_mtproto_rpc_seconds_count", method="messages.getHistory") >= 1


async def test_the_update_queue_depth_counts_updates_not_yet_read(
    wire: Wire,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gauge sums every live client's queue: clients of earlier tests in the process that
    # are collected (or receive updates) meanwhile moved it under a full run. Only this test's
    # client is counted here.
    monkeypatch.setattr(rpc_metrics, "_QUEUES", weakref.WeakSet())
    mtproto = wire.sandbox.mtproto
    channel, client = await wire.reader_of("Queue", "queue_wire", "15550008888")
    await client.resolve_peer("queue_wire")
    before = sample("switchboard_mtproto_update_queue_depth")
    mtproto.post(channel, "one")
    mtproto.post(channel, "two")

    async def queued() -> bool:
        return sample("switchboard_mtproto_update_queue_depth") == before + 2

    await eventually(queued, message="two updates queued")
    updates = client.updates()
    first = await asyncio.wait_for(anext(updates), 15)
    second = await asyncio.wait_for(anext(updates), 15)
    assert [first.message.text, second.message.text] == ["one", "two"]  # type: ignore[union-attr]
    assert sample("switchboard_mtproto_update_queue_depth") == before


def test_failures_are_labelled_by_rpc_name_or_exception_type() -> None:
    from telethon import errors

    from switchboard.mtproto.telethon_adapter import error_label

    assert error_label(errors.FloodWaitError(None, capture=5)) == "FLOOD_WAIT_X"
    assert error_label(errors.RPCError(None, "SOMETHING_NEW", 400)) == "SOMETHING_NEW"
    assert error_label(ConnectionResetError("gone")) == "ConnectionResetError"
