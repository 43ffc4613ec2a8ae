"""``python -m switchboard.ingest``: run the ingest service."""

from __future__ import annotations

from switchboard.ingest.app import create_app
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.service import run_main
from switchboard.runtime.settings import load_settings


def main() -> None:
    run_main("ingest", lambda: load_settings(IngestSettings), create_app)
