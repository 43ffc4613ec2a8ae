"""Ask the instance holding a session: a command on the session's subject, answered once on
a NATS inbox named in its ``reply-to`` header.

The command goes through JetStream (kept until the holder, whichever instance that is now,
pulls it from the session's durable consumer); the answer comes back on a plain inbox under
``_INBOX.mtproto`` (the only replies the gateway may publish). Outbound's sends through user
accounts (``mtproto.deliver``) and the CRM's file downloads (``mtproto.fetch_media``) both ask
this way.
"""

from __future__ import annotations

import uuid

from switchboard.events.base import Message
from switchboard.runtime.bus import Bus

REPLY_HEADER = "reply-to"
INBOX_PREFIX = "_INBOX.mtproto"


async def ask_holder(bus: Bus, command: Message, workspace_id: str, timeout: float) -> bytes:
    """Publish ``command`` and wait for its one answer (TimeoutError: nobody answered)."""
    nc = bus.nc
    inbox = f"{INBOX_PREFIX}.{uuid.uuid4().hex}"
    sub = await nc.subscribe(inbox, max_msgs=1)
    try:
        await bus.publish(command, headers={REPLY_HEADER: inbox}, workspace_id=workspace_id)
        answer = await sub.next_msg(timeout=timeout)
    finally:
        await sub.unsubscribe()
    return bytes(answer.data)
