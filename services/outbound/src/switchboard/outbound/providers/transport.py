"""What every provider client shares: one HTTP attempt with an explicit timeout, transport
failures turned into `ProviderError`, and the small parsing helpers around answers.

The clients never retry on their own: the outbound core owns backoff, circuit breaking and
rate limits, so a client must make exactly one attempt and say what went wrong.
"""

from __future__ import annotations

import base64
import binascii
import math
import mimetypes
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from switchboard.events.catalog.outbound import MediaSource
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.runtime.accounts import Account

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Sends: a provider that has not answered in 10 s is treated as down for this attempt."""

UPLOAD_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
"""Multipart uploads carry up to 50 MB (Telegram), so writing and reading may take longer."""

# Failures before the request reached the provider: the message was certainly not sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (tokens travel in Telegram URLs) replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def transport_failure(
    provider: str, exc: httpx.HTTPError, secrets: Iterable[str] = ()
) -> ProviderError:
    """A timeout, refused connection or dropped connection: worth another attempt.

    `raw["maybe_sent"]` tells the core whether the provider may have acted on the request
    (the request left this process but no answer came back), which matters for idempotency:
    a connect failure is certainly not a send, a read timeout may be one.
    """
    maybe_sent = not isinstance(exc, _NOT_SENT)
    timeout = isinstance(exc, httpx.TimeoutException)
    detail = redact(str(exc) or type(exc).__name__, secrets)
    return ProviderError(
        failure=Failure.RETRYABLE,
        code=f"{provider}_{'timeout' if timeout else 'network'}",
        reason=f"{type(exc).__name__}: {detail}",
        raw={"maybe_sent": maybe_sent, "error": type(exc).__name__},
    )


async def send_request(
    http: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    timeout: httpx.Timeout | float,
    secrets: Iterable[str] = (),
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP request with an explicit timeout; transport errors become RETRYABLE, a
    malformed URL (a bad `api_base_url` setting) PERMANENT."""
    try:
        return await http.request(method, url, timeout=timeout, **kwargs)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ProviderError(
            Failure.PERMANENT,
            f"{provider}_config",
            redact(f"invalid URL: {exc}", secrets),
            raw={"maybe_sent": False},
        ) from exc
    except httpx.HTTPError as exc:
        raise transport_failure(provider, exc, secrets) from exc


Classify = Callable[[httpx.Response, dict[str, Any] | None], ProviderError]
"""How a provider reads a refused call: the answer and its JSON object -> the error."""


async def bearer_call(
    http: httpx.AsyncClient,
    provider: str,
    url: str,
    token: str,
    classify: Classify,
    *,
    timeout: httpx.Timeout | float,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """One POST authorized by the bearer ``token`` (Graph API calls): the answer's JSON
    object, or the ProviderError ``classify`` makes of a refusal."""
    headers = {"Authorization": f"Bearer {token}"}
    response = await send_request(
        http, provider, "POST", url, timeout=timeout, secrets=[token], headers=headers, **kwargs
    )
    answer = json_object(response)
    if not response.is_success:
        raise classify(response, answer)
    return answer


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it is not one (HTML error pages, empty)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def retry_after_header(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def status_failure(
    provider: str,
    response: httpx.Response,
    reason: str | None = None,
    *,
    code: str | None = None,
    raw: dict[str, Any] | None = None,
    default_retry_after: float = 1.0,
    throttled: bool = False,
    transient: bool = False,
) -> ProviderError:
    """The generic reading of an HTTP error status: 429 rate limited (Retry-After), 401 the
    account's credentials refused (unauthorized), 408 and 5xx retryable, any other 4xx
    permanent. Providers apply their own codes first, or say
    that their answer means a throttle (``throttled``) or a passing fault (``transient``)
    whatever its status."""
    status = response.status_code
    text = reason or response.reason_phrase or f"HTTP {status}"
    name = code or f"{provider}_{status}"
    if status == 429 or throttled:
        after = retry_after_header(response.headers)
        return ProviderError(
            Failure.RATE_LIMITED,
            name,
            text,
            retry_after=default_retry_after if after is None else after,
            scope=Scope.ACCOUNT,
            raw=raw or {},
        )
    if status >= 500 or status == 408 or transient:
        return ProviderError(Failure.RETRYABLE, name, text, raw=raw or {})
    if status == 401:
        return ProviderError(Failure.UNAUTHORIZED, name, text, raw=raw or {})
    return ProviderError(Failure.PERMANENT, name, text, raw=raw or {})


def missing_config(provider: str, *needed: str) -> ProviderError:
    """An account without the settings or secrets (``needed``, e.g. ``"secrets['token']"``)
    that every call needs: a PERMANENT ``<provider>_config`` failure (retrying cannot help)."""
    return ProviderError(
        Failure.PERMANENT, f"{provider}_config", "the account needs " + " and ".join(needed)
    )


def required_secret(account: Account, provider: str, name: str) -> str:
    """The account's secret ``name``, without which no call can be made (see
    `missing_config`)."""
    secret = account.secrets.get(name)
    if not secret:
        raise missing_config(provider, f"secrets['{name}']")
    return secret


def unsupported(provider: str, what: str) -> ProviderError:
    """Content the channel cannot carry: no provider call is made, and retrying is useless."""
    return ProviderError(Failure.PERMANENT, f"{provider}_unsupported", what)


def inline_upload(
    provider: str, source: MediaSource, default_name: str, default_mime: str
) -> tuple[str, bytes, str]:
    """Media given as bytes, as a multipart upload takes it: (file name, bytes, MIME type),
    the name and type guessed when not given. Text that is not base64 is a PERMANENT
    ``<provider>_bad_media`` (the same bytes never decode on a retry)."""
    try:
        data = base64.b64decode(source.data_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(
            Failure.PERMANENT, f"{provider}_bad_media", "data_base64 is not valid base64"
        ) from None
    name = source.file_name or default_name
    mime = source.mime_type or mimetypes.guess_type(name)[0] or default_mime
    return name, data, mime
