"""Which files a message can carry by URL on each channel, and what else a channel needs
with them: the table outbound's Viber check reads before a send and flows reads when a
flow with a file is saved (a file its channel cannot take would fail every run)."""

from __future__ import annotations

from switchboard.events.catalog.common import Channel

FILE_KINDS = ("photo", "video", "audio", "voice", "document", "animation")

# Kinds sent by an http(s) URL. Viber sends pictures, videos and files only (PROTOCOLS.md).
BY_URL: dict[Channel, frozenset[str]] = {
    Channel.TELEGRAM: frozenset(FILE_KINDS),
    Channel.WHATSAPP: frozenset(FILE_KINDS),
    Channel.MTPROTO: frozenset(FILE_KINDS),
    Channel.VIBER: frozenset({"photo", "video", "document"}),
}
# A caption's characters (a user account's is not measured: Premium accounts take 2048).
CAPTION_MAX: dict[Channel, int] = {
    Channel.TELEGRAM: 1024,
    Channel.WHATSAPP: 1024,
    Channel.VIBER: 512,  # a picture message's text
}
# Kinds whose message states the file's size (Viber's video and file messages).
SIZED: dict[Channel, frozenset[str]] = {Channel.VIBER: frozenset({"video", "document"})}
# Kinds whose message has no text beside the file (a Viber file message has a name only).
UNCAPTIONED: dict[Channel, frozenset[str]] = {Channel.VIBER: frozenset({"document"})}
# Kinds that can carry buttons, and at most how many (WhatsApp: a media header on reply
# buttons; a list of 4-10 has none).
WITH_BUTTONS: dict[Channel, tuple[frozenset[str], int]] = {
    # an animation goes as a video
    Channel.WHATSAPP: (frozenset({"photo", "video", "animation", "document"}), 3),
}


def file_problems(
    channel: Channel, kind: str, *, sized: bool, caption: int, buttons: int
) -> list[tuple[str, str]]:
    """(field, reason) for each thing ``channel`` cannot send of a ``kind`` file by URL
    (with its size when ``sized``, a text of ``caption`` characters, ``buttons``
    buttons)."""
    problems: list[tuple[str, str]] = []
    captioned = caption > 0
    if caption > (most := CAPTION_MAX.get(channel, caption)):
        problems.append(("text", f"a {channel.value} caption is at most {most} characters"))
    if kind not in BY_URL.get(channel, frozenset()):
        problems.append(("kind", f"{channel.value} sends no {kind} by URL"))
    if kind in SIZED.get(channel, frozenset()) and not sized:
        problems.append(("size", f"{channel.value} needs a {kind}'s size in bytes"))
    if kind in UNCAPTIONED.get(channel, frozenset()) and captioned:
        problems.append(("text", f"a {channel.value} {kind} has no text beside it"))
    if buttons and channel in WITH_BUTTONS:
        kinds, most = WITH_BUTTONS[channel]
        if kind not in kinds or not captioned or buttons > most:
            problems.append(("buttons", f"{channel.value} puts at most {most} buttons under a "
                             f"captioned {', '.join(sorted(kinds))}"))  # fmt: skip
    return problems
