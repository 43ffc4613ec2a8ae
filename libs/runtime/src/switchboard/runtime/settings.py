"""Settings base on pydantic-settings.

Each service reads ``SWITCHBOARD_<SERVICE>_<FIELD>`` first, then the shared
``SWITCHBOARD_<FIELD>`` (so one ``SWITCHBOARD_NATS_URL`` serves every service). A wrong or
missing setting stops start-up with one sentence naming it.
"""

from __future__ import annotations

import base64
import binascii
import socket
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from switchboard.runtime.identity import DEV_PEPPER
from switchboard.runtime.keys import parse_scopes

S = TypeVar("S", bound="ServiceSettings")


class ConfigError(SystemExit):
    """A configuration problem, said in one sentence; exits the process with status 2."""

    def __init__(self, sentence: str) -> None:
        super().__init__(2)
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence


class ServiceSettings(BaseSettings):
    """What every service needs: where the bus is, how to log and trace, where to listen."""

    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "service"

    nats_url: str = Field("nats://127.0.0.1:4222", description="comma-separated NATS URLs")
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_creds_file: str | None = None
    provision: bool = Field(True, description="create/update streams and buckets at start-up")
    stream_replicas: int = Field(1, ge=1, le=5)
    duplicate_window_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="JetStream's duplicate window of every stream (default: the catalog's 120 s)",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=0, le=65535)
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")
    log_json: bool | None = Field(None, description="JSON logs; default: when not a TTY")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint")
    instance_id: str = Field(default_factory=socket.gethostname)
    shutdown_grace_s: float = Field(20.0, gt=0)
    http_keep_alive_s: int = Field(
        75,
        ge=1,
        le=3600,
        description="how long an idle HTTP connection stays open; longer than the idle timeout "
        "of the load balancer or client in front (60 s on the common ones), so the server never "
        "closes a connection just as a request is sent on it",
    )
    http_read_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="how long a request may take to arrive, headers and body, counted from "
        "its first byte (a new connection: from its opening), plus 1 s per "
        "http_body_min_rate bytes of body received; later it is answered 408 and closed, so "
        "peers that drip or stall cannot hold the server's connections",
    )
    http_body_min_rate: float = Field(
        500.0,
        gt=0,
        description="bytes of request body that earn one more second past "
        "http_read_timeout_s (Apache mod_reqtimeout's MinRate): a large upload at any rate "
        "above it finishes",
    )
    admin_token: SecretStr | None = Field(
        None, description="operator bearer token: API key administration, operator routes"
    )
    api_key_pepper: SecretStr | None = Field(
        None,
        description="secret mixed into the hash of stored API keys (the same on every "
        "service); unset: only the api_keys setting authenticates",
    )
    ops_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="second port serving /metrics and /health/* (and only them); unset: "
        "they are on the main port and need the operator token",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body any route accepts (413)"
    )

    @field_validator("api_key_pepper")
    @classmethod
    def _pepper_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a random value)")
        return value

    identity_pepper: SecretStr = Field(
        SecretStr(DEV_PEPPER),
        min_length=16,
        description="secret key of the hashes services keep of personal identifiers "
        "(HMAC-SHA256: contact ids, identity claim keys, erasure hashes); set one per "
        "deployment, the same in every service, and never change it once contacts exist "
        "(claims are found by it: known people would become second contacts)",
    )

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError("must be nats://host:port (comma-separated for a cluster)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        service_prefix = f"SWITCHBOARD_{cls.service.upper()}_"
        return (
            init_settings,
            EnvSettingsSource(settings_cls, env_prefix=service_prefix),
            EnvSettingsSource(settings_cls, env_prefix="SWITCHBOARD_"),
            file_secret_settings,
        )

    @classmethod
    def env_name(cls, field: str) -> str:
        return f"SWITCHBOARD_{cls.service.upper()}_{field.upper()}"


class DatabaseSettings(ServiceSettings):
    """A service with a Postgres projection."""

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres", description="asyncpg DSN"
    )
    database_pool_size: int = Field(10, ge=1, le=200)

    @field_validator("database_url")
    @classmethod
    def _pg_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be postgresql://user@host:port/db")
        return value


def comma_items(value: Any) -> list[str]:
    """The items of a comma-separated setting (``a,b``), stripped, blank ones skipped."""
    return [item.strip() for item in str(value or "").split(",") if item.strip()]


def parse_api_keys(value: Any) -> dict[str, str]:
    """``key=workspace,key2=workspace2`` (or a mapping) -> {key: workspace}; a workspace may
    end in ``:read+send`` to give the (development) key only those scopes."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    result: dict[str, str] = {}
    for item in comma_items(value):
        key, sep, workspace = item.partition("=")
        if not sep or not key or not workspace:
            raise ValueError("must be key=workspace[,key=workspace...]")
        if len(key) < 8:
            raise ValueError("API keys must be at least 8 characters")
        _, _, scopes = workspace.partition(":")
        if scopes:
            parse_scopes(scopes.split("+"))  # a ValueError naming the unknown scope
        result[key] = workspace
    return result


def api_keys_setting(value: Any, info: ValidationInfo) -> dict[str, str]:
    """A service API's ``api_keys``: development keys, needed unless stored keys are on (a
    pepper is configured), so production may run on stored keys alone."""
    keys = parse_api_keys(value)
    if not keys and info.data.get("api_key_pepper") is None:
        raise ValueError(
            "needs at least one key=workspace, or SWITCHBOARD_API_KEY_PEPPER for stored keys"
        )
    return keys


def parse_keyring(value: Any) -> dict[str, bytes]:
    """``id:base64key[,id:base64key]`` -> {id: 32-byte key}; the first is the active key."""
    keys: dict[str, bytes] = {}
    for item in comma_items(value):
        key_id, sep, material = item.partition(":")
        if not sep or not key_id:
            raise ValueError("must be id:base64key[,id:base64key...]")
        try:
            raw = base64.b64decode(material, validate=True)
        except binascii.Error:
            raise ValueError(f"key {key_id!r} is not base64") from None
        if len(raw) != 32:
            raise ValueError(f"key {key_id!r} must be 32 bytes (AES-256), got {len(raw)}")
        keys[key_id] = raw
    return keys


def keyring_setting(value: SecretStr) -> SecretStr:
    """A service's ``encryption_keys``: a key ring (:func:`parse_keyring`) of at least one key."""
    if not parse_keyring(value.get_secret_value()):
        raise ValueError("needs at least one id:base64key")
    return value


# The setting types every service shares, each with its check: a service declares the field
# (with its own description), the type brings the parsing and the rule.
ApiKeysSetting = Annotated[
    dict[str, str],
    NoDecode,
    BeforeValidator(api_keys_setting),
    Field(default_factory=dict, validate_default=True),
]
KeyringSetting = Annotated[SecretStr, AfterValidator(keyring_setting)]


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings or raise :class:`ConfigError` with one sentence naming the setting."""
    try:
        return cls(**overrides)
    except SettingsError as exc:
        raise ConfigError(f"{cls.service}: {exc}.") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "?"
        env = cls.env_name(field.split(".")[0])
        value = err.get("input")
        shown = "" if _looks_secret(field) or isinstance(value, dict) else f" (got {value!r})"
        more = f" and {exc.error_count() - 1} more problem(s)" if exc.error_count() > 1 else ""
        raise ConfigError(
            f"{cls.service}: setting {env} is invalid: {err['msg']}{shown}{more}."
        ) from None


def _looks_secret(field: str) -> bool:
    return any(w in field.lower() for w in ("key", "secret", "token", "password", "session"))
