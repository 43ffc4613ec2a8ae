"""``switchboard crm ...`` (also ``switchboard-crm``): CRM operations."""

from __future__ import annotations

import argparse
import asyncio

from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard crm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rb = sub.add_parser("rebuild", help="rebuild the projection from the streams and swap it in")
    rb.add_argument("--keep-old", action="store_true", help="keep the replaced tables")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(CrmSettings)
    except ConfigError as exc:
        print(exc)
        return 2
    asyncio.run(rebuild(settings, keep_old=args.keep_old))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
