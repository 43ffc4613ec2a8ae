"""``switchboard analytics ...`` (also ``switchboard-analytics``): analytics operations."""

from __future__ import annotations

from switchboard.analytics.rebuild import plan
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime.rebuild import rebuild_main


def main(argv: list[str] | None = None) -> int:
    return rebuild_main(
        argv,
        service="analytics",
        description=__doc__,
        settings=AnalyticsSettings,
        plan=plan,
        summary="rebuild the rollups from the streams and swap them in",
    )


if __name__ == "__main__":
    raise SystemExit(main())
