"""Meta Conversions API client, with `user_data` normalized and hashed exactly as Meta's
own `facebook-business` SDK does (`facebook_business/adobjects/serverside/normalize.py`,
version 26.0.3, read from its source; the tests compare against the SDK itself).

The SDK's rules, reproduced here:
- every value is `lower().strip()`-ed first; a value that then looks hashed (64 hex, or 32
  hex: the SDK also passes MD5 through) is sent as it is, lowercased;
- `em`: must match `.+@.+\\..+`, else invalid;
- `ph`: spaces, dashes and parentheses removed, a leading `+` and up to two leading zeros
  removed (twice, as the SDK does), then it must be `^\\d{1,4}\\(?\\d{2,3}\\)?\\d{4,}$` and
  not start with 0, else invalid. Dots, letters or an inner `+` make it invalid;
- `ct`, `st`: digits, dots, whitespace, dashes and parentheses removed;
- `zp`: whitespace removed, then only what comes before the first dash (no 5-digit cut);
- `country`: everything but a-z removed, then it must be an ISO 3166-1 alpha-2 code;
- `fn`, `ln`, `db`, `ge` and `external_id`: only lowercased and trimmed (the SDK removes
  no punctuation from names and does not reformat dates);
- `f5first`, `f5last`: first 5 characters; `fi`: first character; `dobd`, `dobm`: two
  digits in range; `doby`: four digits;
- then SHA-256 of the UTF-8 bytes, as lowercase hex. Lists are de-duplicated.

Where this module knowingly differs from the SDK, always on inputs the SDK handles badly:
- a value that is empty after trimming is dropped; the SDK would send SHA-256("") for
  names and locations, which matches nobody;
- `ge` also accepts "female"/"male" (the SDK only takes its Gender enum, 'f' or 'm');
- `db` also accepts a `datetime.date` (formatted YYYYMMDD, Meta's documented format);
- `external_id` is hashed (SDK generic rule: trim, lowercase, SHA-256) unless the client
  is built with `hash_external_id=False`; the SDK sends it as given. Meta recommends
  hashing it; whatever is chosen must match what the browser pixel sends.
- The SDK raises on the first invalid value (bad email, phone or country). Here the
  client drops invalid values and reports them in `CapiResult.invalid`, so one bad CRM
  record does not sink a batch of 1000; `strict=True` raises `InvalidUserDataError` instead.
Never hashed: `client_ip_address`, `client_user_agent`, `fbc`, `fbp`, `lead_id`,
`ctwa_clid` and the other identifiers in `PLAIN_FIELDS`, which are sent as given.

Sending: `POST {graph}/{version}/{pixel_id}/events` with `{data, test_event_code?}`, the
token as a Bearer header (kept out of URLs and logs), batches of at most 1000 events,
`event_id` passed through for deduplication with the browser pixel. Events older than 7
days are skipped locally (Meta rejects the whole request for one of them) and reported.
Classification: 5xx, timeouts, `is_transient` RETRYABLE; Graph throttling codes (4, 17,
32, 613, 80004) and HTTP 429 RATE_LIMITED (Retry-After, else 60 s); 190 (the token
expired or was revoked) and HTTP 401 UNAUTHORIZED (the pixel waits for a valid token);
any other 4xx PERMANENT. When a later batch fails, `raw["events_accepted"]` counts the events of the
earlier batches that Meta already took (resending them is safe with `event_id`: Meta
deduplicates within 48 h).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from switchboard.outbound.errors import OutboundServiceError
from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.providers.transport import (
    DEFAULT_TIMEOUT,
    bearer_call,
    status_failure,
)

PROVIDER = "metacapi"
GRAPH_API = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v26.0"
MAX_BATCH = 1000
MAX_EVENT_AGE = 7 * 24 * 3600.0
_AGE_MARGIN = 60.0
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80004})
THROTTLE_WAIT = 60.0
INVALID_TOKEN = 190  # OAuthException: the access token expired or was revoked

HASHED_FIELDS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge")
"""user_data fields Meta wants as SHA-256 (lists allowed)."""
SINGLE_HASHED_FIELDS = ("f5first", "f5last", "fi", "dobd", "dobm", "doby")
"""Further fields the SDK hashes, each a single value."""
PLAIN_FIELDS = (
    "client_ip_address",
    "client_user_agent",
    "fbc",
    "fbp",
    "lead_id",
    "ctwa_clid",
    "subscription_id",
    "fb_login_id",
    "madid",
    "anon_id",
    "page_id",
    "page_scoped_user_id",
)
"""Never hashed: sent exactly as given."""

# The SDK's patterns (normalize.py), unchanged.
_LOCATION_EXCLUDED = re.compile(r"[0-9.\s\-()]")
_ISOCODE_EXCLUDED = re.compile(r"[^a-z]")
_EMAIL = re.compile(r".+@.+\..+")
_MD5 = re.compile(r"^[a-f0-9]{32}$")
_SHA256 = re.compile(r"^[a-f0-9]{64}$")
_YEAR = re.compile(r"^[0-9]{4}$")
_PHONE_PUNCTUATION = re.compile(r"[\s\-()]")
_PHONE_PREFIX = re.compile(r"^\+?0{0,2}")
_INTERNATIONAL = re.compile(r"^\d{1,4}\(?\d{2,3}\)?\d{4,}$")

_ISO_ALPHA_2 = """
    ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq
    br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm
    do dz ec ee eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs
    gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn
    kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq
    mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm
    pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv
    sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi
    vn vu wf ws ye yt za zm zw
