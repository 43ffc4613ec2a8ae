"""``python -m switchboard.crm``: run the CRM service."""

from __future__ import annotations

from switchboard.crm.app import create_app
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.service import run_main
from switchboard.runtime.settings import load_settings


def main() -> None:
    run_main("crm", lambda: load_settings(CrmSettings), create_app)
