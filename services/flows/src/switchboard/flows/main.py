"""``python -m switchboard.flows``: run the flows service."""

from __future__ import annotations

from switchboard.flows.app import create_app
from switchboard.flows.settings import FlowsSettings
from switchboard.runtime.service import run_main
from switchboard.runtime.settings import load_settings


def main() -> None:
    run_main("flows", lambda: load_settings(FlowsSettings), create_app)
