"""``switchboard crm ...`` (also ``switchboard-crm``): CRM operations."""

from __future__ import annotations

import gc

from switchboard.crm.rebuild import plan
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.rebuild import rebuild_main


def tune_gc_for_replay() -> None:
    """Garbage collection for a process that replays a stream and exits.

    Everything imported so far lives as long as the process: frozen, the collector's full
    passes stop rescanning it. A replay allocates a few dozen objects per event and frees
    nearly all of them by reference counting, so young-generation passes every 700
    allocations were mostly wasted: every 50,000 keeps cycles collected at a fraction of
    the cost (over a tenth of a replay's Python time went to the collector, measured).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> int:
    return rebuild_main(
        argv,
        service="crm",
        description=__doc__,
        settings=CrmSettings,
        plan=plan,
        summary="rebuild the projection from the streams and swap it in",
        before=tune_gc_for_replay,
    )


if __name__ == "__main__":
    raise SystemExit(main())
