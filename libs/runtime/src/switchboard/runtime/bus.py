"""The bus: a NatsClient connection, idempotent provisioning of the catalog's streams and buckets,
and publishing catalog messages with trace context and a JetStream ack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import _HEADER_KEY_RE, _HEADER_VALUE_NEWLINES
from nats.aio.client import Client as NatsClient
from nats.errors import BadHeaderError, BadSubjectError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    PubAck,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue
from nats.protocol.command import hpub_cmd
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from switchboard.events import Envelope, Message, encode
from switchboard.events.streams import BUCKETS, STREAMS, BucketSpec, Retention, StreamSpec
from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.failures import InfrastructureError
from switchboard.runtime.logging import get_logger
from switchboard.runtime.tracing import inject_headers, produce_span

log = get_logger(__name__)


# JSStreamMsgDeleteFailedF: the answer to deleting a message, also when it is not there.
_DELETE_FAILED = 10057


# Answers a JetStream cluster gives while it is busy electing or placing replicas.
class PlacementPendingError(InfrastructureError):
    """A clustered JetStream cannot place the stream's replicas yet (its peers are still
    joining: "no suitable peers for placement"); asked again shortly, it can."""


_TRANSIENT = (
    NatsTimeoutError,
    NoRespondersError,
    ServiceUnavailableError,
    asyncio.TimeoutError,
    PlacementPendingError,
)
# err_code of "no suitable peers for placement" (a 400, like "stream name already in use").
_NO_PEERS = 10005

# A replicated stream answers a publish whose Nats-Msg-Id is being stored by another publish
# right now with this (a 409). Asked again a moment later, it says "duplicate" with the
# first one's sequence, or stores it if that first publish failed after all.
_ID_IN_PROCESS = 10158


def _id_in_process(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.err_code == _ID_IN_PROCESS


class PayloadTooLargeError(SwitchboardRuntimeError, ValueError):
    """A message larger than the server's ``max_payload``: refused before it is sent (the
    server would answer it by closing the connection, and nats-py would not reconnect)."""

    def __init__(self, subject: str, size: int, limit: int) -> None:
        super().__init__(f"message on {subject} is {size} bytes, over the server's {limit}")
        self.subject, self.size, self.limit = subject, size, limit


_HEADER_KEYS: dict[str, bytes] = {}  # a key as given -> its encoded "Name: " (validated)


def encode_header_key(k: str) -> bytes | None:
    """``k`` as nats-py writes it (``Name: ``), None for a blank key (nats-py skips it);
    a key nats-py refuses raises BadHeaderError. Validated once per key (nats-py matched a
    regex per key per message)."""
    key = _HEADER_KEYS.get(k)
    if key is None:
        name = k.strip()
        if not name:
            return None
        if not _HEADER_KEY_RE.fullmatch(name):
            raise BadHeaderError(name)
        key = name.encode() + b": "
        if len(_HEADER_KEYS) < 4096:
            _HEADER_KEYS[k] = key
    return key


def encode_header_value(v: str) -> bytes:
    """``v`` as nats-py writes it: stripped, CR and LF made spaces (``str.translate`` with a
    table costs ~1 us a value, so only when one is there), with its CRLF."""
    value = v.strip()
    if "\r" in value or "\n" in value:
        value = value.translate(_HEADER_VALUE_NEWLINES)
    return value.encode() + b"\r\n"


def encode_headers(headers: dict[str, str]) -> bytes:
    """The NATS header block of ``headers``, byte for byte as nats-py writes it, faster.
    nats-py's took 13.5 us for the RAW envelope's 13 headers, 18 of the ingest's 114 us of
    CPU per webhook (py-spy, bench_ingest with the normalizer off); this one 2.3 us."""
    parts = [b"NATS/1.0\r\n"]
    for k, v in headers.items():
        key = encode_header_key(k)
        if key is not None:
            parts.append(key + encode_header_value(v))
    parts.append(b"\r\n")
    return b"".join(parts)


class EncodedHeaders(dict[str, str]):
    """Headers that carry their encoded NATS block, so a publish encodes them once: to
    check the size against ``max_payload`` and to send. A producer that publishes the same
    constant headers on every message (ingest's RAW envelope) encodes those once and only
    its varying ones per message. Any change to the dict drops the block (nats-py adds a
    header to some publishes, and a test may change one), so it is never stale."""

    __slots__ = ("_block",)

    def __init__(self, headers: dict[str, str], block: bytes | None = None) -> None:
        super().__init__(headers)
        self._block = block

    @property
    def block(self) -> bytes:
        if self._block is None:
            self._block = encode_headers(self)
        return self._block

    def _changed(self) -> None:
        self._block = None

    def __setitem__(self, key: str, value: str) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._changed()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> EncodedHeaders:  # type: ignore[override,misc]
        self._changed()
        return super().__ior__(other)

    def update(self, *args: Any, **kwargs: str) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: str = "") -> str:
        self._changed()
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self._changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, str]:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        self._changed()
        super().clear()


_NAMES: dict[bytes, str | None] = {}  # a header name as read -> its key (None: skipped)


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """A message's header lines (``Name: Value`` each, after ``NATS/1.0``) as nats-py 2.16's
    ``_parse_header_lines`` reads them, with each name decoded and checked once instead of
    per message: 9.9 -> 3.5 us for the RAW envelope's 13 headers (timeit). Every message
    read pays it; the CRM replay spent a fifth of its CPU parsing headers (py-spy)."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        if name in _NAMES:
            key = _NAMES[name]
        else:
            try:
                text = name.strip().decode("ascii")
                # header names are tokens: one with whitespace inside is skipped, as nats-py does
                key = None if any(c.isspace() for c in text) else text
            except UnicodeDecodeError:
                key = None  # a non-ASCII name is skipped, as nats-py does
            if len(_NAMES) < 4096:
                _NAMES[name] = key
        if key is not None:
            out[key] = value.strip().decode("utf-8", "replace")
    return out


class _Client(NatsClient):
    """nats-py's client, publishing headers through :func:`encode_headers` and reading them
    through :func:`parse_header_lines`; the rest of ``_send_publish`` is nats-py's (2.16)
    as it is."""

    _parse_header_lines = staticmethod(parse_header_lines)

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        if headers is None:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        if subject == "":
            raise BadSubjectError
        block = headers.block if isinstance(headers, EncodedHeaders) else encode_headers(headers)
        pub_cmd = hpub_cmd(subject, reply, block, payload)
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(pub_cmd)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()


_RETENTION = {
    Retention.LIMITS: RetentionPolicy.LIMITS,
    Retention.WORK_QUEUE: RetentionPolicy.WORK_QUEUE,
    Retention.INTEREST: RetentionPolicy.INTEREST,
}


def stream_config(
    spec: StreamSpec, replicas: int = 1, duplicate_window_s: float | None = None
) -> StreamConfig:
    """The nats-py config of a catalog stream (``duplicate_window_s`` overrides the spec's
    window for every stream: a deployment setting, and tests shrink it)."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        description=spec.description,
        retention=_RETENTION[spec.retention],
        max_age=float(spec.max_age_s),
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        duplicate_window=float(duplicate_window_s or spec.duplicate_window_s),
        max_msg_size=spec.max_msg_size,
        num_replicas=max(replicas, spec.replicas),
        deny_delete=spec.deny_delete,
        allow_direct=spec.allow_direct,
        allow_msg_schedules=spec.allow_msg_schedules or None,
    )


def bucket_config(spec: BucketSpec, replicas: int = 1) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=spec.name,
        description=spec.description,
        history=spec.history,
        ttl=float(spec.ttl_s) if spec.ttl_s else None,
        storage=StorageType.FILE,
        replicas=max(replicas, spec.replicas),
    )


@dataclass
class Bus:
    """A connected NatsClient client with its JetStream context."""

    nc: NatsClient
    js: JetStreamContext
    source: str
    closing: bool = False  # our own close/drain: the connection ending is not news
    # Called once when the connection is closed for good without our asking (nats-py
    # reconnects after a network failure, but not after a server -ERR such as a payload
    # or authorization violation): the process cannot work any more.
    on_lost: list[Callable[[], None]] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        """True when the connection is closed for good and we did not close it."""
        return self.nc.is_closed and not self.closing

    @property
    def max_payload(self) -> int:
        """The server's ``max_payload`` (headers included), as it announced at connect."""
        return int(self.nc.max_payload)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        source: str | None = None,
        user: str | None = None,
        password: str | None = None,
        creds: str | None = None,
        connect_timeout: float = 5.0,
    ) -> Bus:
        """Connect with unlimited reconnects (the bus coming back must not need a restart)."""

        async def on_error(exc: Exception) -> None:
            log.warning("nats error", error=str(exc))

        async def on_disconnect() -> None:
            if not (nc.is_closed or nc.is_draining):  # our own close is not news
                log.warning("nats disconnected")

        async def on_reconnect() -> None:
            log.info("nats reconnected")

        buses: list[Bus] = []  # the one made below; the callback needs it

        async def on_closed() -> None:
            for bus in buses:
                if not bus.closing:
                    log.error("nats connection closed for good", error=repr(nc.last_error))
                    for hook in bus.on_lost:
                        hook()

        nc = _Client()
        await nc.connect(
            servers=[u.strip() for u in url.split(",")],
            name=name,
            user=user,
            password=password,
            user_credentials=creds,
            # nats-py annotates these as int but sleeps on them; sub-second waits matter here
            connect_timeout=connect_timeout,  # type: ignore[arg-type]
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,  # type: ignore[arg-type]
            allow_reconnect=True,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            closed_cb=on_closed,
        )
        bus = cls(nc=nc, js=nc.jetstream(), source=source or f"switchboard://{name}")
        buses.append(bus)
        return bus

    async def provision(
        self,
        replicas: int = 1,
        patience_s: float = 60.0,
        duplicate_window_s: float | None = None,
    ) -> None:
        """Create or update every stream and bucket of the catalog; safe to run concurrently.

        A clustered JetStream answers slowly or "temporarily unavailable" while it elects
        leaders and places replicas (several instances provisioning at once, a node
        restarting), so each step is retried with backoff for ``patience_s`` instead of
        failing the start-up.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            stop=stop_after_delay(patience_s),
            reraise=True,
        )
        for spec in STREAMS:
            async for attempt in retrying:
                with attempt:
                    await self.ensure_stream(spec, replicas, duplicate_window_s)
        for bucket in BUCKETS:
            async for attempt in retrying:
                with attempt:
                    await self.ensure_bucket(bucket, replicas)

    async def ensure_stream(
        self, spec: StreamSpec, replicas: int = 1, duplicate_window_s: float | None = None
    ) -> None:
        config = stream_config(spec, replicas, duplicate_window_s)
        try:
            await self.js.add_stream(config)
        except BadRequestError as exc:
            if exc.err_code == _NO_PEERS:
                # Found on a loaded machine: a cluster whose peers were still joining
                # answered 400, which read as "exists" and then failed the update with 404.
                raise PlacementPendingError(f"{spec.name}: {exc.description}") from None
            # Exists (maybe created by another instance): bring limits in line. Some fields
            # (retention, storage) cannot change in place; keep the stream and say so.
            try:
                await self.js.update_stream(config)
            except NotFoundError:
                raise PlacementPendingError(f"{spec.name}: not created yet") from None
            except BadRequestError as exc:
                log.warning("stream config differs", stream=spec.name, error=str(exc))

    async def ensure_bucket(self, spec: BucketSpec, replicas: int = 1) -> KeyValue:
        try:
            return await self.js.key_value(spec.name)
        except (NotFoundError, BadRequestError):
            try:
                return await self.js.create_key_value(bucket_config(spec, replicas))
            except BadRequestError:
                return await self.js.key_value(spec.name)

    async def kv(self, bucket: str) -> KeyValue:
        return await self.js.key_value(bucket)

    async def publish(
        self,
        model: Message,
        *,
        cause: Envelope | None = None,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        **envelope: Any,
    ) -> PubAck:
        """Encode ``model`` and publish it, returning once JetStream has stored it."""
        enc = encode(model, source=self.source, cause=cause, **envelope)
        hdrs = EncodedHeaders(enc.headers)  # encoded once, in _store, after what is added here
        if headers:
            hdrs.update(headers)
        with produce_span(f"publish {model.name}", **{"messaging.destination": enc.subject}):
            inject_headers(hdrs)
            return await self._store(enc.subject, enc.body, hdrs, timeout)

    async def publish_raw(
        self, subject: str, body: bytes, headers: dict[str, str], timeout: float = 5.0
    ) -> PubAck:
        """Publish bytes with headers as given (``Nats-Msg-Id`` must already be set)."""
        return await self._store(subject, body, headers, timeout)

    async def _store(
        self, subject: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> PubAck:
        """``js.publish``, asking again while another publish of the same id is in process
        (duplicates racing each other must all be answered as stored). A message over the
        server's ``max_payload`` raises PayloadTooLargeError instead of being sent."""
        if not isinstance(headers, EncodedHeaders):
            headers = EncodedHeaders(headers)  # encoded once: for the size and to send
        size = len(headers.block) + len(body)
        if size > self.nc.max_payload:
            raise PayloadTooLargeError(subject, size, self.nc.max_payload)
        # The retrying machinery only when needed: set up for every publish, it cost ingest
        # a third of its webhooks/s (5.5k against 8.6k, bench_ingest).
        try:
            return await self.js.publish(subject, body, timeout=timeout, headers=headers)
        except APIError as exc:
            if not _id_in_process(exc):
                raise
        retrying = AsyncRetrying(
            retry=retry_if_exception(_id_in_process),
            wait=wait_exponential_jitter(multiplier=0.005, max=0.5, jitter=0.01),
            stop=stop_after_delay(timeout),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self.js.publish(subject, body, timeout=timeout, headers=headers)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def delete_msg(self, stream: str, seq: int) -> bool:
        """Delete message ``seq`` from ``stream`` (the server overwrites it); ``False`` when it
        was already gone: acked from a work queue, deleted by another hand, or never there.

        The one place every delete goes through. JetStream does not answer a missing message
        with a 404: it answers 500, ``err_code`` 10057 ("no message found", "stream store
        EOF"), which nats-py raises as ``ServerError``. Suppressing ``NotFoundError`` (as
        every caller did) therefore never worked, and a delete that lost a race to an ack
        failed its request. 10057 is the generic "delete failed", so absence is confirmed by
        reading the message; any other failure is raised."""
        if seq <= 0:
            return False
        try:
            await self.js.delete_msg(stream, seq)
        except APIError as exc:
            if exc.err_code != _DELETE_FAILED or await self.stored(stream, seq) is not None:
                raise
            return False
        return True

    async def stored(
        self, stream: str, seq: int | None = None, subject: str | None = None
    ) -> RawStreamMsg | None:
        """The stored message at ``seq``, or the last on ``subject``; None when there is none
        (acked from a work queue, deleted, or never there)."""
        try:
            return await self.js.get_msg(stream, seq=seq, subject=subject)
        except NotFoundError:
            return None

    async def ready(self, timeout: float = 2.0) -> bool:
        """True when connected and JetStream answers (used by ``/readyz``)."""
        if not self.nc.is_connected:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self.js.account_info()
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Drain: finish what is in flight, then close."""
        self.closing = True
        if self.nc.is_closed:
            return
        try:
            async with asyncio.timeout(10):
                await self.nc.drain()
        except Exception:
            await self.nc.close()
