"""``python -m switchboard.mtproto``: run the MTProto gateway."""

from __future__ import annotations

from switchboard.mtproto.app import create_app
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.service import run_main
from switchboard.runtime.settings import load_settings


def main() -> None:
    run_main("mtproto", lambda: load_settings(MtprotoSettings), create_app)
