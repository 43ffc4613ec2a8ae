"""The MTProto port over HTTP to the sandbox's fake Telegram cloud (switchboard.sandbox.mtproto).

Tests and the dev stack run the gateway against this adapter; production uses
``telethon_adapter``. The fake's RPC error names are mapped to the port's errors exactly as
Telethon maps Telegram's (FLOOD_WAIT_X -> FloodWaitError(X), AUTH_KEY_DUPLICATED ->
AuthKeyDuplicatedError, ...), every call has a timeout, and a connection lives exactly as long
as its streaming ``/connect`` response: closing it (``disconnect()``, or the process dying)
is the disconnect the fake sees, so a killed instance never leaves a session "connected".

Usage::

    adapter = SandboxMtprotoAdapter("http://127.0.0.1:8090/mtproto")
    client = adapter.client(SessionConfig("s1", api_id=1, api_hash="x", session=string))
    await client.connect()
    async for update in client.updates(): ...
    await adapter.aclose()

``updates()`` ends when ``disconnect()`` is called and raises DisconnectedError when the fake
drops the connection (forced disconnect, idle timeout, server gone) or
AuthKeyDuplicatedError when the fake ends it because the key was connected twice. Every
other call on a dropped connection raises DisconnectedError (or the error that ended it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from switchboard.mtproto.ports import (
    AuthKeyUnregisteredError,
    DisconnectedError,
    Media,
    Message,
    MessageEdited,
    MessagesDeleted,
    MtprotoError,
    NewMessage,
    OutgoingMedia,
    PasswordNeededError,
    Peer,
    PeerType,
    SentCode,
    SessionConfig,
    Update,
    User,
    UserDeactivatedError,
    error_from_rpc,
)


def _error_of(response: httpx.Response) -> MtprotoError:
    """The port's exception for an error answer of the fake (any non-JSON body = dropped)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return error_from_rpc(body["error"])
    return DisconnectedError(f"sandbox answered HTTP {response.status_code}")


# --------------------------------------------------------------------------- wire -> port


def _date(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), tz=UTC)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def user_from_wire(data: Mapping[str, Any]) -> User:
    return User(
        id=int(data["id"]),
        username=_opt_str(data.get("username")),
        first_name=_opt_str(data.get("first_name")),
        last_name=_opt_str(data.get("last_name")),
        phone=_opt_str(data.get("phone")),
        bot=bool(data.get("bot", False)),
        lang_code=_opt_str(data.get("lang_code")),
    )


def peer_from_wire(data: Mapping[str, Any]) -> Peer:
    return Peer(
        id=int(data["id"]),
        type=PeerType(data["type"]),
        title=_opt_str(data.get("title")),
        username=_opt_str(data.get("username")),
        access_hash=_opt_int(data.get("access_hash")),
    )


def peer_to_wire(peer: Peer) -> dict[str, Any]:
    return {"id": peer.id, "type": peer.type.value, "access_hash": peer.access_hash}


_MEDIA_FIELDS = (
    "file_id",
    "mime_type",
    "file_name",
    "phone",
    "first_name",
    "last_name",
    "provider_kind",
)


def media_from_wire(data: Mapping[str, Any]) -> Media:
    latitude, longitude = data.get("latitude"), data.get("longitude")
    return Media(
        kind=data["kind"],
        file_size=_opt_int(data.get("file_size")),
        width=_opt_int(data.get("width")),
        height=_opt_int(data.get("height")),
        duration=_opt_int(data.get("duration")),
        latitude=None if latitude is None else float(latitude),
        longitude=None if longitude is None else float(longitude),
        **{name: _opt_str(data.get(name)) for name in _MEDIA_FIELDS},
    )


def message_from_wire(data: Mapping[str, Any]) -> Message:
    date = _date(data["date"])
    assert date is not None
    sender, media = data.get("sender"), data.get("media")
    return Message(
        peer=peer_from_wire(data["peer"]),
        id=int(data["id"]),
        date=date,
        text=str(data.get("text") or ""),
        sender=None if sender is None else user_from_wire(sender),
        out=bool(data.get("out", False)),
        reply_to_msg_id=_opt_int(data.get("reply_to_msg_id")),
        edit_date=_date(data.get("edit_date")),
        media=None if media is None else media_from_wire(media),
        grouped_id=_opt_int(data.get("grouped_id")),
        views=_opt_int(data.get("views")),
        post_author=_opt_str(data.get("post_author")),
    )


def update_from_wire(data: Mapping[str, Any]) -> Update:
    kind = data.get("kind")
    if kind == "new":
        return NewMessage(message_from_wire(data["message"]))
    if kind == "edited":
        return MessageEdited(message_from_wire(data["message"]))
    if kind == "deleted":
        peer = data.get("peer")
        return MessagesDeleted(
            ids=tuple(int(i) for i in data["ids"]),
            peer=None if peer is None else peer_from_wire(peer),
        )
    raise ValueError(f"unknown update kind {kind!r}")


# --------------------------------------------------------------------------- client


