"""getFile: the download path of a file the bot knows."""

from __future__ import annotations

from typing import Any

from switchboard.sandbox.telegram.errors import bad_request
from switchboard.sandbox.telegram.methods.base import Call, method


@method("getFile")
async def get_file(call: Call) -> Any:
    file_id = call.params.required("file_id")
    stored = call.bot.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    if stored.size > call.state.config.max_download:
        raise bad_request("file is too big")
    return stored.file_object()
