"""The SendPulse fake's world: API accounts, their tokens, address books and what was sent."""

from __future__ import annotations

import itertools
import random
import secrets
import string
from dataclasses import asdict, dataclass, field
from typing import Any

from switchboard.sandbox.provider import Core
from switchboard.sandbox.ratelimit import RateLimiter
from switchboard.sandbox.sendpulse.config import SendPulseConfig
from switchboard.sandbox.sendpulse.errors import (
    BOOK_NOT_FOUND,
    access_denied,
    api_error,
    too_many_requests,
)

_ALNUM = string.ascii_lowercase + string.digits


@dataclass
class SpContact:
    """One email address in an address book, with its variables."""

    email: str
    variables: dict[str, Any]
    added_at: float

    def to_json(self) -> dict[str, Any]:
        """As `GET /addressbooks/{id}/emails` lists it (status 0 is "New")."""
        return {
            "email": self.email,
            "status": 0,
            "status_explain": "New",
            "variables": dict(self.variables),
        }


@dataclass
class SpAddressBook:
    """An address book (mailing list) owned by one account."""

    id: int
    name: str
    owner: str
    contacts: dict[str, SpContact] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "account": self.owner,
            "emails": len(self.contacts),
        }


@dataclass
class SpAccount:
    """REST API credentials (`client_id`/`client_secret`) of one SendPulse account."""

    client_id: str
    client_secret: str
    token_ttl: int | None = None

    def summary(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "token_ttl": self.token_ttl}


@dataclass
class SpToken:
    """An issued bearer token; it stops working at `expires_at` (sandbox monotonic time)."""

    value: str
    client_id: str
    expires_at: float


@dataclass(frozen=True)
class SentEmail:
    """An email accepted by `POST /smtp/emails`; `html` is the decoded markup."""

    id: str
    account: str
    subject: str | None
    sender: dict[str, Any]
    to: list[dict[str, Any]]
    html: str | None
    text: str | None
    template: dict[str, Any] | None
    at: float
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SentSms:
    """An SMS send accepted by `POST /sms/send` (one record per request)."""

    campaign_id: int
    account: str
    sender: str
    phones: list[str]
    body: str
    transliterate: bool
    date: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SendPulseState:
    """Accounts, tokens, address books and sent messages, plus the request limiter."""

    def __init__(self, core: Core, config: SendPulseConfig) -> None:
        self.core = core
        self.config = config
        self.accounts: dict[str, SpAccount] = {}
        self.tokens: dict[str, SpToken] = {}
        self.books: dict[int, SpAddressBook] = {}
        self.emails: list[SentEmail] = []
        self.sms: list[SentSms] = []
        self.limiter = RateLimiter(core.clock)
        self.rng = random.Random(config.seed)
        self._book_ids = itertools.count(1)
        self._campaign_ids = itertools.count(1)

    # -- accounts and tokens ----------------------------------------------------------

    def add_account(
        self, client_id: str, client_secret: str, token_ttl: int | None = None
    ) -> SpAccount:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        if token_ttl is not None and token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")
        account = SpAccount(client_id, client_secret, token_ttl)
        self.accounts[client_id] = account
        return account

    def find_account(self, ref: str) -> SpAccount | None:
        """An account by client_id or by one of its tokens."""
        if ref in self.accounts:
            return self.accounts[ref]
        token = self.tokens.get(ref)
        return self.accounts.get(token.client_id) if token else None

    def remove_account(self, account: SpAccount) -> None:
        self.accounts.pop(account.client_id, None)
        self.expire_tokens(account)
        for book in [b for b in self.books.values() if b.owner == account.client_id]:
            del self.books[book.id]

    def ttl_of(self, account: SpAccount) -> int:
        return account.token_ttl or self.config.token_ttl

    def issue_token(self, account: SpAccount) -> SpToken:
        value = secrets.token_urlsafe(30)
        expires = self.core.clock.monotonic() + self.ttl_of(account)
        token = SpToken(value, account.client_id, expires)
        self.tokens[value] = token
        return token

    def expire_tokens(self, account: SpAccount) -> int:
        """Forget every token of the account, so its next call gets 401."""
        values = [v for v, t in self.tokens.items() if t.client_id == account.client_id]
        for value in values:
            del self.tokens[value]
        return len(values)

    def authenticate(self, authorization: str | None) -> SpAccount:
        """The account of a `Bearer` header, or the 401 the real API answers."""
        if not authorization or not authorization.strip():
            raise access_denied('Missing "Authorization" header')
        scheme, _, value = authorization.strip().partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        account = self.accounts.get(token.client_id) if token else None
        if token is None or account is None:
            raise access_denied("Access token could not be verified")
        if self.core.clock.monotonic() >= token.expires_at:
            del self.tokens[token.value]
            raise access_denied("Access token has expired")
        return account

    def take_slot(self, account: SpAccount, now: float) -> None:
        """Count one API call against the account limit, or raise 429."""
        limits = self.config.limits
        if not limits.enabled or limits.account is None:
            return
        decision = self.limiter.acquire([(f"account:{account.client_id}", limits.account)], now)
        if not decision.allowed:
            raise too_many_requests(decision.retry_after)

    # -- address books ----------------------------------------------------------------

    def add_book(self, account: SpAccount, name: str | None, book_id: int | None) -> SpAddressBook:
        if book_id is None:
            book_id = next(self._book_ids)
            while book_id in self.books:
                book_id = next(self._book_ids)
        elif book_id in self.books and self.books[book_id].owner != account.client_id:
            raise ValueError(f"address book {book_id} belongs to another account")
        existing = self.books.get(book_id)
        if existing is not None:
            existing.name = name or existing.name
            return existing
        book = SpAddressBook(book_id, name or f"Address book {book_id}", account.client_id)
        self.books[book_id] = book
        return book

    def book_of(self, account: SpAccount, raw_id: str) -> SpAddressBook:
        """The account's address book, or the 400 "Book not found" (also for others' books)."""
        try:
            book = self.books.get(int(raw_id))
        except ValueError:
            book = None
        if book is None or book.owner != account.client_id:
            raise api_error("Book not found", BOOK_NOT_FOUND)
        return book

    # -- ids --------------------------------------------------------------------------

    def email_id(self) -> str:
        """An id shaped like SendPulse's SMTP ids (two lowercase alphanumeric parts)."""
        head = "".join(self.rng.choice(_ALNUM) for _ in range(6))
        tail = "".join(self.rng.choice(_ALNUM) for _ in range(12))
        return f"{head}-{tail}"

    def campaign_id(self) -> int:
        return next(self._campaign_ids)

    def clear(self) -> None:
        self.accounts.clear()
        self.tokens.clear()
        self.books.clear()
        self.emails.clear()
        self.sms.clear()
        self.limiter.reset()
        self.rng = random.Random(self.config.seed)
        self._book_ids = itertools.count(1)
        self._campaign_ids = itertools.count(1)


__all__ = [
    "SendPulseState",
    "SentEmail",
    "SentSms",
    "SpAccount",
    "SpAddressBook",
    "SpContact",
    "SpToken",
]
