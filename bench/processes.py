"""Stopping the service processes a benchmark started."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Ask every process to end, then wait for each (they shut down in parallel)."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
