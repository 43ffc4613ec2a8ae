"""Event-sourced aggregates on JetStream subjects, one mechanism for every service.

An aggregate is the set of messages on a subject filter (e.g. ``crm.*.*.<id>``). Appends
carry the expected last sequence over that filter, so a writer that read a stale version
gets a :class:`ConflictError` instead of overwriting a concurrent change; loads read the
filter back in order.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import APIError, NotFoundError

from switchboard.events import Decoded, Envelope, Message, decode_message
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull, ConsumerError, stream_seq
from switchboard.runtime.errors import SwitchboardRuntimeError

WRONG_LAST_SEQUENCE = 10071
# A publish stored only if the last message on a subject is still the one read.
EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"


class ConflictError(SwitchboardRuntimeError):
    """The aggregate moved since it was read (expected version no longer current)."""

    def __init__(self, aggregate: str, expected: int) -> None:
        super().__init__(f"{aggregate} is no longer at version {expected}")
        self.aggregate = aggregate
        self.expected = expected


@dataclass(frozen=True)
class Stored:
    """A decoded message with its stream sequence (the aggregate's version after it)."""

    seq: int
    decoded: Decoded


async def append_expecting(
    bus: Bus,
    model: Message,
    subject_filter: str,
    expected: int,
    *,
    aggregate: str,
    cause: Envelope | None = None,
    workspace_id: str = "default",
    id: str | None = None,
) -> int:
    """Publish ``model`` if the last message on ``subject_filter`` is still ``expected``
    (0: nothing there yet); returns the new sequence."""
    headers = {
        EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected),
        "Nats-Expected-Last-Subject-Sequence-Subject": subject_filter,
    }
    try:
        ack = await bus.publish(
            model, cause=cause, headers=headers, id=id, workspace_id=workspace_id
        )
    except APIError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise ConflictError(aggregate, expected) from None
        raise
    return int(ack.seq)


async def last_stored(bus: Bus, stream: str, subject_filter: str) -> Stored | None:
    """The last message on ``subject_filter`` (one direct read), or None."""
    return await read_stored(bus.js.get_last_msg(stream, subject_filter))


async def read_stored(
    read: Awaitable[RawStreamMsg], keys: pii.PiiKeys | None = None
) -> Stored | None:
    """A message ``read`` directly from its stream (``get_msg``, ``get_last_msg``), its sealed
    personal data (CRM contacts, flow runs) opened with ``keys`` and decoded; None when the
    stream has no such message."""
    try:
        msg = await read
    except NotFoundError:
        return None
    data = await pii.open_data(msg.data, keys)
    decoded = decode_message(msg.subject or "", dict(msg.headers or {}), data)
    return Stored(int(msg.seq or 0), decoded)


async def read_filter(
    bus: Bus, stream: str, subject_filter: str, last_seq: int | None = None
) -> list[Stored]:
    """Every message on ``subject_filter`` in order, up to ``last_seq`` (default: the last
    one now); a short ordered read with an ephemeral consumer.

    Nothing acknowledges these deliveries, so one pushed to a pull request that had already
    expired (a slow answer under load) is gone: the read then resumes after the last message
    it got instead of returning a history with a hole in it.
    """
    if last_seq is None:
        try:
            last_seq = int((await bus.js.get_last_msg(stream, subject_filter)).seq or 0)
        except NotFoundError:
            return []
    out: list[Stored] = []
    for _ in range(READ_ATTEMPTS):
        start = out[-1].seq + 1 if out else 1
        await _read_from(bus, stream, subject_filter, start, last_seq, out)
        if out and out[-1].seq >= last_seq:
            return out
    raise TimeoutError(f"could not read {subject_filter} up to {last_seq} from {stream}")


READ_ATTEMPTS = 5


async def _read_from(
    bus: Bus, stream: str, subject_filter: str, start: int, last_seq: int, out: list[Stored]
) -> None:
    """Append to ``out`` what the filter holds from ``start`` to ``last_seq``; stops early at
    a lost delivery (BatchPull checks the gapless numbering), for the caller to resume."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        filter_subject=subject_filter,
        mem_storage=True,
        inactive_threshold=5.0,
    )
    pull = await BatchPull(bus, stream, config).start()  # ephemeral: deleted by close
    try:
        while True:
            try:
                msgs = await pull.fetch(256, timeout=1.0)
            except (TimeoutError, ConsumerError):
                return  # nothing more, or a delivery lost: resume after the last one read
            await pii.open_messages(msgs)  # sealed personal data (CRM contacts, flow runs)
            for m in msgs:
                seq = stream_seq(m)
                if seq <= last_seq:
                    decoded = decode_message(m.subject, dict(m.headers or {}), m.data)
                    out.append(Stored(seq, decoded))
            if stream_seq(msgs[-1]) >= last_seq:
                return
    finally:
        await pull.close()