"""
ISO_COUNTRIES = frozenset(_ISO_ALPHA_2.split())
"""ISO 3166-1 alpha-2, lowercase: the 249 codes of `pycountry` that the SDK checks with."""

_GENDERS = {"f": "f", "m": "m", "female": "f", "male": "m"}


class InvalidUserDataError(OutboundServiceError, ValueError):
    """A user_data value Meta's SDK would refuse (bad email, phone, country, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_hashed(value: str) -> bool:
    """What the SDK treats as already hashed: 64 (SHA-256) or 32 (MD5) lowercase hex."""
    return bool(_SHA256.match(value) or _MD5.match(value))


def _international_number(phone: str) -> str | None:
    """The SDK's `get_international_number`: prefix stripped again, then the pattern."""
    phone = _PHONE_PREFIX.sub("", phone)
    if phone.startswith("0"):
        return None
    match = _INTERNATIONAL.match(phone)
    return match.group() if match else None


def _two_digits(field: str, value: str, low: int, high: int, what: str) -> str:
    """The SDK's `dobd`/`dobm` rule: zero-padded to two characters, in range."""
    if len(value) == 1:
        value = "0" + value
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not low <= number <= high:
        raise InvalidUserDataError(
            field, f"{what} should be specified in '{'DD' if high == 31 else 'MM'}' format"
        )
    return value


def normalize(field: str, value: Any) -> str | None:
    """The normalized (unhashed) value the SDK would hash for `field`; None when empty.

    Already-hashed values come back as they are (lowercased). Raises InvalidUserDataError where
    the SDK raises.
    """
    if value is None:
        return None
    if isinstance(value, date):
        value = value.strftime("%Y%m%d")
    text = str(value)
    if not text:
        return None
    data = text.lower().strip()
    if is_hashed(data):
        return data
    if field == "em":
        if not _EMAIL.match(data):
            raise InvalidUserDataError(field, f"invalid email {text!r}")
    elif field in ("ct", "st"):
        data = _LOCATION_EXCLUDED.sub("", data)
    elif field == "zp":
        data = re.sub(r"\s", "", data).split("-")[0]
    elif field == "country":
        data = _ISOCODE_EXCLUDED.sub("", data)
        if data not in ISO_COUNTRIES:
            raise InvalidUserDataError(field, f"not an ISO 3166-1 alpha-2 country: {text!r}")
    elif field == "ph":
        data = _PHONE_PREFIX.sub("", _PHONE_PUNCTUATION.sub("", data))
        number = _international_number(data)
        if number is None:
            raise InvalidUserDataError(field, f"invalid phone number {text!r}")
        data = number
    elif field == "ge":
        if data not in _GENDERS:
            raise InvalidUserDataError(field, f"gender must be f or m, got {text!r}")
        data = _GENDERS[data]
    elif field in ("f5first", "f5last"):
        data = data[:5]
    elif field == "fi":
        data = data[:1]
    elif field == "dobd":
        data = _two_digits(field, data, 1, 31, "Day")
    elif field == "dobm":
        data = _two_digits(field, data, 1, 12, "Month")
    elif field == "doby" and not _YEAR.match(data):
        raise InvalidUserDataError(field, "Year should be specified in 'YYYY' format")
    return data or None


