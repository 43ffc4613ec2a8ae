"""Ingest settings (``SWITCHBOARD_INGEST_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from switchboard.runtime.settings import KeyringSetting, ServiceSettings


class IngestSettings(ServiceSettings):
    service: ClassVar[str] = "ingest"

    http_port: int = Field(8080, ge=0, le=65535)
    encryption_keys: KeyringSetting = Field(
        description="id:base64key[,id:base64key]: decrypts account secrets; first is active"
    )
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    publish_timeout_s: float = Field(5.0, gt=0)
    public_url: str | None = Field(
        None, description="how providers reach this service, e.g. https://hooks.example.com"
    )
    telegram_api_url: str = "https://api.telegram.org"
    viber_api_url: str = "https://chatapi.viber.com"
    inbound_rate_per_account: float = Field(1000.0, gt=0, description="webhooks/s per instance")
    inbound_burst_per_account: float = Field(2000.0, ge=1)
    normalizer: bool = Field(True, description="run the raw -> conv normalizer in this process")
    # Normalizations whose bus replies arrive together resume together, back to back in one
    # turn of the event loop, and every webhook waits behind them. At 1200 webhooks/s, 32
    # at once kept the loop busy 10 ms or more (CPU) about 100 times in 8 s (p50 20 ms); 8
    # at once, 4 times (p50 6 ms). At 2000/s (more than one process sustains on 2 busy
    # cores) 32 starved the webhooks (p50 1 s), 8 kept them at p50 7 ms and let the
    # normalizer fall behind instead: the webhook's ack is the latency that matters, the
    # normalizer catches up from RAW (docs/benchmarks.md).
    normalizer_concurrency: int = Field(
        8, ge=1, le=1024, description="raw events normalized at once in this process"
    )
    probe_interval_s: float = Field(
        300.0, ge=1, description="how often /health/integrations probes each account"
    )
