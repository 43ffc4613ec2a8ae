"""SDK helper for other teams: publish a catalog message on a JetStream context.

Takes any object with nats-py's ``JetStreamContext.publish`` signature, so this package
stays free of a NATS dependency.
"""

from __future__ import annotations

from typing import Any, Protocol

from switchboard.events.base import Message
from switchboard.events.codec import encode


class JetStreamPublisher(Protocol):
    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> Any: ...


async def publish(
    js: JetStreamPublisher, model: Message, *, source: str, timeout: float = 5.0, **envelope: Any
) -> Any:
    """Encode and publish ``model``, waiting for the JetStream ack (returns the PubAck).

    Publishing one event id twice at once on a replicated stream gets a 409 (err_code 10158,
    "duplicate message id is in process") for the later one: ask again a moment later, as
    ``switchboard.runtime.bus.Bus`` does, and the answer is a duplicate ack."""
    enc = encode(model, source=source, **envelope)
    return await js.publish(enc.subject, enc.body, timeout=timeout, headers=enc.headers)
