"""``switchboard analytics ...`` (also ``switchboard-analytics``): analytics operations."""

from __future__ import annotations

import argparse
import asyncio

from switchboard.analytics.rebuild import rebuild
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard analytics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rb = sub.add_parser("rebuild", help="rebuild the rollups from the streams and swap them in")
    rb.add_argument("--keep-old", action="store_true", help="keep the replaced tables")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(AnalyticsSettings)
    except ConfigError as exc:
        print(exc)
        return 2
    asyncio.run(rebuild(settings, keep_old=args.keep_old))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
