"""``python -m switchboard.analytics``: run the analytics service."""

from __future__ import annotations

from switchboard.analytics.app import create_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime.service import run_main
from switchboard.runtime.settings import load_settings


def main() -> None:
    run_main("analytics", lambda: load_settings(AnalyticsSettings), create_app)
