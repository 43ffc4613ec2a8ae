"""The embedded Postgres under the conditions of a busy test machine.

Found on a loaded machine where several pytest sessions ran as root: Postgres refuses to
run as root, so it runs as ``switchboard-pg`` and must traverse every parent of its data
directory; pytest makes ``/tmp/pytest-of-root`` private (0700) again each time a session
starts. A Postgres starting or restarting at that moment died on its socket lock file
("Permission denied") and every later connection to it was refused.
"""

from __future__ import annotations

import threading
from pathlib import Path

import asyncpg

from switchboard.runtime.embedded import EmbeddedPostgres


async def _answers(pg: EmbeddedPostgres) -> int:
    conn = await asyncpg.connect(pg.url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_starts_and_restarts_while_a_parent_is_made_private(tmp_path: Path) -> None:
    private = tmp_path / "pytest-of-root"  # what another pytest session keeps resetting
    private.mkdir(mode=0o700)
    stop = threading.Event()

    def reset_like_pytest() -> None:
        while not stop.is_set():
            private.chmod(0o700)
            stop.wait(0.001)

    resetter = threading.Thread(target=reset_like_pytest, daemon=True)
    resetter.start()
    pg = EmbeddedPostgres(private / "pg")
    try:
        pg.start()
        assert await _answers(pg) == 1
        pg.stop()
        pg.start()  # a restart, as the chaos tests do
        assert await _answers(pg) == 1
    finally:
        stop.set()
        resetter.join()
        pg.stop()


async def test_start_returns_only_once_sessions_are_accepted(tmp_path: Path) -> None:
    """Postgres listens before it accepts sessions ("the database system is starting up");
    under load that gap is long enough for a test's first connection to fail."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    try:
        for _ in range(3):
            pg.start()
            assert await _answers(pg) == 1  # at once, no retry
            pg.stop()
    finally:
        pg.stop()


async def test_a_data_dir_made_again_at_the_same_path_is_a_new_cluster(tmp_path: Path) -> None:
    """Found by `just up` in a reused pytest --basetemp: a cluster kept outside its data dir
    and named by the path came back with the old database and the new run's keys."""
    import shutil

    data = tmp_path / "pg"
    pg = EmbeddedPostgres(data).start()
    try:
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE left_behind (x int)")
        await conn.close()
    finally:
        pg.stop()
    shutil.rmtree(data)
    again = EmbeddedPostgres(data).start()
    try:
        conn = await asyncpg.connect(again.url)
        try:
            assert await conn.fetchval("SELECT to_regclass('left_behind')") is None
        finally:
            await conn.close()
    finally:
        again.stop()
