"""The WhatsApp Cloud API fake as a sandbox provider, with the Python API tests use directly."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from switchboard.sandbox.httpjson import ControlError
from switchboard.sandbox.messaging import MessagingProvider
from switchboard.sandbox.provider import Core, registered
from switchboard.sandbox.routes import RouteTable
from switchboard.sandbox.simulation import producer
from switchboard.sandbox.webhooks import OrderedDelivery
from switchboard.sandbox.whatsapp.api import WhatsAppApi, classify
from switchboard.sandbox.whatsapp.config import WhatsAppConfig
from switchboard.sandbox.whatsapp.errors import error_response, server_error
from switchboard.sandbox.whatsapp.inbound import content, deliver_inbound
from switchboard.sandbox.whatsapp.state import (
    Subscription,
    WaNumber,
    WaUser,
    WhatsAppState,
    digits,
)
from switchboard.sandbox.whatsapp.statuses import StatusEmitter
from switchboard.sandbox.whatsapp.traffic import GeneratedEvent, WhatsAppTraffic
from switchboard.sandbox.whatsapp.validate import BSUID
from switchboard.sandbox.whatsapp.webhook import subscribe, verification_failed

# The dev-stack demo number (public sandbox values, not secrets).
DEMO_PHONE_NUMBER_ID = "100000000000101"
DEMO_WA_TOKEN = "demo-whatsapp-token"  # noqa: S105
DEMO_APP_SECRET = "demo-app-secret"  # noqa: S105
DEMO_VERIFY_TOKEN = "demo-verify-token"  # noqa: S105


class WhatsAppProvider(MessagingProvider[WaNumber, GeneratedEvent]):
    """Fake WhatsApp Cloud API: numbers, limits, the 24 h window, webhooks and traffic."""

    name = "whatsapp"
    prefix = "/whatsapp"
    account_param = "number"
    accounts_key = "numbers"
    generated_key = "events"
    queue_name = "webhooks"

    def __init__(self, core: Core, config: WhatsAppConfig | None = None) -> None:
        super().__init__(core)
        self.config: WhatsAppConfig = config or WhatsAppConfig()
        self.state: WhatsAppState = WhatsAppState(core, self.config)
        self.emitter = StatusEmitter(self.state)
        self.workers.append(self.emitter)
        self.check_mix = WhatsAppTraffic.mix.check
        self.produce = producer(functools.partial(WhatsAppTraffic, self.state, self.emitter))
        self.api: WhatsAppApi = WhatsAppApi(self.state, self.emitter)
        # Registering a number is the state's own: the Python API hands it straight through.
        self.add_number = self.state.add_number

    # -- Python API -------------------------------------------------------------------

    def add_demo_number(self) -> WaNumber:
        """The dev-stack demo number (see DEMO_* constants); no webhook until one is set."""
        return self.add_number(
            DEMO_PHONE_NUMBER_ID,
            DEMO_WA_TOKEN,
            display_phone_number="+1 555 010 0001",
            waba_id="100000000000102",
            app_secret=DEMO_APP_SECRET,
            verify_token=DEMO_VERIFY_TOKEN,
            verified_name="Switchboard Demo",
        )

    def number(self, ref: str | int | WaNumber) -> WaNumber:
        """A number by phone_number_id, display number, token or itself (KeyError if none)."""
        return registered(ref, WaNumber, self.state.find, "whatsapp number")

    async def set_webhook(self, number: str | int | WaNumber, url: str) -> Subscription:
        """Configure the callback URL: Meta's GET handshake first (VerificationError when
        the challenge is not echoed), then queued and future webhooks flow. "" stops them."""
        return await subscribe(self.state, self.number(number), url)

    def add_user(
        self,
        number: str | int | WaNumber,
        wa_id: str,
        name: str | None = None,
        *,
        undeliverable: bool | None = None,
        last_inbound_at: float | None = None,
    ) -> WaUser:
        """Create or update a user: profile name, undeliverable (131026), window start."""
        user = self.number(number).user(wa_id, name)
        if undeliverable is not None:
            user.undeliverable = undeliverable
        if last_inbound_at is not None:
            user.last_inbound_at = last_inbound_at
        return user

    async def inject_message(
        self,
        number: str | int | WaNumber,
        wa_id: str,
        message: Mapping[str, Any] | None = None,
        *,
        kind: str = "text",
        name: str | None = None,
        timestamp: float | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Deliver one user message through the webhook and open the user's 24 h window.

        `message` is the webhook item without from/id/timestamp, e.g. `{"type": "text",
        "text": {"body": "hi"}}`; without it a realistic message of `kind` is made up.
        """
        found = self.number(number)
        if message is None:
            message = content(kind, found, wa_id, random.Random(f"{seed}:{len(found.inbound)}"))
        return deliver_inbound(self.state, found, wa_id, message, name=name, timestamp=timestamp)

    def sent_messages(
        self, number: str | int | WaNumber, to: str | None = None
    ) -> list[dict[str, Any]]:
        """Messages the business sent that the fake accepted, oldest first."""
        wanted = (to if BSUID.match(to) else digits(to)) if to else None
        return [m for m in self.number(number).sent if wanted is None or m["wa_id"] == wanted]

    def inbound_messages(self, number: str | int | WaNumber) -> list[dict[str, Any]]:
        """User messages delivered (injected or generated), oldest first."""
        return list(self.number(number).inbound)

    def generated_events(
        self, number: str | int | WaNumber | None = None, kind: str | None = None
    ) -> list[GeneratedEvent]:
        """Events the generator produced, optionally for one number and/or kind."""
        return self.generated_items(number, kind)

    # -- Messaging provider hooks -----------------------------------------------------

    def find(self, ref: Any) -> WaNumber:
        return self.number(ref)

    def account_key(self, account: WaNumber) -> str:
        return account.phone_number_id

    def accounts(self) -> dict[str, WaNumber]:
        return self.state.numbers

    def queue_of(self, account: WaNumber) -> OrderedDelivery:
        return account.deliveries

    def control_error(self, exc: Exception) -> ControlError | Response | None:
        return verification_failed(exc) or super().control_error(exc)

    # -- Provider contract ------------------------------------------------------------

    def own_control_routes(self) -> RouteTable:
        from switchboard.sandbox.whatsapp.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return classify(scope)

    def error_response(self, status: int, description: str) -> Response:
        return error_response(server_error(status, description))
