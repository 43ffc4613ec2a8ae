"""``python -m switchboard.outbound``: run the outbound service."""

from __future__ import annotations

from switchboard.outbound.app import create_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.service import run_main
from switchboard.runtime.settings import load_settings


def main() -> None:
    run_main("outbound", lambda: load_settings(OutboundSettings), create_app)
