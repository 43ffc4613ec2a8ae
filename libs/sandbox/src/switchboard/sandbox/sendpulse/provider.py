"""The SendPulse fake as a sandbox provider, with the Python API tests use directly."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Scope

from switchboard.sandbox.provider import Core, ProviderBase, registered
from switchboard.sandbox.sendpulse.api import SendPulseApi, bearer_of, method_of
from switchboard.sandbox.sendpulse.config import SendPulseConfig
from switchboard.sandbox.sendpulse.errors import api_error, error_response
from switchboard.sandbox.sendpulse.state import (
    SendPulseState,
    SentEmail,
    SentSms,
    SpAccount,
    SpAddressBook,
)

DEMO_CLIENT_ID = "sendpulse-demo-id"
DEMO_CLIENT_SECRET = "sendpulse-demo-secret"  # noqa: S105  (public dev-stack contract)
DEMO_ADDRESS_BOOK = 1


class SendPulseProvider(ProviderBase):
    """Fake SendPulse REST API: OAuth tokens, address books, SMTP email and SMS."""

    name = "sendpulse"
    prefix = "/sendpulse"

    def __init__(self, core: Core, config: SendPulseConfig | None = None) -> None:
        self.core = core
        self.config = config or SendPulseConfig()
        self.state = SendPulseState(core, self.config)
        self.api: SendPulseApi = SendPulseApi(self.state)

    # -- Python API -------------------------------------------------------------------

    def add_account(
        self, client_id: str, client_secret: str, token_ttl: int | None = None
    ) -> SpAccount:
        """Register REST API credentials; `token_ttl` overrides the configured lifetime."""
        return self.state.add_account(client_id, client_secret, token_ttl)

    def add_demo_account(self) -> SpAccount:
        """The dev-stack contract: `sendpulse-demo-id` / `sendpulse-demo-secret`, book 1."""
        account = self.add_account(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        self.add_address_book(account, "Demo", DEMO_ADDRESS_BOOK)
        return account

    def account(self, ref: str | SpAccount) -> SpAccount:
        """An account by client_id, one of its tokens, or itself (KeyError if none)."""
        return registered(ref, SpAccount, self.state.find_account, "SendPulse account")

    def add_address_book(
        self, account: str | SpAccount, name: str | None = None, book_id: int | None = None
    ) -> SpAddressBook:
        """Create (or rename) an address book of the account; ids are global like SendPulse's."""
        return self.state.add_book(self.account(account), name, book_id)

    def address_book(self, book_id: int) -> SpAddressBook:
        if book_id not in self.state.books:
            raise KeyError(f"no address book {book_id} in the sandbox")
        return self.state.books[book_id]

    def contacts(self, book_id: int) -> list[dict[str, Any]]:
        """The emails of an address book with their variables, oldest first."""
        return [c.to_json() for c in self.address_book(book_id).contacts.values()]

    def issue_token(self, account: str | SpAccount) -> str:
        """A valid bearer token without the HTTP round trip."""
        return self.state.issue_token(self.account(account)).value

    def expire_tokens(self, account: str | SpAccount) -> int:
        """Invalidate the account's tokens now (its next call gets 401); how many there were."""
        return self.state.expire_tokens(self.account(account))

    def emails(self, account: str | SpAccount | None = None) -> list[SentEmail]:
        """Emails accepted by `/smtp/emails`, oldest first, optionally of one account."""
        wanted = None if account is None else self.account(account).client_id
        return [e for e in self.state.emails if wanted is None or e.account == wanted]

    def sms(self, account: str | SpAccount | None = None) -> list[SentSms]:
        """SMS sends accepted by `/sms/send`, oldest first, optionally of one account."""
        wanted = None if account is None else self.account(account).client_id
        return [s for s in self.state.sms if wanted is None or s.account == wanted]

    # -- Provider contract ------------------------------------------------------------

    def control_routes(self) -> list[BaseRoute]:
        from switchboard.sandbox.sendpulse.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        token = bearer_of(scope)
        token_info = self.state.tokens.get(token) if token else None
        return (token_info.client_id if token_info else None), method_of(scope)

    def error_response(self, status: int, description: str) -> Response:
        return error_response(api_error(description, status=status))

    def normalize_account(self, account: str) -> str:
        found = self.state.find_account(account)
        return found.client_id if found else account

    def snapshot(self) -> dict[str, Any]:
        return {
            "accounts": [a.summary() for a in self.state.accounts.values()],
            "address_books": [b.summary() for b in self.state.books.values()],
            "tokens": len(self.state.tokens),
            "emails": len(self.state.emails),
            "sms": len(self.state.sms),
            "config": self.config.to_json(),
        }

    async def reset(self) -> None:
        self.state.clear()
