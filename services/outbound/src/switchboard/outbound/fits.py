"""Whether a send's content fits its channel before anything is queued: the one check of
the send route, the calendar and campaigns (a problem naming the field, or None)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import SendMessage, StartCampaign
from switchboard.outbound.media_limits import media_items
from switchboard.outbound.providers import mtproto, telegram, viber, whatsapp
from switchboard.outbound.text_limits import too_long
from switchboard.runtime.http import ProblemResponse, error

# What each channel's client refuses without a call (the same function refuses a command
# from the bus): asked here first, a send it cannot carry was a 202 and a delivery.failed.
UNSENDABLE: dict[Channel, Callable[[SendMessage], tuple[str, str] | None]] = {
    Channel.TELEGRAM: telegram.unsendable,
    Channel.WHATSAPP: whatsapp.unsendable,
    Channel.VIBER: viber.unsendable,
    Channel.MTPROTO: mtproto.unsupported,
}


@dataclass(frozen=True)
class Unfit:
    """Why a send's content does not fit its channel: a code, a sentence, the field."""

    code: str
    detail: str
    field: str

    def response(self) -> ProblemResponse:
        return error(422, self.code, self.detail, field=self.field)


def unfit_because(cmd: SendMessage) -> Unfit | None:
    """Content the channel cannot send (a kind, keyboard or reply it has no form for, a
    file by a URL that is not http(s)) or a text over its provider's limit; None when it
    fits."""
    check = UNSENDABLE.get(cmd.channel)
    if check is not None and (problem := check(cmd)) is not None:
        return Unfit("unsupported_content", problem[1], problem[0])
    for where, item in media_items(cmd):
        url = item.source.url
        if url is not None and urlsplit(url).scheme.lower() not in ("http", "https"):
            return Unfit("invalid_url", f"{where}.url: a provider fetches files by http(s) "
                         "URLs only", f"{where}.url")  # fmt: skip
    if (long := too_long(cmd)) is not None:
        return Unfit("too_long", long.reason, long.field)
    return None


def unfit(cmd: SendMessage) -> ProblemResponse | None:
    """:func:`unfit_because` as the route's 422."""
    found = unfit_because(cmd)
    return None if found is None else found.response()


def campaign_unfit(cmd: StartCampaign) -> Unfit | None:
    """Why a campaign's content does not fit one of the channels it sends on (its own and
    its pool's), or None: asked by the route (a 422) and for a start from the bus."""
    for channel in dict.fromkeys((cmd.channel, *(m.channel for m in cmd.pool))):
        sample = SendMessage(
            message_id="campaign",
            channel=channel,
            account="pool",
            recipient="pool",
            content=cmd.content,
            keyboard=cmd.keyboard,
        )
        if (found := unfit_because(sample)) is not None:
            return found
    return None


def never_leaves(cmd: SendMessage, now: datetime) -> ProblemResponse | None:
    """A 422 naming ``expires_at`` when the send could never leave (it expires before it is
    due, or has already expired: it would only fail ``expired`` later); None otherwise."""
    if cmd.expires_at is None:
        return None
    if cmd.expires_at <= now:
        return error(422, "invalid_message", "expires_at: is in the past", field="expires_at")
    if cmd.not_before is not None and cmd.expires_at <= cmd.not_before:
        return error(422, "invalid_message", "expires_at: not after not_before: the send "
                     "would expire before it is due", field="expires_at")  # fmt: skip
    return None
