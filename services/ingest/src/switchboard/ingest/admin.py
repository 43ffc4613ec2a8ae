"""Operator actions on the accounts registry: add, rotate, remove, re-encrypt.

Adding an account first checks its credentials against the provider (``checks``: nothing
is saved when they are wrong); a Telegram bot then gets a generated ``secret_token`` and
setWebhook with the public URL; adding a Viber bot calls set_webhook (Viber calls back at
once, so the account is stored first and removed again if the provider refuses). Used by
the admin HTTP API; the CLI is a client of that API.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from switchboard.events.catalog.common import Channel
from switchboard.ingest.errors import IngestServiceError
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.provider_checks import (
    CheckReport,
    Endpoints,
    api_base,
    check_account,
    provider_of,
    response_object,
)

VIBER_EVENTS = ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
SECRET_GRACE = timedelta(minutes=10)


class AdminError(IngestServiceError):
    """An operator request that cannot be done, with the HTTP status to answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors, self.field = errors, field


@dataclass(frozen=True)
class Providers:
    """Where the providers' APIs are (real ones by default; the sandbox in dev)."""

    telegram: str = "https://api.telegram.org"
    viber: str = "https://chatapi.viber.com"
    public_url: str = ""

    def endpoints(self) -> Endpoints:
        return Endpoints(telegram=self.telegram, viber=self.viber)


async def check(http: httpx.AsyncClient, providers: Providers, account: Account) -> CheckReport:
    """Check ``account``'s credentials with its provider; saves nothing."""
    return await check_account(http, providers.endpoints(), account)


def refused(report: CheckReport) -> AdminError:
    """The 422 of an account whose check found problems, naming each field."""
    first = report.problems[0]
    more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
    detail = f"{first['path']}: {first['message']}{more}"
    if all(p["path"] == "provider" for p in report.problems):
        # Nothing is known to be wrong with the account: the provider did not answer.
        return AdminError(502, "provider_unreachable", detail, report.problems)
    return AdminError(422, "check_failed", detail, report.problems)


class _TransientError(Exception):
    pass


