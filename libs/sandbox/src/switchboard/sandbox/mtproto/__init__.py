"""The fake Telegram behind the sandbox's wire-level MTProto server: users and auth keys,
login with codes and two-step passwords, peers, per-peer message ids, history, update
sequences (pts), flood waits and, above all, AUTH_KEY_DUPLICATED when one auth key is
connected from two connections at once.

Clients (the gateway's Telethon adapter, any stock Telethon program) reach it only over
MTProto, through ``switchboard.sandbox.mtproto_wire``, whose address and RSA key
``GET /mtproto/server`` gives. Tests seed and inspect it through the control API under
``/_sandbox/mtproto`` (below) or in-process through ``Sandbox().mtproto``
(:class:`MtprotoProvider`), whose methods mirror the control API.

Auth keys
---------
A session string is a real Telethon ``StringSession`` (version ``1``, DC 2, 256-byte key from
``secrets``, never reused across resets or sandboxes), so Telethon loads it (pointing it at
the wire server with ``session.set_dc``). ``key_id`` (hex of the first 8 bytes of the key's
SHA-1) names a key in the control API and the connection log.

Connections and liveness (THE rule)
-----------------------------------
A connection is alive exactly while its TCP socket to the wire server is open: a graceful
disconnect and a killed process (the kernel closes its sockets) both end it at once. While
one connection of a key is alive, a second connection of the same key is refused with 406
AUTH_KEY_DUPLICATED, the first connection is closed with that error, and the key is
destroyed for good (every later connection is refused too), exactly like Telegram. The
connection log records each connect/disconnect with timestamps and reasons, the maximum
number of concurrent connections per key (a refused duplicate counts: 2), and every
duplicate incident.

Updates
-------
Every change of a box counts one pts: a channel's own sequence, or the account's (which
starts at 1, as Telegram's does). The wire server pushes each change to the connected
members and replays them for ``updates.getDifference`` / ``updates.getChannelDifference``.

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
- ``GET|PUT /settings``: ``code_ttl``, ``flood_grace``, ``code_flood_limit``,
  ``code_flood_window``, ``max_code_attempts``.
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
  Live updates go to connected members unless ``notify`` is false. A ``media`` with
  ``"data"`` (base64) keeps those bytes (``file_id``, ``file_size`` set from them), as do a
  client's uploads; the wire fake serves them with ``upload.getFile``, and
  ``GET /files/{file_id}`` answers them as they are held.
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
