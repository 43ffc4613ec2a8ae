"""The issue's done-when script (examples/mtproto_telethon_script.py), run as its own
process against a sandbox started as `just up` starts it (``switchboard.sandbox.cli serve
--demo``), on a free port: a stock Telethon program that knows only the sandbox's address
logs in with code and 2FA, reads a channel and receives a new post."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchboard.runtime.embedded import free_port
from switchboard.runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "sandbox.log").open("wb")
    args = [sys.executable, "-m", "switchboard.sandbox.cli", "serve", "--host", HOST,
            "--port", str(port), "--demo"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


async def test_the_script_logs_in_reads_and_receives(sandbox: str, tmp_path: Path) -> None:
    async def up() -> bool:
        try:
            async with httpx.AsyncClient(trust_env=False) as http:
                return (await http.get(f"{sandbox}/mtproto/server")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, timeout=60, interval=0.2, message="sandbox serving /mtproto/server")
    script = ROOT / "examples" / "mtproto_telethon_script.py"
    done = subprocess.run(
        [sys.executable, str(script), "--sandbox", sandbox],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("MTProto server 127.0.0.1:")
    assert lines[1].startswith("logged in as Script (id ")
    assert lines[2].endswith("['old 3', 'old 2', 'old 1']")
    assert lines[3] == "NewMessage: fresh post"
