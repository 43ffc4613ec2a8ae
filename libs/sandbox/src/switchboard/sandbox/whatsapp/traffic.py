"""Simulated WhatsApp users writing to a business number, plus status updates of its sends.

Everything goes through the number's webhook queue, signed and enveloped exactly like the
messages and statuses Meta delivers, so ingest code is exercised as in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.sandbox.simulation import Mix, Simulation
from switchboard.sandbox.traffic import TrafficRequest
from switchboard.sandbox.whatsapp.inbound import KINDS as MESSAGE_KINDS
from switchboard.sandbox.whatsapp.inbound import content, deliver_inbound
from switchboard.sandbox.whatsapp.state import WaNumber, WhatsAppState
from switchboard.sandbox.whatsapp.statuses import StatusEmitter

DEFAULT_MIX: dict[str, float] = {
    "text": 40,
    "image": 8,
    "audio": 6,
    "video": 3,
    "document": 4,
    "sticker": 4,
    "location": 2,
    "contacts": 2,
    "interactive": 8,
    "button": 4,
    "reaction": 4,
    "unsupported": 1,
    "status": 14,
}
KINDS = (*MESSAGE_KINDS, "status")
NEXT_STATUS = {"accepted": "sent", "sent": "delivered", "delivered": "read"}
_NAMES = ("Ana Souza", "Rahul", "Maria", "João Pedro", "Fatima", "Lucas", "Chen Wei", "Olga")
_COUNTRIES = ("55", "49", "91", "52", "34", "1", "62", "234")


@dataclass(frozen=True)
class GeneratedEvent:
    """One thing the generator produced: a user message or a status (`value` as delivered)."""

    phone_number_id: str
    kind: str
    value: dict[str, Any]

    @property
    def account(self) -> str:
        return self.phone_number_id

    @property
    def payload(self) -> dict[str, Any]:
        return self.value


class WhatsAppTraffic(Simulation[GeneratedEvent]):
    """Builds events for one number from a pool of simulated users."""

    mix = Mix(DEFAULT_MIX, KINDS, "whatsapp kinds")

    def __init__(
        self,
        state: WhatsAppState,
        emitter: StatusEmitter,
        number: WaNumber,
        request: TrafficRequest,
    ) -> None:
        super().__init__(request, f"wa:{number.phone_number_id}")
        self.state = state
        self.emitter = emitter
        self.number = number
        self.users: list[str] = []

    def make(self, kind: str) -> GeneratedEvent:
        """Produce one event; a status with no message to report on becomes a text."""
        if kind == "status":
            event = self._status()
            if event is not None:
                return event
            kind = "text"
        wa_id = self._pick_user()
        message = content(kind, self.number, wa_id, self.rng)
        name = self.number.users[wa_id].name if wa_id in self.number.users else None
        full = deliver_inbound(
            self.state, self.number, wa_id, message, name=name or self.rng.choice(_NAMES)
        )
        return GeneratedEvent(self.number.phone_number_id, kind, {"messages": [full]})

    def _pick_user(self) -> str:
        if not self.users or (len(self.users) < self.pool_size and self.rng.random() < 0.5):
            wa_id = self.rng.choice(_COUNTRIES) + str(self.rng.randrange(10**9, 10**10))
            self.users.append(wa_id)
            return wa_id
        return self.rng.choice(self.users)

    def _status(self) -> GeneratedEvent | None:
        pending = [m for m in self.number.sent[-500:] if m.get("status") in NEXT_STATUS]
        if not pending:
            return None
        sent = self.rng.choice(pending)
        status = NEXT_STATUS[str(sent["status"])]
        self.emitter.emit(self.number, sent, status)
        item = self.number.statuses[-1]
        return GeneratedEvent(self.number.phone_number_id, "status", {"statuses": [item]})