def hash_value(field: str, value: Any) -> str | None:
    """SHA-256 hex of the normalized value, the value itself if already hashed, None if
    empty. Raises InvalidUserDataError for values the SDK refuses."""
    data = normalize(field, value)
    if data is None or is_hashed(data):
        return data
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _values(value: Any) -> list[Any]:
    """One value or a collection of them, as a list."""
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def _hash_or_report(
    name: str, value: Any, invalid: list[InvalidUserDataError] | None
) -> str | None:
    """:func:`hash_value`; an invalid value raises, or with an ``invalid`` list is appended
    to it and gives None (dropped)."""
    try:
        return hash_value(name, value)
    except InvalidUserDataError as error:
        if invalid is None:
            raise
        invalid.append(error)
        return None


def normalize_user_data(
    user_data: Mapping[str, Any],
    *,
    hash_external_id: bool = True,
    invalid: list[InvalidUserDataError] | None = None,
) -> dict[str, Any]:
    """`user_data` ready for Meta: fields in HASHED_FIELDS (and `external_id` when
    `hash_external_id`) become de-duplicated lists of hashes, SINGLE_HASHED_FIELDS single
    hashes, everything else is passed through untouched.

    An invalid value raises InvalidUserDataError, unless an `invalid` list is given: then the
    value is dropped and the error appended to it.
    """
    out: dict[str, Any] = {}
    for name, raw in user_data.items():
        if raw is None:
            continue
        if name in HASHED_FIELDS or (name == "external_id" and hash_external_id):
            found = (_hash_or_report(name, item, invalid) for item in _values(raw))
            hashed = list(dict.fromkeys(h for h in found if h is not None))
            if hashed:
                out[name] = hashed
        elif name in SINGLE_HASHED_FIELDS:
            single = _hash_or_report(name, raw, invalid)
            if single is not None:
                out[name] = single
        elif name == "external_id":
            ids = list(dict.fromkeys(str(v) for v in _values(raw) if v is not None and v != ""))
            if ids:
                out[name] = ids
        else:
            out[name] = raw
    return out


@dataclass(frozen=True)
class CapiEvent:
    """One server event; `user_data` holds plain values (hashed on the way out).

    `extra` carries any other Meta event field (`opt_out`, `data_processing_options`,
    `app_data`, `referrer_url`, `messaging_channel`, ...), sent as given.
    """

    event_name: str
    event_time: int
    action_source: str
    user_data: Mapping[str, Any]
    event_id: str | None = None
    event_source_url: str | None = None
    custom_data: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The event as Meta's JSON, with `user_data` still plain."""
        out: dict[str, Any] = {
            "event_name": self.event_name,
            "event_time": self.event_time,
            "action_source": self.action_source,
            "user_data": dict(self.user_data),
        }
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.event_source_url is not None:
            out["event_source_url"] = self.event_source_url
        if self.custom_data is not None:
            out["custom_data"] = dict(self.custom_data)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Problem:
    """An event (its position in the input) that was skipped or lost a user_data value."""

    index: int
    field: str
    reason: str


@dataclass
class CapiResult:
    """What Meta took: `events_received` over all batches, their trace ids and messages,
    and the local problems (stale events skipped, invalid values dropped)."""

    events_received: int = 0
    fbtrace_ids: list[str] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    invalid: list[Problem] = field(default_factory=list)


def classify_error(response: httpx.Response, body: dict[str, Any] | None) -> ProviderError:
    """A failed Graph answer (see the module doc)."""
    error = (body or {}).get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    status = response.status_code
    message = str(error.get("message") or response.reason_phrase or status)
    if error.get("error_user_msg"):
        message = f"{message}: {error['error_user_msg']}"
    name = f"metacapi_{code}" if isinstance(code, int) else f"metacapi_{status}"
    if isinstance(code, int) and error.get("error_subcode"):
        name = f"{name}_{error['error_subcode']}"
    raw: dict[str, Any] = {"http_status": status}
    if error:
        raw["error"] = error
    if code == INVALID_TOKEN:
        return ProviderError(Failure.UNAUTHORIZED, name, message, raw=raw)
    return status_failure(
        PROVIDER,
        response,
        message,
        code=name,
        raw=raw,
        default_retry_after=THROTTLE_WAIT,
        throttled=code in THROTTLING_CODES,
        transient=error.get("is_transient") is True,
    )


