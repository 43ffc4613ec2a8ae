"""Routing shared by catalog messages of several domains."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

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


class ProviderRouted:
    """Mixin (before ``Event``/``Command``) for a message of one provider's account that is
    no channel (``metacapi``, ``sendpulse``): the subject tokens are ``<provider>.<account>``."""

    provider_name: ClassVar[str]

    if TYPE_CHECKING:
        account: str

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.provider_name, self.account)
