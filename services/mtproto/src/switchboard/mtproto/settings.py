"""MTProto gateway settings (``SWITCHBOARD_MTPROTO_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from switchboard.events.streams import LEASES
from switchboard.mtproto.ports import Proxy
from switchboard.runtime.objectstore import ObjectStoreSettings
from switchboard.runtime.settings import (
    DatabaseSettings,
    KeyringSetting,
    comma_items,
    parse_api_keys,
)


class MtprotoSettings(DatabaseSettings):
    service: ClassVar[str] = "mtproto"

    http_port: int = Field(8083, ge=0, le=65535)
    objects: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings,
        description="where files downloaded for the CRM are written (SWITCHBOARD_OBJECTS__*; "
        "the same store as the CRM's)",
    )
    encryption_keys: KeyringSetting = Field(
        description="id:base64key[,id:base64key]: encrypts sessions at rest; first is active"
    )
    admin_token: SecretStr | None = Field(
        None, description="operator token: ownership, key rotation (not a workspace's sessions)"
    )
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="key=workspace[,...]: development keys (stored keys come from the bucket)",
    )

    adapter: Literal["telethon", "sandbox"] = Field(
        "telethon",
        description="telethon: Telethon to real Telegram; sandbox: Telethon to the sandbox's "
        "wire-level MTProto fake (its address from SANDBOX_URL/mtproto/server)",
    )
    sandbox_url: str | None = Field(
        None,
        validate_default=True,
        description="the sandbox (adapter=sandbox; with telethon: its MTProto wire server)",
    )
    rpc_timeout_s: float = Field(30.0, gt=0, description="bound on every call to Telegram")
    api_wait_s: float = Field(
        10.0,
        gt=0,
        description="how long an API call waits for a session's holder (logout, dialogs, "
        "contact search) before answering 202 (still in progress) or 504",
    )
    api_id: int | None = Field(None, ge=1, description="default Telegram app id for logins")
    api_hash: SecretStr | None = Field(None, description="default Telegram app hash for logins")

    lease_ttl_s: float = Field(
        30.0, gt=0, description="a lease not renewed for this long may be taken over"
    )
    heartbeat_s: float | None = Field(None, gt=0, description="default: lease_ttl_s / 5")
    lease_margin_s: float | None = Field(
        None,
        gt=0,
        validate_default=True,
        description="disconnect this long before the lease could lapse (default: ttl / 5)",
    )
    tick_s: float = Field(1.0, gt=0, description="how often ownership is reconciled")
    max_sessions: int = Field(200, ge=1, description="sessions one instance may hold")

    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    probe_interval_s: float = Field(
        300.0, ge=1, description="how often an idle session is probed (get_me)"
    )
    flood_hold_max_s: float = Field(
        30.0, ge=0, description="longer flood waits give the work back and resume it later"
    )
    backfill_page: int = Field(100, ge=1, le=100)
    catchup_max: int = Field(10_000, ge=0, description="messages fetched per peer on reconnect")
    idle_ttl_s: float | None = Field(
        None,
        gt=0,
        description="disconnect a session unused this long (no subscription, backfill, send or "
        "query) and release its lease until demand for it arrives; unset: never",
    )
    send_interval_s: float = Field(1.0, ge=0, description="pacing between sends per session")
    follow_private_sends: bool = Field(
        True,
        description="read a private chat a session sends to from that message on (an "
        "active subscription under the chat's id), so the person's answers reach the CRM; "
        "off: only chats subscribed to are read",
    )
    login_code_ttl_s: float = Field(600.0, gt=0, description="how long a sent code is kept")
    signin_max_per_phone: int = Field(
        10,
        ge=1,
        description="sign-in attempts (codes asked, codes, passwords) per phone per window",
    )
    signin_max_per_workspace: int = Field(
        50, ge=1, description="sign-in attempts per workspace per window"
    )
    signin_window_s: float = Field(3600.0, gt=0, description="the sign-in caps' sliding window")

    proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="socks5://[user:password@]host:port or mtproxy://secret@host:port[,...]: "
        "the pool a session rotates to when its own proxy fails its health check",
    )
    proxy_check_timeout_s: float = Field(5.0, gt=0, description="bound on a proxy's check")
    proxy_check_interval_s: float = Field(
        60.0, gt=0, description="how often a connected session's proxy is checked again"
    )

    @field_validator("proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> tuple[str, ...]:
        from switchboard.mtproto.proxies import parse_proxy

        urls = tuple(comma_items(value) if isinstance(value, str) else value or ())
        for url in urls:
            parse_proxy(url)  # ValueError names the bad one
        return urls

    @property
    def proxy_pool(self) -> list[Proxy]:
        from switchboard.mtproto.proxies import parse_proxy

        return [parse_proxy(url) for url in self.proxies]

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> dict[str, str]:
        return parse_api_keys(value)

    @field_validator("sandbox_url")
    @classmethod
    def _sandbox(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("adapter") == "sandbox" and not value:
            raise ValueError("adapter=sandbox needs the sandbox's base URL")
        return value.rstrip("/") if value else value

    @field_validator("lease_ttl_s")
    @classmethod
    def _ttl(cls, value: float) -> float:
        # The bucket's max age removes a key not written for its TTL; a longer lease would let
        # the key vanish while its owner still believes it holds it.
        if value > LEASES.ttl_s:
            raise ValueError(f"may not exceed the leases bucket TTL ({LEASES.ttl_s} s)")
        return value

    @field_validator("lease_margin_s")
    @classmethod
    def _margin(cls, value: float | None, info: ValidationInfo) -> float | None:
        ttl = info.data.get("lease_ttl_s")
        if ttl is None:
            return value
        heartbeat = info.data.get("heartbeat_s") or ttl / 5
        if heartbeat + (value or ttl / 5) >= ttl:
            raise ValueError("heartbeat_s + lease_margin_s must be below lease_ttl_s")
        return value

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_s or self.lease_ttl_s / 5

    @property
    def margin(self) -> float:
        return self.lease_margin_s or self.lease_ttl_s / 5
