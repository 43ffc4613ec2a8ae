"""The WhatsApp fake's world: business numbers, the users who write to them, sent messages."""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.messaging import MessagingState
from switchboard.sandbox.provider import Core
from switchboard.sandbox.webhooks import OrderedDelivery
from switchboard.sandbox.whatsapp.config import WhatsAppConfig
from switchboard.sandbox.whatsapp.media import MediaStore

PHONE_NUMBER_ID = re.compile(r"^\d{1,20}$")


def digits(phone: str) -> str:
    """A phone number as a wa_id: digits only, no `+`, spaces or dashes."""
    return re.sub(r"\D", "", phone)


@dataclass
class WaUser:
    """A WhatsApp user as one business number knows them."""

    wa_id: str
    name: str = "WhatsApp User"
    last_inbound_at: float | None = None
    undeliverable: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "wa_id": self.wa_id,
            "name": self.name,
            "last_inbound_at": self.last_inbound_at,
            "undeliverable": self.undeliverable,
        }


@dataclass
class Subscription:
    """The configured webhook: where to POST, and whether the GET handshake passed."""

    url: str = ""
    verified: bool = False
    last_error: str | None = None
    verified_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "verified": self.verified,
            "last_error": self.last_error,
            "verified_at": self.verified_at,
        }


@dataclass
class WaNumber:
    """One business phone number: credentials, webhook, users, sent messages, delivery queue."""

    phone_number_id: str
    token: str
    display_phone_number: str
    waba_id: str
    app_secret: str
    verify_token: str
    verified_name: str
    deliveries: OrderedDelivery
    rng: random.Random
    subscription: Subscription = field(default_factory=Subscription)
    users: dict[str, WaUser] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list, repr=False)
    inbound: list[dict[str, Any]] = field(default_factory=list, repr=False)
    statuses: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def user(self, wa_id: str, name: str | None = None) -> WaUser:
        """The user with this wa_id, created on first use."""
        found = self.users.get(wa_id)
        if found is None:
            found = WaUser(wa_id=wa_id)
            self.users[wa_id] = found
        if name:
            found.name = name
        return found

    def new_wamid(self, wa_id: str) -> str:
        """A message id shaped like Meta's: `wamid.` + base64 of the user's number and a
        random hex id (unique per number thanks to the seeded RNG)."""
        tail = "".join(self.rng.choice("0123456789ABCDEF") for _ in range(32))
        raw = b"\x18" + bytes([len(wa_id)]) + wa_id.encode() + b"\x15\x02\x00\x11\x18\x20"
        return "wamid." + base64.b64encode(raw + tail.encode() + b"\x00").decode()

    def metadata(self) -> dict[str, str]:
        """`value.metadata` of this number's webhooks."""
        return {
            "display_phone_number": digits(self.display_phone_number),
            "phone_number_id": self.phone_number_id,
        }

    def info(self) -> dict[str, Any]:
        """GET /{version}/{phone_number_id}."""
        return {
            "verified_name": self.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": self.display_phone_number,
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": self.phone_number_id,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "phone_number_id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "waba_id": self.waba_id,
            "verified_name": self.verified_name,
            "token": self.token,
            "webhook": self.subscription.to_json(),
            "users": len(self.users),
            "sent": len(self.sent),
            "inbound": len(self.inbound),
            "pending_deliveries": self.deliveries.pending,
            "delivered": self.deliveries.delivered,
        }


class WhatsAppState(MessagingState[WhatsAppConfig]):
    """All business numbers of the fake, and their media."""

    def __init__(self, core: Core, config: WhatsAppConfig) -> None:
        super().__init__(core, config)
        self.numbers: dict[str, WaNumber] = {}
        self.media = MediaStore(config.seed)

    def add_number(
        self,
        phone_number_id: str,
        token: str,
        *,
        display_phone_number: str | None = None,
        waba_id: str | None = None,
        app_secret: str = "app-secret",  # noqa: S107  (a sandbox default, not a secret)
        verify_token: str = "verify-token",  # noqa: S107
        verified_name: str | None = None,
    ) -> WaNumber:
        """Register a business number the API accepts with `token` (Bearer), or update the
        one with the same id, and return it."""
        if not PHONE_NUMBER_ID.match(phone_number_id):
            raise ValueError("phone_number_id is 1-20 digits")
        if not token:
            raise ValueError("token is required")
        existing = self.numbers.get(phone_number_id)
        if existing is not None:
            existing.token = token
            existing.app_secret = app_secret
            existing.verify_token = verify_token
            existing.display_phone_number = display_phone_number or existing.display_phone_number
            existing.waba_id = waba_id or existing.waba_id
            existing.verified_name = verified_name or existing.verified_name
            return existing
        rng = random.Random(f"{self.config.seed}:wa:{phone_number_id}")
        number = WaNumber(
            phone_number_id=phone_number_id,
            token=token,
            display_phone_number=display_phone_number or f"+1 555 {phone_number_id[-7:]:0>7}",
            waba_id=waba_id or str(rng.randrange(10**14, 10**15)),
            app_secret=app_secret,
            verify_token=verify_token,
            verified_name=verified_name or f"Business {phone_number_id[-4:]}",
            deliveries=self.core.webhook_queue(
                "whatsapp", phone_number_id, self.config.webhook_retry
            ),
            rng=rng,
        )
        self.numbers[phone_number_id] = number
        return number

    def find(self, ref: str | int) -> WaNumber | None:
        """A number by phone_number_id, display number (any formatting) or token."""
        text = str(ref).strip()
        if text in self.numbers:
            return self.numbers[text]
        for number in self.numbers.values():
            if number.token == text:
                return number
        wanted = digits(text)
        if not wanted:
            return None
        return next(
            (n for n in self.numbers.values() if digits(n.display_phone_number) == wanted), None
        )

    def by_token(self, token: str) -> list[WaNumber]:
        return [n for n in self.numbers.values() if n.token == token]

    async def remove(self, number: WaNumber) -> None:
        await number.deliveries.aclose()
        self.numbers.pop(number.phone_number_id, None)
        self.limiter.reset(f"wa:{number.phone_number_id}:")
