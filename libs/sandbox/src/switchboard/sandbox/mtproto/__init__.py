"""A fake Telegram MTProto cloud for user accounts, served over HTTP by the sandbox.

There is no official fake MTProto server and the gateway runs as several processes in e2e
tests, so this fake speaks a small HTTP protocol (used by
``switchboard.mtproto.sandbox_adapter.SandboxMtprotoAdapter``) and behaves like Telegram for
what the gateway's port needs: users and auth keys, login with codes and two-step passwords,
peers, per-peer message ids, history paging, live updates, flood waits and, above all,
AUTH_KEY_DUPLICATED when one auth key is connected from two connections at once.

It is mounted at ``/mtproto`` in the combined sandbox app (``switchboard-sandbox serve``,
``Sandbox().app()``) or at root with ``Sandbox().provider_app("mtproto")``; control routes
are under ``/_sandbox/mtproto``. The Python handle is ``Sandbox().mtproto``
(:class:`MtprotoProvider`), whose methods mirror the control API. Streaming needs a real
server: serve the app with ``switchboard.sandbox.testing.serve`` (or the runtime's
``serve_app``) on a free port; ``httpx.ASGITransport`` buffers responses and cannot carry the
update stream.

Auth keys
---------
A session string is a real Telethon ``StringSession`` (version ``1``, DC 2, 256-byte key from
``secrets``, never reused across resets or sandboxes), so the Telethon adapter can load it.
``key_id`` (hex of the first 8 bytes of the key's SHA-1) names a key in the control API and
the connection log. Connecting with ``""`` makes a new, unauthorized key (what Telethon does
before login); its string is in the connect answer.

Connections and liveness (THE rule)
-----------------------------------
A connection exists exactly while its ``POST /connect`` response is streaming. It ends when:
the client closes that request (graceful ``disconnect``, or the process dies: the kernel
closes its sockets and the fake sees the stream end at once), the client calls
``/connections/{cid}/disconnect``, no ``invoke`` or ``ping`` came for ``idle_timeout`` seconds
(default 10; catches a frozen process), or the control API forces it. While one connection of
a key is alive, a second ``connect`` of the same key answers 406 AUTH_KEY_DUPLICATED, the
first connection's stream ends with that error and its next call raises it, and the key is
destroyed for good (every later connect raises AUTH_KEY_DUPLICATED), exactly like Telegram.
A close the server has already received is processed before a new connect of the same key
is judged (a few event-loop turns), so "close, then connect again" is never a duplicate,
while any real overlap (a second process connecting while the first is up) is. The
connection log records each connect/disconnect with timestamps and reasons, the maximum
number of concurrent connections per key (a refused duplicate counts: 2), and every
duplicate incident.

Client protocol (what the adapter speaks; prefix ``/mtproto`` or root)
---------------------------------------------------------------------
- ``POST /connect`` ``{"session", "api_id", "api_hash", "device": {...}, "proxy": {...}}``.
  Errors answer a JSON error (below). Success answers 200 ``application/x-ndjson``, one JSON
  object per line: first ``{"type": "connected", "connection", "session", "key_id",
  "authorized"}``, then ``{"type": "update", "update": U}`` and ``{"type": "ping"}`` every
  ``keepalive`` seconds (default 1), and finally ``{"type": "closed", "reason", "error"}``
  (``error`` is an RPC error name such as AUTH_KEY_DUPLICATED, or null).
- ``POST /connections/{cid}/invoke/{method}`` with JSON params -> 200 ``{"result": ...}``.
- ``POST /connections/{cid}/ping`` -> ``{"pong": true}`` (keeps an idle connection alive).
- ``POST /connections/{cid}/disconnect`` -> ``{"disconnected": true}``; ends the stream.
- Errors: HTTP status = the MTProto error code (303, 400, 401, 403, 406, 420, 500) with
  ``{"error": "FLOOD_WAIT_17", "code": 420, "seconds": 17}`` (``seconds`` only for waits);
  410 ``{"error": "CONNECTION_CLOSED"}`` when the connection is gone.

Methods (MTProto names, also what fault rules match): ``updates.getState`` (is the key
authorized: ``{"authorized": bool}``), ``users.getUsers`` (``get_me``), ``auth.sendCode``
``{"phone"}``, ``auth.signIn`` ``{"phone", "code", "phone_code_hash"}``,
``auth.checkPassword`` ``{"password"}``, ``auth.logOut``, ``contacts.resolveUsername``
``{"ref"}`` (``@name``, ``t.me/name``, marked id ``-100…``/``-…`` or bare id),
``messages.getHistory`` ``{"peer", "offset_id", "limit", "min_id"}`` (exactly like Telegram:
ids < offset_id when offset_id > 0, ids > min_id, newest first, limit capped at 100),
``messages.getMessages`` ``{"ids"}`` (the account's own box: private chats and basic groups)
and ``channels.getMessages`` ``{"peer", "ids"}`` (null where missing or deleted),
``messages.sendMessage`` ``{"peer", "message", "reply_to_msg_id"}``. A ``peer`` param is
``{"id", "type", "access_hash"}``.

Wire objects: user ``{"id", "username", "first_name", "last_name", "phone", "bot",
"lang_code"}``; peer ``{"id", "type": user|chat|channel|megagroup, "title", "username",
"access_hash"}``; message ``{"peer", "id", "date" (epoch s), "text", "sender" (user|null),
"out", "reply_to_msg_id", "edit_date", "media", "grouped_id", "views", "post_author"}``;
media ``{"kind", "file_id", "mime_type", "file_size", "file_name", "width", "height",
"duration", "latitude", "longitude", "phone", "first_name", "last_name", "provider_kind"}``;
update ``{"kind": "new"|"edited", "message"}`` or ``{"kind": "deleted", "ids", "peer"}``
(``peer`` is null outside channels: those ids are per account, like Telegram), each with
``"pts"`` and ``"pts_count"``: the box's update sequence (a channel's own, or the account's),
which the wire-level fake (``switchboard.sandbox.mtproto_wire``) pushes and replays.

Message ids follow Telegram: a channel or megagroup has its own sequence; private chats and
basic groups number messages per account, so one basic-group message has a different id for
each member.

Login
-----
``auth.sendCode`` records a 5-digit "SMS" code (read it with ``GET
/_sandbox/mtproto/codes/{phone}``) valid for ``code_ttl`` seconds; a new code replaces the
previous hash. Errors: PHONE_NUMBER_INVALID (not 7-15 digits), PHONE_NUMBER_BANNED,
PHONE_CODE_INVALID, PHONE_CODE_EXPIRED (expired, replaced, used, or too many wrong tries),
SESSION_PASSWORD_NEEDED then PASSWORD_HASH_INVALID, PHONE_NUMBER_UNOCCUPIED (no such user),
and FLOOD_WAIT_X when a phone asks for more than ``code_flood_limit`` codes or fails more
than ``code_flood_limit`` sign-ins within ``code_flood_window`` seconds.

Flood waits are enforced: after FLOOD_WAIT_X for (user, method), calls of that method before
X seconds have passed get FLOOD_WAIT with the remaining seconds and count as a violation in
``GET /_sandbox/mtproto/stats`` (``flood_grace`` seconds of slack, default 0.25).

Control API (``/_sandbox/mtproto/...``, JSON; ``{user}`` is an id, a phone or ``@username``,
``{peer}``/``"peer"`` is ``@username``, a marked id or a bare id)
--------------------------------------------------------------------------------------------
- ``GET|PUT /settings``: ``code_ttl``, ``keepalive``, ``idle_timeout``, ``flood_grace``,
  ``code_flood_limit``, ``code_flood_window``, ``max_code_attempts``.
- ``POST /users`` ``{"phone", "first_name", "last_name", "username", "password", "lang_code",
  "code", "sessions": N}`` -> 201 ``{"user": U, "sessions": [{"session", "key_id"}]}``
  (``code``: a fixed 5-digit login code for this user, instead of a random one per send);
  ``POST /users/bulk`` ``{"users": [...]}`` -> ``{"users": [...]}`` (same items);
  ``GET /users``; ``GET /users/{user}``; ``POST /users/{user}/sessions`` -> 201 a new
  pre-authorized ``{"session", "key_id"}``; ``POST /users/{user}/ban`` ``{"banned": true}``.
- ``GET /sessions/{key_id}`` -> ``{"key_id", "user_id", "state": new|authorized|password|
  logged_out|revoked|duplicated, "active": n}``; ``DELETE /sessions/{key_id}`` revokes it
  (SESSION_REVOKED afterwards, as when terminated from another device).
- ``POST /channels`` ``{"title", "username", "megagroup": false, "creator", "admins": [...],
  "members": [...]}`` -> 201 peer (+ ``"members"``); ``POST /chats`` ``{"title", "members"}``
  (basic group; the first member is the creator); ``GET /peers/{peer}``;
  ``POST /peers/{peer}/members`` ``{"add", "remove", "restrict", "unrestrict"}`` (lists of
  users; restricted members cannot write).
- ``POST /messages`` ``{"peer", "from", "text", "reply_to", "media", "grouped_id", "date",
  "views", "post_author", "notify": true}`` -> 201 message (``"ids": {user_id: id}`` for
  non-channel peers; for a private chat ``peer`` is the recipient and ``from`` the sender).
  Live updates go to connected members unless ``notify`` is false.
- ``POST /messages/bulk`` ``{"peer", "from", "count", "text": "message {n}", "start_date",
  "interval": 1.0, "notify": false}`` or ``{"peer", "messages": [...]}`` -> ``{"count",
  "first_id", "last_id"}``; 20k messages take well under a second.
- ``POST /messages/edit`` ``{"peer", "id", "user", "text", "media"}`` and
  ``POST /messages/delete`` ``{"peer", "ids", "user"}`` (``user``: whose numbering ``id``
  is in, needed outside channels); ``GET /messages?peer&user&limit`` (oldest first).
- ``GET /codes/{phone}`` -> the latest ``{"phone", "code", "phone_code_hash", "expires_at",
  "used"}``; ``GET /codes`` -> all.
- ``GET /connections?user&key_id&active`` -> ``{"keys": [{"key_id", "user_id", "active",
  "connects", "max_concurrent", "duplicates": [...], "events": [{"event": connect|
  disconnect|duplicate, "connection", "at", "reason"}]}], "max_concurrent", "duplicates",
  "active"}``.
- ``POST /disconnect`` ``{"user"|"key_id"|"connection"}`` (none: all) -> ``{"disconnected": n}``.
- ``GET|POST|DELETE /faults``, ``DELETE /faults/{id}``: RPC fault rules ``{"method", "user",
  "key_id", "error": "FLOOD_WAIT", "seconds": 3, "code", "every": N, "times": N,
  "latency": s}``: FLOOD_WAIT gets ``_<seconds>`` appended; ``every`` N-th matching call, or
  the next ``times`` calls, or (neither) every call; ``latency`` delays matching calls.
- ``GET /stats`` -> calls per method, flood waits issued, flood violations.
The sandbox-wide ``POST /_sandbox/reset`` forgets everything.
"""

from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.mtproto.provider import MtprotoProvider
from switchboard.sandbox.mtproto.sessions import decode_session, encode_session, key_id_of

__all__ = [
    "MtprotoConfig",
    "MtprotoProvider",
    "decode_session",
    "encode_session",
    "key_id_of",
]
