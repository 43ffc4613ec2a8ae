"""What WhatsApp can carry under buttons, as the send route and the client check it (the
limits come from runtime.button_limits and runtime.media_kinds, which flows reads too)."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.providers.whatsapp import unsendable


def _send(content: dict[str, Any], buttons: int) -> SendMessage:
    rows = [[{"text": f"B{n}", "callback_data": f"b{n}"}] for n in range(buttons)]
    return SendMessage.model_validate(
        {"message_id": "m", "channel": "whatsapp", "account": "a", "recipient": "15550001",
         "content": content, "keyboard": {"rows": rows}}
    )  # fmt: skip


def _file(kind: str, caption: str | None = "Look") -> dict[str, Any]:
    return {"kind": kind, "source": {"url": "https://cdn.example.com/f"}, "caption": caption}


@pytest.mark.parametrize(
    ("content", "buttons", "reason"),
    [
        ({"kind": "text", "text": "Pick"}, 10, None),
        ({"kind": "text", "text": "Pick"}, 11, "WhatsApp shows at most 10 buttons, not 11"),
        (_file("photo"), 3, None),
        (_file("animation"), 2, None),  # sent as a video: a header it may carry
        (_file("photo"), 4, "list messages (4-10 buttons) cannot carry media"),
        (_file("audio"), 1, "buttons with media need an image, video or document and a caption"),
        (_file("photo", None), 1, "buttons with media need an image, video or document and a "
         "caption"),
    ],
)  # fmt: skip
def test_buttons_whatsapp_can_and_cannot_show(
    content: dict[str, Any], buttons: int, reason: str | None
) -> None:
    found = unsendable(_send(content, buttons))
    assert found == (None if reason is None else ("keyboard", reason))
