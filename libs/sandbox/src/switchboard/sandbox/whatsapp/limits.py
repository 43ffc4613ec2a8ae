"""Cloud API send limits: throughput per business number (130429) and pair rate (131056)."""

from __future__ import annotations

from switchboard.sandbox.ratelimit import Rule
from switchboard.sandbox.whatsapp.errors import PAIR_RATE, THROUGHPUT, whatsapp_error
from switchboard.sandbox.whatsapp.state import WaNumber, WhatsAppState


def limit_keys(
    state: WhatsAppState, number: WaNumber, wa_id: str
) -> tuple[tuple[str, Rule] | None, tuple[str, Rule] | None]:
    """(throughput key, pair key) one message to `wa_id` consumes; None when disabled."""
    limits = state.config.limits
    if not limits.enabled:
        return None, None
    prefix = f"wa:{number.phone_number_id}:"
    throughput = (prefix + "throughput", limits.throughput) if limits.throughput else None
    pair = (f"{prefix}pair:{wa_id}", limits.pair) if limits.pair else None
    return throughput, pair


def take_send_slot(state: WhatsAppState, number: WaNumber, wa_id: str, now: float) -> None:
    """Count one message, or raise the Graph error Meta would answer.

    Both keys are checked together and nothing is consumed on refusal. When the number's
    throughput is exhausted the answer is 130429 (HTTP `throttle_status`), otherwise the
    pair limit refused it: 131056 (HTTP 400).
    """
    throughput, pair = limit_keys(state, number, wa_id)
    checks = [key for key in (throughput, pair) if key is not None]
    if not checks:
        return
    decision = state.limiter.acquire(checks, now)
    if decision.allowed:
        return
    if throughput is not None and state.limiter.wait_time(*throughput, now=now) > 0:
        error = whatsapp_error(THROUGHPUT, status=state.config.throttle_status)
    else:
        error = whatsapp_error(PAIR_RATE)
    error.retry_after = decision.retry_after
    raise error