class _Closed:
    """End of the update stream; ``error`` is what ended it (None: our own disconnect)."""

    def __init__(self, error: MtprotoError | None) -> None:
        self.error = error


class SandboxMtprotoClient:
    """One session's connection to the fake; see the module docstring for the lifecycle."""

    def __init__(
        self,
        adapter: SandboxMtprotoAdapter,
        config: SessionConfig,
    ) -> None:
        self._adapter = adapter
        self._config = config
        self._session = config.session
        self._connection: str | None = None
        self._response: httpx.Response | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Update | _Closed] = asyncio.Queue()
        self._ended: MtprotoError | None = None  # why the connection dropped, if it did
        self._closing = False  # our own disconnect() is under way: the stream end is expected

    @property
    def config(self) -> SessionConfig:
        return self._config

    # -- connection -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the update stream; its first line says connected (or the fake refuses)."""
        if self.is_connected():
            return
        if self._connection is not None:  # dropped by the fake: clean up before reconnecting
            await self.disconnect()
        adapter = self._adapter
        device = self._config.device
        body = {
            "session": self._session,
            "api_id": self._config.api_id,
            "api_hash": self._config.api_hash,
            "session_id": self._config.session_id,
            "device": {
                "device_model": device.device_model,
                "system_version": device.system_version,
                "app_version": device.app_version,
                "lang_code": device.lang_code,
                "system_lang_code": device.system_lang_code,
            },
        }
        timeout = httpx.Timeout(adapter.timeout, read=adapter.stream_timeout)
        request = adapter.http.build_request(
            "POST", adapter.url("/connect"), json=body, timeout=timeout
        )
        try:
            response = await adapter.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise DisconnectedError(f"cannot reach the sandbox: {exc!r}") from exc
        try:
            if response.status_code != 200:
                await response.aread()
                raise _error_of(response)
            lines = response.aiter_lines()
            first = await asyncio.wait_for(_next_line(lines), adapter.timeout)
            if first is None or first.get("type") != "connected":
                raise DisconnectedError(f"unexpected first line from the sandbox: {first!r}")
        except BaseException as exc:
            await response.aclose()
            if isinstance(exc, httpx.HTTPError | TimeoutError):
                raise DisconnectedError(f"connect failed: {exc!r}") from exc
            raise
        self._connection = str(first["connection"])
        self._session = str(first["session"])
        self._response = response
        self._ended = None
        self._queue = asyncio.Queue()
        self._reader = asyncio.create_task(
            self._read(lines), name=f"mtproto-read-{first['key_id']}"
        )
        self._pinger = asyncio.create_task(self._ping(), name=f"mtproto-ping-{first['key_id']}")

    async def disconnect(self) -> None:
        """Tell the fake, then close the stream (the close alone also disconnects)."""
        connection, response = self._connection, self._response
        if connection is None:
            return
        self._closing = True
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pinger
        # Always tell the fake (even when the stream broke on our side): a reconnect must
        # not find the old connection still registered.
        with contextlib.suppress(httpx.HTTPError):
            await self._adapter.http.post(
                self._adapter.url(f"/connections/{connection}/disconnect"),
                timeout=self._adapter.timeout,
            )
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if response is not None:
            with contextlib.suppress(Exception):
                await response.aclose()
        self._connection, self._response = None, None
        self._pinger = self._reader = None
        self._closing = False
        self._queue.put_nowait(_Closed(None))

    def is_connected(self) -> bool:
        return self._connection is not None and self._ended is None

    def export_session(self) -> str:
        return self._session

    async def _read(self, lines: AsyncIterator[str]) -> None:
        """Feed updates to the queue until the stream ends; remember why it ended."""
        error: MtprotoError = DisconnectedError("the sandbox closed the connection")
        try:
            async for line in lines:
                if not line.strip():
                    continue
                item = json.loads(line)
                kind = item.get("type")
                if kind == "update":
                    self._queue.put_nowait(update_from_wire(item["update"]))
                elif kind == "closed":
                    name = item.get("error")
                    if name:
                        error = error_from_rpc(str(name))
                    else:
                        error = DisconnectedError(f"closed by the sandbox: {item.get('reason')}")
                    break
        except (httpx.HTTPError, ValueError) as exc:
            error = DisconnectedError(f"update stream broke: {exc!r}")
        if self._closing:
            return  # disconnect() ends the update iterator itself
        self._ended = error
        self._queue.put_nowait(_Closed(error))

    async def _ping(self) -> None:
        """Keep the connection alive at the fake while nothing else is called (idle rule)."""
        while self._ended is None:
            await asyncio.sleep(self._adapter.ping_interval)
            try:
                await self._call_path("ping", None)
            except MtprotoError:
                continue  # the reader notices a dropped connection
            except Exception:
                return  # the HTTP client was closed under us: nothing left to keep alive

    # -- calls ------------------------------------------------------------------------

    async def _call_path(self, tail: str, params: Mapping[str, Any] | None) -> Any:
        if self._ended is not None:
            raise self._ended
        if self._connection is None:
            raise DisconnectedError("not connected")
        url = self._adapter.url(f"/connections/{self._connection}/{tail}")
        try:
            response = await self._adapter.http.post(
                url, json=dict(params or {}), timeout=self._adapter.timeout
            )
        except httpx.HTTPError as exc:
            raise DisconnectedError(f"call failed: {exc!r}") from exc
        if response.status_code != 200:
            raise _error_of(response)
        return response.json()

    async def _invoke(self, method: str, **params: Any) -> Any:
        return (await self._call_path(f"invoke/{method}", params))["result"]

    async def is_authorized(self) -> bool:
        """True when signed in; False for 401s (not signed in, revoked, banned, password
        pending), as Telethon's is_user_authorized; other errors are raised."""
        try:
            return bool((await self._invoke("updates.getState"))["authorized"])
        except (AuthKeyUnregisteredError, UserDeactivatedError, PasswordNeededError):
            return False

    async def get_me(self) -> User:
        return user_from_wire(await self._invoke("users.getUsers", id=["self"]))

    async def send_code(self, phone: str) -> SentCode:
        result = await self._invoke("auth.sendCode", phone=phone)
        return SentCode(
            phone_code_hash=str(result["phone_code_hash"]),
            type=str(result.get("type", "app")),
            timeout_s=_opt_int(result.get("timeout")),
        )

    async def sign_in_code(self, phone: str, code: str, phone_code_hash: str) -> User:
        result = await self._invoke(
            "auth.signIn", phone=phone, code=code, phone_code_hash=phone_code_hash
        )
        return user_from_wire(result)

    async def sign_in_password(self, password: str) -> User:
        return user_from_wire(await self._invoke("auth.checkPassword", password=password))

    async def log_out(self) -> None:
        await self._invoke("auth.logOut")

    async def resolve_peer(self, ref: str) -> Peer:
        return peer_from_wire(await self._invoke("contacts.resolveUsername", ref=ref))

    async def get_history(
        self, peer: Peer, *, offset_id: int = 0, limit: int = 100, min_id: int = 0
    ) -> list[Message]:
        result = await self._invoke(
            "messages.getHistory",
            peer=peer_to_wire(peer),
            offset_id=offset_id,
            limit=limit,
            min_id=min_id,
        )
        return [message_from_wire(m) for m in result["messages"]]

    async def get_messages(self, peer: Peer, ids: list[int]) -> list[Message | None]:
        if peer.type in (PeerType.CHANNEL, PeerType.MEGAGROUP):
            result = await self._invoke("channels.getMessages", peer=peer_to_wire(peer), ids=ids)
        else:
            result = await self._invoke("messages.getMessages", ids=ids)
        found = [None if m is None else message_from_wire(m) for m in result["messages"]]
        if peer.type in (PeerType.CHANNEL, PeerType.MEGAGROUP):
            return found
        # messages.getMessages reads the whole account box: keep only this peer's messages.
        return [m if m is not None and m.peer.id == peer.id else None for m in found]

    async def send_message(self, peer: Peer, text: str, *, reply_to: int | None = None) -> Message:
        result = await self._invoke(
            "messages.sendMessage", peer=peer_to_wire(peer), message=text, reply_to_msg_id=reply_to
        )
        return message_from_wire(result)

    async def send_media(
        self,
        peer: Peer,
        media: OutgoingMedia,
        *,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> Message:
        """The HTTP fake has no media sends (the wire fake and Telethon do): refused, as
        Telegram refuses media it cannot take."""
        raise MtprotoError(f"{media.kind} sends need the Telethon adapter", reason="MEDIA_INVALID")

    async def updates(self) -> AsyncIterator[Update]:
        """Live updates until the connection ends (see the module docstring)."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                # Leave the marker for any other reader (and for a later call).
                self._queue.put_nowait(item)
                if item.error is not None:
                    raise item.error
                return
            yield item


async def _next_line(lines: AsyncIterator[str]) -> dict[str, Any] | None:
    async for line in lines:
        if line.strip():
            data = json.loads(line)
            return data if isinstance(data, dict) else None
    return None


class SandboxMtprotoAdapter:
    """Makes clients of the fake at ``base_url`` (e.g. ``http://127.0.0.1:8090/mtproto``).

    ``timeout`` bounds every call; the update stream counts as dropped when no line (the fake
    sends a keepalive every second) arrives for ``stream_timeout``; ``ping_interval`` must
    stay below the fake's ``idle_timeout``. A given ``http`` client is not closed by
    ``aclose()``; give it enough connections (one streaming connection per session).
    """

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient | None = None,
        *,
        timeout: float = 10.0,
        stream_timeout: float = 10.0,
        ping_interval: float = 3.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.ping_interval = ping_interval
        self._owns_http = http is None
        # No pool cap: every connected session holds one streaming HTTP connection.
        self.http = http or httpx.AsyncClient(
            trust_env=False, limits=httpx.Limits(max_connections=None, max_keepalive_connections=20)
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def client(self, config: SessionConfig) -> SandboxMtprotoClient:
        return SandboxMtprotoClient(self, config)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
