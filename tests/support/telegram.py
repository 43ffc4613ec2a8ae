"""Real-shaped Telegram Updates for tests."""

from __future__ import annotations

import time
from typing import Any


def text_update(
    update_id: int,
    text: str = "hello",
    *,
    chat_id: int = 555,
    user_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Ada",
    username: str = "ada",
) -> dict[str, Any]:
    user = {
        "id": user_id or chat_id,
        "is_bot": False,
        "first_name": first_name,
        "username": username,
        "language_code": "en",
    }
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id or update_id,
            "from": user,
            "chat": {
                "id": chat_id,
                "type": "private",
                "first_name": first_name,
                "username": username,
            },
            "date": int(time.time()),
            "text": text,
        },
    }
