"""Children die with the process that started them: a test run or `switchboard up` killed
with SIGKILL (a CI timeout, the OOM killer) runs no cleanup, and would otherwise leave NATS,
Postgres and service processes running, holding ports and memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.runtime.testing import eventually

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

PARENT = """
import json, sys, time
from pathlib import Path
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from switchboard.runtime.testing import ServiceProcess

tmp = Path(sys.argv[1])
nats = EmbeddedNats(tmp / "nats").start()
pg = EmbeddedPostgres(tmp / "pg").start()
# a child that would otherwise run forever
service = ServiceProcess("http.server", {}, tmp / "service.log").start()
print(json.dumps([nats.proc.pid, pg.proc.pid, service.proc.pid]), flush=True)
time.sleep(3600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: it only waits for its (new) parent to reap it
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


async def test_servers_and_services_die_with_a_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pids = json.loads(parent.stdout.readline())
    assert all(_alive(pid) for pid in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)

    async def all_gone() -> bool:
        return not any(_alive(pid) for pid in pids)

    try:
        await eventually(all_gone, timeout=30, message="children of a killed parent exit")
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
