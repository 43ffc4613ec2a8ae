"""Outbound settings (``SWITCHBOARD_OUTBOUND_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from switchboard.outbound.schedule import HOLD_HOP
from switchboard.runtime.objectstore import ObjectStoreSettings
from switchboard.runtime.schedules import hop_setting
from switchboard.runtime.settings import ApiKeysSetting, KeyringSetting, ServiceSettings


class OutboundSettings(ServiceSettings):
    service: ClassVar[str] = "outbound"

    http_port: int = Field(8082, ge=0, le=65535)
    encryption_keys: KeyringSetting = Field(
        description="decrypts account secrets (same ring as ingest)"
    )
    api_keys: ApiKeysSetting = Field(description="key=workspace[,...]")
    concurrency: int = Field(
        512, ge=1, le=20_000, description="conversational sends held per instance"
    )
    bulk_concurrency: int = Field(1024, ge=1, le=20_000, description="bulk sends held per instance")
    account_hold_s: float = Field(
        2.0,
        gt=0,
        description="an account holds a quarter of the conversational places of an "
        "instance, or this many seconds of its rate where that is more (at most half); the "
        "rest waits in the stream, so one account's burst leaves room for the others",
    )
    max_attempts: int = Field(6, ge=1, le=50)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    call_timeout_s: float = Field(15.0, gt=0)
    unauthorized_wait_s: float = Field(
        60.0,
        gt=0,
        description="an account whose credentials the provider refused (a revoked or "
        "expired token) is paused this long at a time; its messages wait, unspent, until "
        "the account is fixed (a rotated secret applies live)",
    )
    breaker_threshold: int = Field(5, ge=1)
    breaker_cooldown_s: float = Field(10.0, gt=0)
    probe_interval_s: float = Field(
        300.0, ge=1, description="how often /health/integrations probes an idle account"
    )
    # 1.5 %: what no answer shows (the server clock's estimate, the request's leg of the
    # usual round trip) within half of it. The 429s smaller margins drew came from answers
    # written after the next window was leased, with the send taken as counted within the
    # margin meanwhile (even 3 % met 10 429s with two busy loops beside bench_outbound); a
    # send not answered in the log now holds its place, and at 1.5 % and 1 % the loaded runs
    # met none (docs/benchmark-notes.md).
    limit_margin: float = Field(
        0.015,
        ge=0,
        le=1,
        description="safety: fraction of a window; a send whose answer is back is taken as "
        "counted up to its measured lateness plus half this after its slot (one whose answer "
        "is not holds its place in the window), and it is added to every interval of a "
        "recipient's limit; raise it if a provider still answers 429",
    )
    limit_safety_ms: float = Field(0.0, ge=0, description="milliseconds added to every interval")
    max_lateness_ms: float = Field(
        60.0, gt=0, description="a send leaving later than this after its slot takes a new one"
    )
    horizon_high_ms: float = Field(500.0, gt=0, description="how far ahead high sends lease")
    horizon_normal_ms: float = Field(500.0, gt=0, description="how far ahead normal sends lease")
    horizon_bulk_ms: float = Field(
        250.0, gt=0, description="bulk leases at most this far ahead: a reply's worst wait"
    )
    campaign_tick_s: float = Field(0.2, gt=0, description="campaign leader's loop period")
    campaign_lead_s: float = Field(
        3.0, gt=0, description="seconds of each account's rate a campaign keeps queued"
    )
    campaign_progress_s: float = Field(5.0, gt=0, description="progress event cadence")
    campaign_lease_s: float = Field(6.0, gt=1, description="leader lease; takeover after it")
    campaign_renew_s: float = Field(
        86400.0,
        gt=0,
        le=3 * 86400,
        description="the leader writes a campaign's records again this often: the sends "
        "bucket forgets a key after 8 days, and a campaign may wait for its start, or run, longer",
    )
    campaign_patience_s: float = Field(
        30.0,
        ge=0,
        description="a campaign account paused longer than this (a long FLOOD_WAIT or 429) "
        "drops out of the pool until the pause ends; its sends move to other accounts",
    )
    order_patience_s: float = Field(
        30.0,
        ge=0,
        description="a send waits at most this long for an earlier send to its chat still in "
        "the stream (another instance's, one put back for a retry), then goes anyway",
    )
    idempotency_retention_s: float = Field(
        86400.0,
        gt=0,
        le=7 * 86400,
        description="how long a message_id / Idempotency-Key stays taken after its use "
        "(at most the sends bucket's 8 days)",
    )
    hold_hop_s: float = hop_setting(
        HOLD_HOP, "a send scheduled", "OUTBOUND keeps a message 7 days, the sends bucket 8"
    )
    idempotency_lease_s: float = Field(
        30.0, gt=0, description="a repeat within this of an unanswered first request gets 409"
    )
    objects: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings,
        description="where uploaded files are kept until sent (SWITCHBOARD_OBJECTS__*)",
    )
    url_size_check: bool = Field(
        True, description="ask a media URL's size before queueing (413 over the provider's limit)"
    )
    url_probe_private: bool = Field(
        False, description="also ask URLs on loopback/private addresses (tests, closed networks)"
    )
    url_probe_timeout_s: float = Field(3.0, gt=0, description="timeout of one size probe")
    conversion_linger_ms: float = Field(
        200.0, ge=0, description="conversions for one pixel gather this long into one request"
    )
    calendar_gap_s: float = Field(
        600.0,
        ge=0,
        description="two calendar posts to one destination closer than this are an overlap "
        "(409 naming the other post unless forced)",
    )
