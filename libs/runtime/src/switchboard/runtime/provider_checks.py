"""Credential checks: an account's secrets and settings validated against its provider
without storing or sending anything. Ingest runs them before saving an account (``accounts
check``; ``accounts add`` runs it first); the services that call providers run them as the
periodic probe of ``/health/integrations`` (``integrations``).

Each provider gets its cheapest call that proves the credentials: Telegram ``getMe``, the
WhatsApp phone number's info with the access token (the number belongs to the token),
Viber ``get_account_info``, a SendPulse access token, a Meta Conversions API test event
(only with a ``test_event_code``, so nothing counts as a real conversion). Shapes that need
no call (a Meta app secret, a Standard Webhooks signing secret) are checked locally.
Every problem names the field it is about (``secrets.token``, ``settings.phone_number_id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from switchboard.events.catalog.common import Channel
from switchboard.runtime import conversion_settings, viber_welcome
from switchboard.runtime.accounts import Account
from switchboard.runtime.errors import SwitchboardRuntimeError

TELEGRAM_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,100}")
META_APP_SECRET = re.compile(r"[0-9a-fA-F]{32}")
GRAPH_VERSION = "v26.0"
TIMEOUT_S = 10.0
RECENT_ERROR_S = 600.0  # a webhook delivery error younger than this is a current problem


@dataclass(frozen=True)
class Endpoints:
    """Where the providers' APIs are; an account's ``settings.api_base_url`` overrides."""

    telegram: str = "https://api.telegram.org"
    viber: str = "https://chatapi.viber.com"
    graph: str = "https://graph.facebook.com"
    sendpulse: str = "https://api.sendpulse.com"


@dataclass
class CheckReport:
    """What a check found: problems (each naming a field), facts the provider told about the
    account (a bot's username, a number's display name), and notes on what was not checked."""

    problems: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, path: str, message: str) -> None:
        self.problems.append({"path": path, "message": message})

    def body(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "facts": self.facts, "notes": self.notes}


def provider_of(account: Account) -> str:
    """The provider an account talks to: its channel, or for ``generic`` accounts the
    ``settings.provider`` (``sendpulse``, ``metacapi``) when it names one."""
    if account.channel is Channel.GENERIC:
        return str(account.settings.get("provider") or "webhook")
    return account.channel.value


async def check_account(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    account: Account,
    webhook_url: str | None = None,
) -> CheckReport:
    """Validate ``account`` against its provider; stores nothing, changes nothing there.
    With ``webhook_url`` (an account already registered), also check that the provider
    delivers there and had no recent delivery error (Telegram, Viber)."""
    report = CheckReport()
    provider = provider_of(account)
    checker = _CHECKS.get(provider)
    if checker is None:
        report.problem("settings.provider", f"unknown provider {provider!r}")
        return report
    try:
        await checker(http, endpoints, account, report)
        if webhook_url and report.ok:
            if provider == "telegram":
                await _telegram_webhook(http, endpoints, account, webhook_url, report)
            elif provider == "viber":
                _same_webhook(report, "Viber", report.facts.get("webhook"), webhook_url)
    except _CheckEndedError:
        pass  # the report names why; nothing further can be checked
    return report


def _same_webhook(report: CheckReport, who: str, actual: object, expected: str) -> None:
    if actual != expected:
        report.problem("webhook", f"{who} delivers to {actual or 'nowhere'}, not to {expected}")


async def _telegram_webhook(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    account: Account,
    expected: str,
    report: CheckReport,
) -> None:
    """getWebhookInfo: the URL Telegram delivers to, what waits, and its last error."""
    token = account.secrets["token"]
    url = f"{api_base(account, endpoints.telegram)}/bot{token}/getWebhookInfo"
    _, data = await _ask(http, report, "Telegram getWebhookInfo", "POST", url, json={})
    info = data.get("result") or {}
    report.facts.update(
        webhook_url=info.get("url"), pending_update_count=info.get("pending_update_count")
    )
    _same_webhook(report, "Telegram", info.get("url"), expected)
    error_at = info.get("last_error_date")
    if isinstance(error_at, int) and time.time() - error_at < RECENT_ERROR_S:
        report.problem(
            "webhook", f"Telegram could not deliver: {info.get('last_error_message', '?')}"
        )


def api_base(account: Account, default: str) -> str:
    """Where ``account``'s provider API is: its ``settings.api_base_url`` (a local Bot API
    server, the sandbox) or ``default``."""
    return str(account.settings.get("api_base_url") or default).rstrip("/")


def _required(account: Account, report: CheckReport, *names: str) -> dict[str, str]:
    """The named secrets/settings (``secrets.x`` / ``settings.x``) that are present; a
    problem for each one missing."""
    found: dict[str, str] = {}
    for name in names:
        kind, key = name.split(".", 1)
        values = account.secrets if kind == "secrets" else account.settings
        value = values.get(key)
        if value in (None, ""):
            report.problem(name, "required")
        else:
            found[name] = str(value)
    return found


class _CheckEndedError(SwitchboardRuntimeError):
    """A problem the report already names leaves nothing further to check (a credential
    missing, the provider not answering): the check of this account ends there
    (``check_account`` catches it)."""


def _needed(account: Account, report: CheckReport, *names: str) -> tuple[str, ...]:
    """The named secrets/settings, in order; when one is missing (each is reported, as by
    ``_required``) the check ends."""
    found = _required(account, report, *names)
    if len(found) < len(names):
        raise _CheckEndedError
    return tuple(found[name] for name in names)


async def _ask(
    http: httpx.AsyncClient, report: CheckReport, who: str, method: str, url: str, **kw: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    """One call and its JSON object. A provider unreachable or failing on its side (5xx) is a
    problem of the check itself (path ``provider``), not of a field, and the check ends."""
    try:
        r = await http.request(method, url, timeout=TIMEOUT_S, **kw)
    except httpx.HTTPError as exc:
        report.problem("provider", f"{who} unreachable: {type(exc).__name__}")
        raise _CheckEndedError from exc
    if r.status_code >= 500:
        report.problem("provider", f"{who} answered {r.status_code}")
        raise _CheckEndedError
    return r, response_object(r)


def response_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; {} when it is none (an HTML error page, a list, empty)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _telegram(
    http: httpx.AsyncClient, endpoints: Endpoints, account: Account, report: CheckReport
) -> None:
    (token,) = _needed(account, report, "secrets.token")
    if not TELEGRAM_TOKEN.fullmatch(token):
        report.problem("secrets.token", "not a bot token (<bot id>:<secret> from @BotFather)")
        return
    url = f"{api_base(account, endpoints.telegram)}/bot{token}/getMe"
    r, data = await _ask(http, report, "Telegram getMe", "POST", url, json={})
    if not data.get("ok"):
        why = data.get("description") or f"HTTP {r.status_code}"
        report.problem("secrets.token", f"Telegram refused the token (getMe: {why})")
    else:
        me = data.get("result") or {}
        report.facts.update(bot_id=me.get("id"), username=me.get("username"))


async def _whatsapp(
    http: httpx.AsyncClient, endpoints: Endpoints, account: Account, report: CheckReport
) -> None:
    secret = _required(account, report, "secrets.app_secret").get("secrets.app_secret")
    if secret is not None and not META_APP_SECRET.fullmatch(secret):
        report.problem(
            "secrets.app_secret",
            "not a Meta app secret (32 hexadecimal characters: App settings > Basic)",
        )
    token = account.secrets.get("access_token")
    if not token:
        report.notes.append("no secrets.access_token: webhooks only, nothing to check at Meta")
        return
    (number,) = _needed(account, report, "settings.phone_number_id")
    version = str(account.settings.get("graph_version") or GRAPH_VERSION)
    url = f"{api_base(account, endpoints.graph)}/{version}/{number}"
    auth = {"Authorization": f"Bearer {token}"}
    r, data = await _ask(http, report, "WhatsApp Cloud API", "GET", url, headers=auth)
    if r.status_code == 200:
        report.facts.update(
            display_phone_number=data.get("display_phone_number"),
            verified_name=data.get("verified_name"),
        )
        return
    err = data.get("error") or {}
    code, message = err.get("code"), err.get("message") or f"HTTP {r.status_code}"
    if code == 190:
        report.problem("secrets.access_token", f"Meta refused the token ({message})")
    elif code in (100, 33, 803):
        report.problem(
            "settings.phone_number_id",
            f"not a phone number this token may use ({message})",
        )
    else:
        report.problem("secrets.access_token", f"Meta refused the request ({message})")


async def _viber(
    http: httpx.AsyncClient, endpoints: Endpoints, account: Account, report: CheckReport
) -> None:
    (token,) = _needed(account, report, "secrets.token")
    for path, why in viber_welcome.problems(account.settings):
        report.problem(path, why)
    url = f"{api_base(account, endpoints.viber)}/pa/get_account_info"
    headers = {"X-Viber-Auth-Token": token}
    r, data = await _ask(http, report, "Viber", "POST", url, json={}, headers=headers)
    if data.get("status") != 0:
        why = data.get("status_message") or f"HTTP {r.status_code}"
        report.problem("secrets.token", f"Viber refused the token (get_account_info: {why})")
    else:
        report.facts.update(name=data.get("name"), uri=data.get("uri"))
        report.facts["webhook"] = data.get("webhook")


async def _sendpulse(
    http: httpx.AsyncClient, endpoints: Endpoints, account: Account, report: CheckReport
) -> None:
    client_id, client_secret = _needed(
        account, report, "secrets.client_id", "secrets.client_secret"
    )
    url = f"{api_base(account, endpoints.sendpulse)}/oauth/access_token"
    body = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    r, data = await _ask(http, report, "SendPulse", "POST", url, json=body)
    if r.status_code != 200 or not data.get("access_token"):
        why = data.get("message") or data.get("error_description") or data.get("error")
        report.problem(
            "secrets.client_secret",
            f"SendPulse refused the client credentials ({why or r.status_code})",
        )
    else:
        report.facts["token_expires_in_s"] = data.get("expires_in")


async def _metacapi(
    http: httpx.AsyncClient, endpoints: Endpoints, account: Account, report: CheckReport
) -> None:
    token = _required(account, report, "secrets.access_token").get("secrets.access_token")
    secret = account.secrets.get("app_secret")
    if secret and not META_APP_SECRET.fullmatch(secret):
        report.problem("secrets.app_secret", "not a Meta app secret (32 hexadecimal characters)")
    for path, why in conversion_settings.problems(account.settings):
        report.problem(path, why)
    test_code = account.settings.get("test_event_code")
    if token is None:
        return
    if not test_code:
        report.notes.append(
            "not checked at Meta: set settings.test_event_code (Events Manager > Test events) "
            "so the check sends a test event that is never counted"
        )
        return
    version = str(account.settings.get("graph_version") or GRAPH_VERSION)
    url = f"{api_base(account, endpoints.graph)}/{version}/{account.id}/events"
    event = {
        "event_name": "SwitchboardCheck",
        "event_time": int(time.time()),
        "action_source": "system_generated",
        "user_data": {"external_id": [hashlib.sha256(b"switchboard-check").hexdigest()]},
    }
    body = {"data": [event], "test_event_code": str(test_code), "access_token": token}
    r, data = await _ask(http, report, "Meta Conversions API", "POST", url, json=body)
    if r.status_code == 200:
        report.facts["events_received"] = data.get("events_received")
        return
    err = data.get("error") or {}
    message = err.get("message") or f"HTTP {r.status_code}"
    if err.get("code") == 190:
        report.problem("secrets.access_token", f"Meta refused the token ({message})")
    else:
        report.problem("id", f"Meta refused a test event for this pixel ({message})")


async def _webhook(
    http: httpx.AsyncClient, endpoints: Endpoints, account: Account, report: CheckReport
) -> None:
    secret = account.secrets.get("signing_secret")
    if not secret:
        report.notes.append("a signing secret will be generated")
        return
    if not secret.startswith("whsec_"):
        report.problem("secrets.signing_secret", "a Standard Webhooks secret starts with whsec_")
        return
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        report.problem("secrets.signing_secret", "not base64 after whsec_")
        return
    if not 24 <= len(key) <= 64:
        report.problem("secrets.signing_secret", "the key must be 24 to 64 bytes")


_CHECKS = {
    "telegram": _telegram,
    "whatsapp": _whatsapp,
    "viber": _viber,
    "sendpulse": _sendpulse,
    "metacapi": _metacapi,
    "webhook": _webhook,
}
