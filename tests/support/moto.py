"""A real S3 HTTP endpoint for tests: moto's standalone server in its own process on a free
port (never a mock of the client library)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from switchboard.runtime.embedded import free_port


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """The base URL of a running moto server, stopped afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:  # a loaded machine may take a while to import moto: wait on it
            try:
                httpx.get(f"{url}/moto-api/", timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError("moto server exited") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_env(url: str, bucket: str) -> dict[str, str]:
    """Settings that point a service's object store at the moto server."""
    return {
        "SWITCHBOARD_OBJECTS__BACKEND": "s3",
        "SWITCHBOARD_OBJECTS__S3_BUCKET": bucket,
        "SWITCHBOARD_OBJECTS__S3_ENDPOINT_URL": url,
        "SWITCHBOARD_OBJECTS__S3_ACCESS_KEY_ID": "testing",
        "SWITCHBOARD_OBJECTS__S3_SECRET_ACCESS_KEY": "testing",
    }