class CapiClient:
    """Posts server events to pixels; one client for every pixel and token."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = GRAPH_API,
        graph_version: str = DEFAULT_GRAPH_VERSION,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        batch_size: int = MAX_BATCH,
        hash_external_id: bool = True,
        strict: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.graph_version = graph_version
        self.timeout = timeout
        self.batch_size = batch_size
        self.hash_external_id = hash_external_id
        self.strict = strict
        self._clock = clock

    def prepare(
        self, events: Sequence[CapiEvent | Mapping[str, Any]], result: CapiResult
    ) -> list[dict[str, Any]]:
        """The events as Meta's JSON with hashed user_data; stale events are left out and
        invalid values dropped (both noted in `result`), or raised when `strict`."""
        oldest = self._clock() - MAX_EVENT_AGE + _AGE_MARGIN
        prepared: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            payload = event.to_json() if isinstance(event, CapiEvent) else dict(event)
            event_time = payload.get("event_time")
            if isinstance(event_time, int | float) and event_time < oldest:
                result.skipped.append(Problem(index, "event_time", "older than 7 days"))
                continue
            errors: list[InvalidUserDataError] | None = None if self.strict else []
            user_data = payload.get("user_data")
            if isinstance(user_data, Mapping):
                payload["user_data"] = normalize_user_data(
                    user_data, hash_external_id=self.hash_external_id, invalid=errors
                )
            for error in errors or []:
                result.invalid.append(Problem(index, error.field, error.message))
            prepared.append(payload)
        return prepared

    async def send_events(
        self,
        pixel_id: str,
        access_token: str,
        events: Sequence[CapiEvent | Mapping[str, Any]],
        test_event_code: str | None = None,
        *,
        app_secret: str | None = None,
        graph_version: str | None = None,
    ) -> CapiResult:
        """Hash, batch (at most `batch_size` per request) and post the events.

        Batches go one after another; the first failing batch raises ProviderError with
        `raw["events_accepted"]` (events of earlier batches Meta took) and `raw["batch"]`.
        """
        result = CapiResult()
        payloads = self.prepare(events, result)
        for start in range(0, len(payloads), self.batch_size):
            batch = payloads[start : start + self.batch_size]
            try:
                answer = await self.send_batch(
                    pixel_id,
                    access_token,
                    batch,
                    test_event_code,
                    app_secret=app_secret,
                    graph_version=graph_version,
                )
            except ProviderError as error:
                error.raw["events_accepted"] = result.events_received
                error.raw["batch"] = start // self.batch_size
                raise
            received = answer.get("events_received")
            result.events_received += received if isinstance(received, int) else len(batch)
            if answer.get("fbtrace_id"):
                result.fbtrace_ids.append(str(answer["fbtrace_id"]))
            messages = answer.get("messages")
            if isinstance(messages, list):
                result.messages.extend(messages)
        return result

    async def send_batch(
        self,
        pixel_id: str,
        access_token: str,
        events: Sequence[Mapping[str, Any]],
        test_event_code: str | None = None,
        *,
        app_secret: str | None = None,
        graph_version: str | None = None,
    ) -> dict[str, Any]:
        """Post already prepared (hashed) events as one request; Meta's answer as JSON."""
        if not 1 <= len(events) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} events, got {len(events)}")
        body: dict[str, Any] = {"data": [dict(e) for e in events]}
        if test_event_code:
            body["test_event_code"] = test_event_code
        if app_secret:
            body["appsecret_proof"] = hmac.new(
                app_secret.encode(), access_token.encode(), hashlib.sha256
            ).hexdigest()
        version = graph_version or self.graph_version
        url = f"{self.base_url}/{version}/{pixel_id}/events"
        answer = await bearer_call(
            self.http, PROVIDER, url, access_token, classify_error, timeout=self.timeout, json=body
        )
        return answer or {}
