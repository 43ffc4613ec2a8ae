"""Rollups of stream ``DELIVERY``: outcomes and failure reasons per provider, account and
campaign; send latency samples (outbound accepting the command to the provider accepting
the message: ``DeliveryQueued.at`` to ``DeliverySent.at``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from switchboard.analytics import metrics
from switchboard.analytics.context import Context
from switchboard.analytics.counting import (
    CounterTable,
    Deltas,
    Sample,
    count_events,
    fresh,
    save_samples,
)
from switchboard.analytics.items import Item, hour_of, millis
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryQueued,
    DeliveryReceipt,
    DeliveryRetrying,
    DeliverySent,
)
from switchboard.runtime.db import Conn
from switchboard.runtime.identity import keyed_hash

PROJECTION = "analytics_delivery"
STREAM = "DELIVERY"
SUBJECTS = ("delivery.>",)
RECEIPT_OUTCOME = {"delivered": "delivered", "read": "read", "failed": "undelivered"}
# Outcomes of provider commands other than chat messages (Meta CAPI conversions, SendPulse
# email and SMS), read by name and field names: (outcome, provider when not in the event).
OTHER_OUTCOMES = {
    "delivery.conversion_sent": ("sent", "metacapi"),
    "delivery.conversion_failed": ("failed", "metacapi"),
    "delivery.dispatched": ("sent", None),
    "delivery.dispatch_failed": ("failed", None),
}

OUTCOMES = CounterTable(
    "delivery_outcomes",
    (
        ("workspace_id", "text"),
        ("hour", "timestamptz"),
        ("provider", "text"),
        ("account", "text"),
        ("campaign_id", "text"),
        ("outcome", "text"),
        ("reason", "text"),
    ),
    "events",
    example="example",
)

MsgKey = tuple[str, str]  # workspace, message_id
ProviderKey = tuple[str, str, str, str]  # workspace, channel, account, provider message id


@dataclass
class Delivery:
    channel: str
    account: str
    campaign_id: str = ""
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    changed: bool = False


@dataclass
class Orphan:
    event_id: str
    hour: datetime
    outcome: str
    reason: str


@dataclass
class Batch:
    """The state a batch reads and writes, loaded once and saved once."""

    deliveries: dict[MsgKey, Delivery] = field(default_factory=dict)
    by_provider: dict[ProviderKey, MsgKey] = field(default_factory=dict)
    orphans: dict[ProviderKey, list[Orphan]] = field(default_factory=dict)
    new_orphans: list[tuple[ProviderKey, Orphan]] = field(default_factory=list)
    adopted: list[ProviderKey] = field(default_factory=list)


def _reason(code: str | None, text: str | None) -> str:
    return (code or text or "unknown")[:120]


async def apply(conn: Conn, items: list[Item], ctx: Context) -> None:
    new = await fresh(conn, items)
    state = await _load(conn, new)
    outcomes = Deltas(OUTCOMES)
    samples: list[Sample] = []
    observed: list[tuple[str, str, str, str, float]] = []

    def outcome(
        ws: str, at: datetime, d: Delivery, what: str, reason: str = "", ex: str = ""
    ) -> None:
        key = (ws, hour_of(at), d.channel, d.account, d.campaign_id, what, reason)
        outcomes.add(key, 1, ex or None)
        observed.append((ws, d.channel, what, reason, 0.0))

    for item in new:
        ev, ws = item.model, item.workspace
        if item.name in OTHER_OUTCOMES:
            what, provider = OTHER_OUTCOMES[item.name]
            other = Delivery(provider or item.field("provider"), item.field("account"))
            reason = (
                _reason(item.field("error_code"), item.field("reason")) if what == "failed" else ""
            )
            outcome(ws, item.time(), other, what, reason, item.field("reason"))
            continue
        if isinstance(ev, DeliveryReceipt):
            _receipt(state, outcomes, observed, ws, item.envelope.id, ev)
            continue
        if not isinstance(ev, DeliveryQueued | DeliveryRetrying | DeliverySent | DeliveryFailed):
            continue
        key = (ws, ev.message_id)
        d = state.deliveries.get(key)
        if d is None:
            d = state.deliveries[key] = Delivery(ev.channel.value, ev.account, changed=True)
        campaign = getattr(ev, "campaign_id", None)  # the later events carry it too
        if campaign and not d.campaign_id:
            d.campaign_id, d.changed = campaign, True
        if isinstance(ev, DeliveryQueued):
            if d.queued_at is None:
                d.queued_at, d.changed = ev.at, True
            outcome(ws, ev.at, d, "queued")
        elif isinstance(ev, DeliveryRetrying):
            outcome(ws, ev.at, d, "retrying", _reason(ev.error_code, ev.reason), ev.reason)
        elif isinstance(ev, DeliveryFailed):
            outcome(ws, ev.at, d, "failed", _reason(ev.error_code, ev.reason), ev.reason)
        else:
            outcome(ws, ev.at, d, "sent")
            if d.sent_at is None:
                d.sent_at, d.provider_message_id, d.changed = ev.at, ev.provider_message_id, True
                ms = millis(d.queued_at, ev.at) if d.queued_at else ev.latency_ms
                if ms is not None:
                    samples.append((ws, ev.message_id, hour_of(ev.at), d.channel, d.account, ms))
                    observed.append((ws, d.channel, "latency", "", ms))
            pkey = (ws, d.channel, d.account, ev.provider_message_id)
            state.by_provider[pkey] = key
            _adopt(state, outcomes, pkey, d)
    await outcomes.write(conn)
    await count_events(STREAM, new).write(conn)
    await _save(conn, state, samples)
    if ctx.observe:
        for ws, provider, what, reason, ms in observed:
            if what == "latency":
                metrics.SEND_LATENCY.labels(provider).observe(ms / 1000)
                continue
            metrics.DELIVERIES.labels(ws, provider, what).inc()
            if what in ("failed", "undelivered"):
                metrics.FAILURES.labels(ws, provider, reason).inc()


def _receipt(
    state: Batch,
    outcomes: Deltas,
    observed: list[tuple[str, str, str, str, float]],
    ws: str,
    event_id: str,
    ev: DeliveryReceipt,
) -> None:
    what = RECEIPT_OUTCOME.get(ev.status)
    if what is None:
        return  # a "sent" receipt repeats what DeliverySent already counted
    reason = _reason(None, ev.reason) if what == "undelivered" else ""
    pkey = (ws, ev.channel.value, ev.account, ev.provider_message_id)
    key = (ws, ev.message_id) if ev.message_id else state.by_provider.get(pkey)
    d = state.deliveries.get(key) if key else None
    campaign = d.campaign_id if d is not None else ""
    hour = hour_of(ev.at)
    outcomes.add(
        (ws, hour, ev.channel.value, ev.account, campaign, what, reason), 1, ev.reason or None
    )
    observed.append((ws, ev.channel.value, what, reason, 0.0))
    if d is None:
        # The receipt overtook its send: remember it, to credit its campaign later.
        orphan = Orphan(event_id, hour, what, reason)
        state.orphans.setdefault(pkey, []).append(orphan)
        state.new_orphans.append((pkey, orphan))


def _adopt(state: Batch, outcomes: Deltas, pkey: ProviderKey, d: Delivery) -> None:
    """Receipts that arrived before this send now count for its campaign."""
    orphans = state.orphans.pop(pkey, [])
    if not orphans:
        return
    state.adopted.append(pkey)
    if not d.campaign_id:
        return
    ws, channel, account, _ = pkey
    for o in orphans:
        outcomes.add((ws, o.hour, channel, account, "", o.outcome, o.reason), -1)
        outcomes.add((ws, o.hour, channel, account, d.campaign_id, o.outcome, o.reason), 1)


async def _load(conn: Conn, items: list[Item]) -> Batch:
    state = Batch()
    msg_keys: set[MsgKey] = set()
    provider_keys: set[ProviderKey] = set()
    for item in items:
        ev, ws = item.model, item.workspace
        if isinstance(ev, DeliveryReceipt):
            if ev.message_id:
                msg_keys.add((ws, ev.message_id))
            provider_keys.add((ws, ev.channel.value, ev.account, ev.provider_message_id))
        elif isinstance(ev, DeliveryQueued | DeliveryRetrying | DeliverySent | DeliveryFailed):
            msg_keys.add((ws, ev.message_id))
            if isinstance(ev, DeliverySent):
                provider_keys.add((ws, ev.channel.value, ev.account, ev.provider_message_id))
    if msg_keys or provider_keys:
        pk = list(provider_keys)
        rows = await conn.fetch(
            """SELECT d.* FROM deliveries d
               JOIN unnest($1::text[], $2::text[]) AS k(ws, id)
                 ON d.workspace_id = k.ws AND d.message_id = k.id
               UNION
               SELECT d.* FROM deliveries d
               JOIN unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS k(ws, ch, acc, pid)
                 ON d.workspace_id = k.ws AND d.channel = k.ch AND d.account = k.acc
                AND d.provider_message_id = k.pid""",
            [k[0] for k in msg_keys],
            [k[1] for k in msg_keys],
            *[[k[i] for k in pk] for i in range(4)],
        )
        for r in rows:
            key = (r["workspace_id"], r["message_id"])
            state.deliveries[key] = Delivery(
                r["channel"],
                r["account"],
                r["campaign_id"],
                r["queued_at"],
                r["sent_at"],
                r["provider_message_id"],
            )
            if r["provider_message_id"]:
                pid = r["provider_message_id"]
                state.by_provider[(key[0], r["channel"], r["account"], pid)] = key
        orphans = await conn.fetch(
            """SELECT o.* FROM orphan_receipts o
               JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(ws, ch, acc, pid)
                 ON o.workspace_id = k.ws AND o.channel = k.ch AND o.account = k.acc
                AND o.provider_message_id = k.pid
               ORDER BY o.event_id""",
            *[[k[i] for k in pk] for i in range(4)],
        )
        for r in orphans:
            pkey = (r["workspace_id"], r["channel"], r["account"], r["provider_message_id"])
            state.orphans.setdefault(pkey, []).append(
                Orphan(r["event_id"], r["hour"], r["outcome"], r["reason"])
            )
    return state


async def _save(conn: Conn, state: Batch, samples: list[Sample]) -> None:
    rows = [
        (ws, mid, d.channel, d.account, d.campaign_id, d.queued_at, d.sent_at,
         d.provider_message_id)
        for (ws, mid), d in state.deliveries.items()
        if d.changed
    ]  # fmt: skip
    if rows:
        await conn.execute(
            """INSERT INTO deliveries (workspace_id, message_id, channel, account, campaign_id,
                   queued_at, sent_at, provider_message_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                    $6::timestamptz[], $7::timestamptz[], $8::text[])
               ON CONFLICT (workspace_id, message_id) DO UPDATE SET
                   campaign_id = EXCLUDED.campaign_id, queued_at = EXCLUDED.queued_at,
                   sent_at = EXCLUDED.sent_at,
                   provider_message_id = EXCLUDED.provider_message_id""",
            *[list(col) for col in zip(*rows, strict=True)],
        )
    adopted = set(state.adopted)
    keep = [(k, o) for k, o in state.new_orphans if k not in adopted]
    if keep:
        await conn.execute(
            """INSERT INTO orphan_receipts (workspace_id, channel, account, provider_message_id,
                   event_id, hour, outcome, reason)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                    $6::timestamptz[], $7::text[], $8::text[])
               ON CONFLICT DO NOTHING""",
            *[[k[i] for k, _ in keep] for i in range(4)],
            # keyed: a receipt's event id names its recipient (a phone number on WhatsApp)
            [keyed_hash("event", o.event_id) for _, o in keep],
            [o.hour for _, o in keep],
            [o.outcome for _, o in keep],
            [o.reason for _, o in keep],
        )
    if adopted:
        a = list(adopted)
        await conn.execute(
            """DELETE FROM orphan_receipts o
               USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(ws, ch, acc, pid)
               WHERE o.workspace_id = k.ws AND o.channel = k.ch AND o.account = k.acc
                 AND o.provider_message_id = k.pid""",
            *[[k[i] for k in a] for i in range(4)],
        )
    await save_samples(conn, "send", samples)
