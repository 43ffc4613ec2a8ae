"""Test support shared by every package: servers for the bus and the database, services run
in-process or as real processes, and condition waits (tests wait on conditions, not sleeps)."""

from switchboard.runtime.testing.servers import (
    ServiceProcess,
    eventually,
    serve_app,
)

__all__ = ["ServiceProcess", "eventually", "serve_app"]
