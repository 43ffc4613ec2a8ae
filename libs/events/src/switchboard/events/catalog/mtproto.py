"""MTProto gateway events and commands: session lifecycle, login steps, subscriptions,
backfill progress and sends as a user (stream ``MTPROTO``). Messages read by sessions are
``conv.*`` events with channel ``mtproto``."""

from __future__ import annotations
