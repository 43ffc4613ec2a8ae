"""A wire-level MTProto fake: a TCP server that a stock Telethon client talks to.

It speaks the TCP "Full" transport, runs the key exchange with its own RSA key, decrypts
and answers MTProto 2.0 messages (containers, acks, salts, pings, rpc results and errors,
pushed updates) and serves the methods a user account needs from the fake Telegram's
world (`switchboard.sandbox.mtproto`: users, channels, messages, keys, logins, flood rules
and live connections). It is the only way clients reach that world.

Point a client at it::

    server = httpx.get(f"{sandbox}/mtproto/server").json()
    telethon.crypto.rsa.add_key(server["rsa_public_key"], old=False)
    client = TelegramClient(StringSession(), api_id, api_hash)
    client.session.set_dc(server["dc_id"], server["host"], server["port"])

Control (besides everything under `/_sandbox/mtproto/`): `GET|POST
/_sandbox/mtproto/wire/faults` `{"drop_updates": N, "stall": bool}` loses the next N pushed
updates (a pts gap the client must repair with a difference) or holds every answer back;
`POST /_sandbox/mtproto/wire/drop` aborts every TCP connection; `POST
/_sandbox/mtproto/wire/sessions` `{"user"}` -> 201 `{"session", "key_id"}` a signed-in
StringSession that points at this server; `GET /_sandbox/mtproto/wire/server` is the same
descriptor as `GET /mtproto/server`.
"""

from switchboard.sandbox.mtproto_wire.config import WireConfig
from switchboard.sandbox.mtproto_wire.server import WireServer

__all__ = ["WireConfig", "WireServer"]
