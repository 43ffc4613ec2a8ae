"""What the projectors need beyond the connection: where the conversion ledger lives, each
workspace's conversion rules, and whether to move the live Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from nats.js.kv import KeyValue

from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import ActionSource
from switchboard.runtime.accounts import account_key
from switchboard.runtime.conversion_settings import PixelConversions
from switchboard.runtime.kvwatch import Mirror

LEDGER_SCHEMA = "analytics"


@dataclass(frozen=True)
class ConversionRules:
    """When a lead reaching a stage becomes a Meta CAPI conversion, and how it is reported."""

    pixel: str
    events: dict[str, str] = field(default_factory=lambda: {"won": "Purchase"})
    currency: str = "USD"
    action_source: ActionSource = "system_generated"
    test_event_code: str | None = None

    @classmethod
    def from_settings(cls, settings: AnalyticsSettings) -> ConversionRules | None:
        if not settings.conversions_enabled or settings.conversion_pixel is None:
            return None
        return cls(
            pixel=settings.conversion_pixel,
            events=dict(settings.conversion_events),
            currency=settings.conversion_currency,
            action_source=settings.conversion_action_source,
            test_event_code=settings.conversion_test_event_code,
        )


@dataclass(frozen=True)
class Pixel:
    """A ``metacapi`` account as analytics sees it: whose it is and its conversion settings
    (never its secrets, which analytics has no key for)."""

    id: str
    workspace: str
    conversions: PixelConversions


def read_pixel(_key: str, raw: bytes) -> Pixel | None:
    """The pixel a ``generic`` account record stands for (None: another provider's)."""
    data: dict[str, Any] = json.loads(raw)
    settings = data.get("settings") or {}
    if settings.get("provider") != "metacapi":
        return None
    return Pixel(
        id=str(data["id"]),
        workspace=str(data.get("workspace_id", "default")),
        conversions=PixelConversions.of(settings),
    )


class Pixels(Mirror[Pixel | None]):
    """The registry's ``generic`` accounts as pixels, kept live by ``run`` and indexed by
    workspace: a lead's stage looks up its workspace's pixels, never scans them all."""

    def __init__(self, accounts: KeyValue | None = None) -> None:
        super().__init__(lambda: _bucket(accounts), read_pixel, "metacapi account", keys=PIXEL_KEYS)
        self.by_workspace: dict[str, dict[str, Pixel]] = {}

    def _apply(self, entry: KeyValue.Entry) -> None:
        before = self.entries.get(entry.key)
        super()._apply(entry)
        after = self.entries.get(entry.key)
        if before is not None:
            self.by_workspace.get(before.workspace, {}).pop(entry.key, None)
        if after is not None:
            self.by_workspace.setdefault(after.workspace, {})[entry.key] = after

    @classmethod
    async def snapshot(cls, accounts: KeyValue) -> Pixels:
        """The pixels as the registry has them now (a rebuild's replay reads them once)."""
        pixels, stop = cls(accounts), asyncio.Event()
        task = asyncio.create_task(pixels.run(stop))
        try:
            async with asyncio.timeout(30):
                await pixels.loaded.wait()
        finally:
            stop.set()
            await task
        return pixels


def _bucket(accounts: KeyValue | None) -> KeyValue:
    if accounts is None:
        raise RuntimeError("these pixels follow no bucket")
    return accounts


PIXEL_KEYS = f"{Channel.GENERIC.value}.>"  # where read_pixel finds metacapi accounts


@dataclass(frozen=True)
class ConversionTargets:
    """Which pixel a workspace's conversions go to, and how they are reported.

    A workspace's own ``metacapi`` account with ``settings.conversion_events`` is its target
    (the smallest id when it has several), its other ``conversion_*`` settings over the
    deployment's. Otherwise the deployment's ``CONVERSION_PIXEL``, for the workspace that
    owns that account, or for every workspace while the registry does not know it (outbound
    then says which account is missing). Another workspace's pixel is never a target: its
    leads would be refused at outbound, one dead letter per conversion."""

    defaults: ConversionRules | None
    currency: str
    action_source: ActionSource
    test_event_code: str | None
    pixels: Pixels
    max_age: timedelta | None  # older stage changes decide nothing: Meta would refuse them
    now: Callable[[], datetime]

    @classmethod
    def of(
        cls,
        settings: AnalyticsSettings,
        pixels: Pixels,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> Self | None:
        """The targets, or None when the deployment decides no conversion at all; ``now`` is
        the server's clock in the service."""
        if not settings.conversions:
            return None
        age = settings.conversion_max_age_s
        return cls(
            defaults=ConversionRules.from_settings(settings),
            currency=settings.conversion_currency,
            action_source=settings.conversion_action_source,
            test_event_code=settings.conversion_test_event_code,
            pixels=pixels,
            max_age=timedelta(seconds=age) if age else None,
            now=now,
        )

    def too_old(self, at: datetime) -> bool:
        """Whether a stage change at ``at`` is past what Meta takes (a rebuild after a
        workspace added its pixel, a catch-up after a long outage): deciding it would only
        make a refused conversion and a dead letter."""
        return self.max_age is not None and self.now() - at > self.max_age

    def rules_for(self, workspace: str) -> ConversionRules | None:
        mine = self.pixels.by_workspace.get(workspace, {}).values()
        own = [p for p in mine if p.conversions.conversion_events]
        if own:
            pixel = min(own, key=lambda p: p.id)
            c = pixel.conversions
            return ConversionRules(
                pixel=pixel.id,
                events=dict(c.conversion_events or {}),
                currency=c.conversion_currency or self.currency,
                action_source=c.conversion_action_source or self.action_source,
                test_event_code=c.conversion_test_event_code or self.test_event_code,
            )
        if self.defaults is None:
            return None
        owner = self.pixels.entries.get(account_key(Channel.GENERIC, self.defaults.pixel))
        if owner is not None and owner.workspace != workspace:
            return None
        return self.defaults


@dataclass(frozen=True)
class Context:
    targets: ConversionTargets | None = None
    ledger_schema: str = LEDGER_SCHEMA
    observe: bool = True
