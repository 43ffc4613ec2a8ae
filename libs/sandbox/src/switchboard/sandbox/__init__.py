"""Switchboard sandbox: faithful fake chat providers for the demo, e2e tests and benchmarks.

Start one in a test with `Sandbox()` and `switchboard.sandbox.testing.serve(sandbox.app())`,
or from the command line with `switchboard-sandbox serve --demo`.
"""

from switchboard.sandbox.app import Sandbox, create_app
from switchboard.sandbox.clock import Clock, ManualClock, SystemClock
from switchboard.sandbox.config import SandboxConfig
from switchboard.sandbox.faults import FaultSpec
from switchboard.sandbox.ratelimit import RateLimiter, SlidingWindow, TokenBucket
from switchboard.sandbox.recorder import RecordedDelivery, RecordedRequest, Recorder
from switchboard.sandbox.telegram import DEMO_TOKEN, DEMO_USERNAME, TelegramConfig
from switchboard.sandbox.webhooks import RetryPolicy

__all__ = [
    "DEMO_TOKEN",
    "DEMO_USERNAME",
    "Clock",
    "FaultSpec",
    "ManualClock",
    "RateLimiter",
    "RecordedDelivery",
    "RecordedRequest",
    "Recorder",
    "RetryPolicy",
    "Sandbox",
    "SandboxConfig",
    "SlidingWindow",
    "SystemClock",
    "TelegramConfig",
    "TokenBucket",
    "create_app",
]
