"""How many buttons one message shows on each channel: the one table outbound checks a send
against and flows checks a flow's menus against when it is saved (a menu its channel
cannot show would be published and fail every run at its send)."""

from __future__ import annotations

from switchboard.events.catalog.common import Channel

# A Telegram bot has no limit checked here; a generic webhook sends nothing.
MAX_BUTTONS: dict[Channel, int] = {
    Channel.WHATSAPP: 10,  # an interactive list's rows (1-3 go out as reply buttons)
    Channel.VIBER: 24,  # Viber's keyboard: 1-24 Buttons (the sandbox's fake refuses more)
    Channel.MTPROTO: 0,  # a Telegram user account: keyboards are a bot's
}

# The text above buttons, where it is shorter than a text alone (WhatsApp: an interactive
# message's body, 1024 characters against a text's 4096).
BODY_MAX: dict[Channel, int] = {Channel.WHATSAPP: 1024}

NO_KEYBOARDS = "Telegram user accounts cannot attach keyboards (bots only)"
_NAMES = {Channel.WHATSAPP: "WhatsApp", Channel.VIBER: "a Viber keyboard"}


def buttons_problem(channel: Channel, count: int, text: int = 0) -> str | None:
    """Why ``count`` buttons (under a text of ``text`` characters) cannot go in one message
    on ``channel``, or None."""
    if count and text > (body := BODY_MAX.get(channel, text)):
        return f"a {channel.value} text with buttons is at most {body} characters, not {text}"
    limit = MAX_BUTTONS.get(channel)
    if limit is None or count <= limit:
        return None
    if limit == 0:
        return NO_KEYBOARDS
    return f"{_NAMES[channel]} shows at most {limit} buttons, not {count}"
