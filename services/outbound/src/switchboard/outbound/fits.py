"""Whether a send's content fits its channel before anything is queued: the one check of
the send route, the calendar and campaigns (a problem naming the field, or None)."""

from __future__ import annotations

from urllib.parse import urlsplit

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.media_limits import media_items
from switchboard.outbound.providers.mtproto import unsupported as user_unsupported
from switchboard.outbound.text_limits import too_long
from switchboard.runtime.http import ProblemResponse, error


def unfit(cmd: SendMessage) -> ProblemResponse | None:
    """A 422 for content the channel cannot send (a user account's unsupported kinds, a
    file by a URL that is not http(s)) or a text over its provider's limit; None when it
    fits."""
    if cmd.channel is Channel.MTPROTO and (problem := user_unsupported(cmd)) is not None:
        return error(422, "unsupported_content", problem[1], field=problem[0])
    for where, item in media_items(cmd):
        url = item.source.url
        if url is not None and urlsplit(url).scheme.lower() not in ("http", "https"):
            return error(422, "invalid_url", f"{where}.url: a provider fetches files by "
                         "http(s) URLs only", field=f"{where}.url")  # fmt: skip
    if (long := too_long(cmd)) is not None:
        return error(422, "too_long", long.reason, field=long.field)
    return None