async def _call(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """One provider call: a timeout, and retries with jittered backoff on network errors and
    5xx (an operator waits for this, so three attempts, not a circuit breaker)."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(3),
        wait=wait_exponential_jitter(multiplier=0.2, max=2),
        retry=retry_if_exception_type((_TransientError, httpx.TransportError)),
        reraise=True,
    ):
        with attempt:
            response = await http.request(method, url, timeout=10, **kw)
            if response.status_code >= 500:
                raise _TransientError(f"{response.status_code} from {url.split('/bot')[0]}")
            return response
    raise AssertionError("unreachable")  # pragma: no cover


def new_telegram_secret() -> str:
    """1-256 chars of A-Z a-z 0-9 _ - (Telegram's rule); token_urlsafe uses exactly those."""
    return secrets.token_urlsafe(32)


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_url(providers: Providers, account: Account) -> str | None:
    """Where the provider should deliver ``account``'s webhooks (None when ingest does not
    register them: no public URL, or a provider that is configured by hand)."""
    if not providers.public_url or account.channel not in (Channel.TELEGRAM, Channel.VIBER):
        return None
    return _webhook_url(providers, account.channel, account.id)


def _webhook_url(providers: Providers, channel: Channel, account_id: str) -> str:
    if not providers.public_url:
        raise AdminError(400, "no_public_url", "set SWITCHBOARD_INGEST_PUBLIC_URL first")
    return f"{providers.public_url.rstrip('/')}/webhooks/{channel.value}/{account_id}"


async def add_account(
    store: AccountStore, http: httpx.AsyncClient, providers: Providers, account: Account
) -> tuple[Account, dict[str, str]]:
    """Register an account with its provider; returns it and any secrets generated for it
    (shown once, e.g. a Standard Webhooks signing secret the sender must be given)."""
    if await store.get(account.channel, account.id) is not None:
        raise AdminError(409, "exists", f"{account.channel.value} account {account.id} exists")
    await _not_taken(store, account)
    report = await check(http, providers, account)
    if not report.ok:
        raise refused(report)
    generated: dict[str, str] = {}
    secrets_, settings_ = dict(account.secrets), dict(account.settings)
    # Viber shows a message's `sender.name` as who wrote it: the bot's own name (what
    # get_account_info told), never our id for the account, unless the operator chose.
    name = report.facts.get("name")
    if account.channel is Channel.VIBER and name and not settings_.get("sender_name"):
        settings_["sender_name"] = str(name)
    if account.channel is Channel.TELEGRAM:
        secrets_["webhook_secret"] = new_telegram_secret()
    elif account.channel is Channel.VIBER:
        _need(secrets_, "token")
    elif account.channel is Channel.WHATSAPP:
        _need(secrets_, "app_secret")
        if not secrets_.get("verify_token"):
            secrets_["verify_token"] = generated["verify_token"] = secrets.token_urlsafe(24)
    elif (
        # only a source that signs what it sends us; a provider we call (a Meta pixel,
        # SendPulse) has no webhook here, so no secret that would open one
        provider_of(account) == "webhook" and not secrets_.get("signing_secret")
    ):
        secrets_["signing_secret"] = generated["signing_secret"] = new_signing_secret()
    stored = await store.create(
        account.model_copy(update={"secrets": secrets_, "settings": settings_})
    )
    if stored is None:  # added meanwhile by another request
        raise AdminError(409, "exists", f"{account.channel.value} account {account.id} exists")
    try:
        # Again, now that it is stored: two adds of one bot at once (as two accounts) each
        # passed the first look; now at least one sees the other and is taken back before
        # it registers a webhook (both, at worst: try again), never both kept.
        await _not_taken(store, stored)
        await _register_webhook(http, providers, stored)
    except BaseException:
        await store.delete(stored.channel, stored.id)
        raise
    return stored, generated


class AccountChange(BaseModel):
    """``PATCH /admin/accounts/{channel}/{id}``: settings to set (``null`` removes one) and
    secrets to replace; what is not named stays as it is."""

    model_config = ConfigDict(extra="forbid")
    settings: dict[str, Any | None] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_something(self) -> AccountChange:
        if not self.settings and not self.secrets:
            raise ValueError("name settings or secrets to change")
        return self


# What the provider must hear again after a change: where its webhook points, with what.
_WEBHOOK_SETTINGS = ("api_base_url",)


async def update_account(
    store: AccountStore,
    http: httpx.AsyncClient,
    providers: Providers,
    channel: Channel,
    account_id: str,
    change: AccountChange,
    now: datetime,
) -> Account:
    """Change an account in place: a token renewed after it was revoked or expired (queued
    sends waiting on it then leave, no one failed as an unknown account as a removal and a
    new add would fail them), a welcome or conversion setting. Checked with the provider
    first as an add is (a wrong value is a 422 and nothing changes); the bot or number must
    stay the same one; a Telegram or Viber webhook is registered again when its token or
    API changed. Written on the revision read, so a rotation meanwhile is not undone."""
    found = await store.read(channel, account_id)
    if found is None:
        raise AdminError(404, "unknown_account", f"no {channel.value} account {account_id!r}")
    account, revision = found
    settings = {k: v for k, v in {**account.settings, **change.settings}.items() if v is not None}
    secrets_ = {**account.secrets, **change.secrets}
    if channel is Channel.TELEGRAM and not secrets_.get("webhook_secret"):
        secrets_["webhook_secret"] = new_telegram_secret()  # one put in the registry by hand
    updated = account.model_copy(
        update={"settings": settings, "secrets": secrets_, "updated_at": now}
    )
    # A Telegram token names its bot (its prefix), a WhatsApp number its id: another one is
    # another account. A Viber token is the only name of its bot, so it is not compared,
    # but no other account may have it.
    before, after = provider_identity(account), provider_identity(updated)
    if channel is not Channel.VIBER and before != after:
        field = (after or before or ("", "settings"))[1]
        raise AdminError(
            409, "another_identity", "that is another bot or number: add it as its own account",
            field=field,
        )  # fmt: skip
    await _not_taken(store, updated)
    report = await check(http, providers, updated)
    if not report.ok:
        raise refused(report)
    stored = await store.update(updated, revision)
    if stored is None:
        raise AdminError(409, "changed", "the account changed meanwhile: read it and try again")
    if change.secrets or any(name in change.settings for name in _WEBHOOK_SETTINGS):
        await _register_webhook(http, providers, stored)
    return stored


def provider_identity(account: Account) -> tuple[str, str] | None:
    """What the provider knows the account as, and the field that names it: one bot, one
    number, one Viber bot can be one account only (a second would take its webhook, and
    every update with it, into its own workspace, and send as it)."""
    if account.channel is Channel.TELEGRAM and (token := account.secrets.get("token")):
        return "bot " + token.split(":", 1)[0], "secrets.token"
    if account.channel is Channel.VIBER and (token := account.secrets.get("token")):
        return "bot " + hashlib.sha256(token.encode()).hexdigest(), "secrets.token"
    if account.channel is Channel.WHATSAPP and (number := account.settings.get("phone_number_id")):
        return f"number {number}", "settings.phone_number_id"
    return None


async def _not_taken(store: AccountStore, account: Account) -> None:
    """409 naming the account that already is what ``account`` would be at its provider."""
    mine = provider_identity(account)
    if mine is None:
        return
    accounts, _ = await store.scan()
    for other in accounts:
        if other.key == account.key:
            continue
        if other.channel is account.channel and provider_identity(other) == mine:
            what = f"{account.channel.value} {mine[0].split(' ')[0]}"
            raise AdminError(
                409,
                "taken",
                f"this {what} is account {other.workspace_id}/{other.id} already",
                field=mine[1],
            )


async def rotate_webhook_secret(
    store: AccountStore,
    http: httpx.AsyncClient,
    providers: Providers,
    channel: Channel,
    account_id: str,
    now: datetime,
) -> Account:
    """New webhook secret; the previous one stays valid for a grace period so deliveries in
    flight during the switch are not refused. ``now`` is the server clock's: every ingest
    instance judges the grace's end on it."""
    if channel is Channel.TELEGRAM:
        name, make = "webhook_secret", new_telegram_secret
    elif channel is Channel.GENERIC:
        name, make = "signing_secret", new_signing_secret
    elif channel is Channel.WHATSAPP:
        name, make = "verify_token", lambda: secrets.token_urlsafe(24)
    else:
        raise AdminError(400, "not_rotatable", "Viber signs with the bot token: rotate it at Viber")
    # On the revision read: of two rotations at once the second rotates what the first
    # stored, so the previous secret kept is the one the provider may still send.
    while True:
        found = await store.read(channel, account_id)
        if found is None:
            raise AdminError(404, "unknown_account", f"no {channel.value} account {account_id!r}")
        account, revision = found
        if (provider := provider_of(account)) not in ("webhook", account.channel.value):
            raise AdminError(400, "not_rotatable", f"a {provider} account receives no webhooks")
        secrets_ = {**account.secrets, f"{name}_previous": account.secrets.get(name, ""),
                    name: make()}  # fmt: skip
        settings = {**account.settings, "previous_secret_until": _iso(now + SECRET_GRACE)}
        stored = await store.update(
            account.model_copy(update={"secrets": secrets_, "settings": settings}), revision
        )
        if stored is not None:
            return await _register_stored(store, http, providers, stored, name)


async def _register_stored(
    store: AccountStore, http: httpx.AsyncClient, providers: Providers, account: Account, name: str
) -> Account:
    """Register ``account``'s webhook, then again while the stored secret is another one (a
    rotation stored meanwhile may have registered before this one did): whatever order
    the registrations land in, the provider ends with the secret that is stored."""
    for _ in range(5):
        await _register_webhook(http, providers, account)
        now = await store.get(account.channel, account.id)
        if now is None or now.secrets.get(name) == account.secrets.get(name):
            return account
        account = now
    return account


async def remove_account(
    store: AccountStore,
    http: httpx.AsyncClient,
    providers: Providers,
    channel: Channel,
    account_id: str,
) -> None:
    account = await _existing(store, channel, account_id)
    if channel is Channel.TELEGRAM:
        await _telegram(http, providers, account, "deleteWebhook", {})
    elif channel is Channel.VIBER:
        await _viber(http, providers, account, "set_webhook", {"url": ""})
    await store.delete(channel, account_id)


async def _register_webhook(
    http: httpx.AsyncClient, providers: Providers, account: Account
) -> None:
    """Point a Telegram or Viber bot's webhook at ingest (other channels are set by hand)."""
    if account.channel not in (Channel.TELEGRAM, Channel.VIBER):
        return
    url = _webhook_url(providers, account.channel, account.id)
    body: dict[str, Any]
    if account.channel is Channel.TELEGRAM:
        body = {"url": url, "secret_token": account.secrets["webhook_secret"]}
        await _telegram(http, providers, account, "setWebhook", body)
    else:
        body = {"url": url, "event_types": VIBER_EVENTS, "send_name": True, "send_photo": True}
        await _viber(http, providers, account, "set_webhook", body)


async def _telegram(
    http: httpx.AsyncClient,
    providers: Providers,
    account: Account,
    method: str,
    body: dict[str, Any] | None,
) -> Any:
    # Where the check asked (the account's api_base_url first): a bot on a local Bot API
    # server gets its webhook there, not at api.telegram.org.
    token = account.secrets["token"]
    url = f"{api_base(account, providers.telegram)}/bot{token}/{method}"
    try:
        r = await _call(http, "POST", url, json=body or {})
    except (httpx.HTTPError, _TransientError) as exc:
        raise AdminError(502, "provider_unreachable", f"Telegram {method} failed: {exc}") from None
    data = response_object(r)
    if not data.get("ok"):
        desc = data.get("description", r.text[:200])
        status = 400 if r.status_code in (400, 401, 403, 404) else 502
        raise AdminError(status, "provider_refused", f"Telegram {method}: {desc}")
    return data.get("result")


async def _viber(
    http: httpx.AsyncClient,
    providers: Providers,
    account: Account,
    method: str,
    body: dict[str, Any],
) -> Any:
    url = f"{api_base(account, providers.viber)}/pa/{method}"
    headers = {"X-Viber-Auth-Token": account.secrets["token"]}
    try:
        r = await _call(http, "POST", url, json=body, headers=headers)
    except (httpx.HTTPError, _TransientError) as exc:
        raise AdminError(502, "provider_unreachable", f"Viber {method} failed: {exc}") from None
    data = response_object(r)
    if data.get("status") != 0:
        raise AdminError(
            400, "provider_refused", f"Viber {method}: {data.get('status_message', r.text[:200])}"
        )
    return data


def _need(values: dict[str, str], name: str) -> str:
    if not values.get(name):
        raise AdminError(422, "missing_secret", f"secrets.{name} is required")
    return values[name]


async def _existing(store: AccountStore, channel: Channel, account_id: str) -> Account:
    account = await store.get(channel, account_id)
    if account is None:
        raise AdminError(404, "unknown_account", f"no {channel.value} account {account_id!r}")
    return account


def _iso(value: datetime) -> str:
    return value.isoformat()
