"""Routing shared by catalog messages of several domains."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchboard.events.catalog.common import Channel


class ChannelRouted:
    """Mixin (before ``Event``/``Command``) for a message routed by its channel account: the
    subject tokens are ``<channel>.<account>``. The model declares both fields itself, so
    its field order (the schema's) stays its own."""

    if TYPE_CHECKING:
        channel: Channel
        account: str

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.channel.value, self.account)
