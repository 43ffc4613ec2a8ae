"""Status webhooks that follow an accepted send: sent, delivered, read, or failed.

Stages are queued on the number's ordered delivery queue. With `statuses.delay` > 0 a
background task spaces them out in real time; timestamps always come from the sandbox
clock, so receivers can order them by `timestamp` as Meta advises.
"""

from __future__ import annotations

import functools
from typing import Any

from switchboard.sandbox.webhooks import SpacedSteps
from switchboard.sandbox.whatsapp.errors import REENGAGEMENT, webhook_error
from switchboard.sandbox.whatsapp.state import WaNumber, WhatsAppState
from switchboard.sandbox.whatsapp.validate import BSUID
from switchboard.sandbox.whatsapp.webhook import queue


def status_value(
    state: WhatsAppState,
    number: WaNumber,
    sent: dict[str, Any],
    status: str,
    error_code: int | None = None,
) -> dict[str, Any]:
    """`value.statuses[0]` for one stage of a sent message."""
    now = state.core.clock.time()
    item: dict[str, Any] = {
        "id": sent["id"],
        "status": status,
        "timestamp": str(int(now)),
    }
    # A user known only by BSUID is addressed as such (recipient_user_id), never by phone.
    item["recipient_user_id" if BSUID.match(sent["wa_id"]) else "recipient_id"] = sent["wa_id"]
    if status in ("sent", "delivered"):
        category = sent["category"]
        item["conversation"] = {
            "id": sent["conversation_id"],
            "origin": {"type": category},
        }
        if status == "sent":
            item["conversation"]["expiration_timestamp"] = str(int(now) + 24 * 3600)
        item["pricing"] = {
            "billable": category != "service",
            "pricing_model": "PMP",
            "category": category,
            "type": "free_customer_service" if category == "service" else "regular",
        }
    if error_code is not None:
        item["errors"] = [webhook_error(error_code)]
    number.statuses.append(item)
    return item


def plan(
    state: WhatsAppState, number: WaNumber, sent: dict[str, Any]
) -> list[tuple[str, int | None]]:
    """The stages this message will go through, drawn from the number's seeded RNG."""
    settings = state.config.statuses
    if sent.get("window_closed"):
        return [("failed", REENGAGEMENT)]
    user = number.users.get(sent["wa_id"])
    if (user is not None and user.undeliverable) or (
        settings.failure_rate and number.rng.random() < settings.failure_rate
    ):
        return [("failed", settings.failure_code)]
    stages: list[tuple[str, int | None]] = []
    if settings.sent:
        stages.append(("sent", None))
    if settings.delivered:
        stages.append(("delivered", None))
        if settings.read and number.rng.random() < settings.read_rate:
            stages.append(("read", None))
    return stages


class StatusEmitter:
    """Queues status webhooks of sent messages; owns the tasks that space them out."""

    def __init__(self, state: WhatsAppState) -> None:
        self.state = state
        self.steps = SpacedSteps()

    def after_send(self, number: WaNumber, sent: dict[str, Any]) -> None:
        """Schedule the statuses of an accepted message."""
        stages = [
            functools.partial(self.emit, number, sent, status, code)
            for status, code in plan(self.state, number, sent)
        ]
        self.steps.run(stages, self.state.config.statuses.delay)

    def emit(
        self, number: WaNumber, sent: dict[str, Any], status: str, code: int | None = None
    ) -> None:
        """Queue one status webhook for `sent` and remember it as its latest status."""
        sent["status"] = status
        item = status_value(self.state, number, sent, status, code)
        queue(self.state, number, {"statuses": [item]}, ref=f"{sent['id']}:{status}")

    async def aclose(self) -> None:
        """Cancel statuses still waiting for their delay."""
        await self.steps.aclose()
