"""Rollups of stream ``CRM``: the lead funnel (stage entries per source and campaign, the
stages each lead reached), what conversion signals need to know about contacts, and the
conversion ledger (decided here, in the same transaction as the checkpoint)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from switchboard.analytics import metrics
from switchboard.analytics.context import Context
from switchboard.analytics.conversions import LeadFacts, Person, conversion_command
from switchboard.analytics.counting import CounterTable, Deltas, count_events, fresh, rows_for
from switchboard.analytics.items import Item, hour_of
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactErased,
    ContactIdentityLinked,
    ContactMerged,
    ContactUpdated,
    LeadCreated,
    LeadStageChanged,
)
from switchboard.events.catalog.outbound import SendConversion
from switchboard.runtime.db import Conn
from switchboard.runtime.logging import get_logger

PROJECTION = "analytics_crm"
STREAM = "CRM"
SUBJECTS = ("crm.>",)
log = get_logger(__name__)
CONVERSIONS_CHANNEL = "analytics_conversions"  # NOTIFY'd on commit when some were decided

ENTRIES = CounterTable(
    "lead_stage_entries",
    (
        ("workspace_id", "text"),
        ("hour", "timestamptz"),
        ("source", "text"),
        ("campaign_id", "text"),
        ("stage", "text"),
    ),
    "entries",
)


@dataclass
class Lead:
    facts: LeadFacts
    created_at: datetime
    stage: str
    updated_at: datetime
    changed: bool = False


@dataclass
class Batch:
    people: dict[tuple[str, str], Person] = field(default_factory=dict)
    leads: dict[tuple[str, str], Lead] = field(default_factory=dict)
    reached: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    decided: list[Decision] = field(default_factory=list)
    too_old: int = 0  # stage changes past Meta's window: no conversion decided
    erased: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """A conversion this batch decided: the command and where it came from."""

    workspace: str
    crm_event_id: str
    stage: str
    contact_id: str
    command: SendConversion


async def apply(conn: Conn, items: list[Item], ctx: Context) -> None:
    # Touch the checkpoints first: while a rebuild holds them locked to swap tables, this
    # transaction waits here, before it could hold a ledger row the rebuild's replay (which
    # writes the same ledger) would have to wait for.
    await conn.execute("SELECT 1 FROM checkpoints LIMIT 0")
    new = await fresh(conn, items)
    state = await _load(conn, new)
    entries = Deltas(ENTRIES)
    entered: list[tuple[str, str, str]] = []

    def enter(ws: str, lead: Lead, stage: str, at: datetime, item: Item) -> None:
        entries.add((ws, hour_of(at), lead.facts.source, lead.facts.campaign_id, stage))
        entered.append((ws, stage, lead.facts.source))
        state.reached.setdefault((ws, lead.facts.lead_id, stage), at)
        rules = ctx.targets.rules_for(ws) if ctx.targets is not None else None
        if rules is not None and ctx.targets is not None and ctx.targets.too_old(at):
            state.too_old += 1
            rules = None
        if rules is not None:
            person = _person(state, ws, lead.facts.contact_id)
            cmd = conversion_command(rules, lead=lead.facts, stage=stage, at=at, person=person)
            if cmd is not None:
                state.decided.append(
                    Decision(ws, item.envelope.id, stage, lead.facts.contact_id, cmd)
                )

    for item in new:
        ev, ws, at = item.model, item.workspace, item.envelope.time
        if isinstance(ev, ContactCreated):
            person = _get(state, ws, ev.contact_id)
            person.display_name, person.changed = ev.display_name, True
            person.add_phone(ev.phone)
            for identity in ev.identities:
                person.add_phone(identity.phone)
            person.add_emails(ev.attributes)
        elif isinstance(ev, ContactIdentityLinked):
            person = _get(state, ws, ev.contact_id)
            person.add_phone(ev.identity.phone)
            if ev.display_name and person.display_name is None and not person.erased:
                person.display_name, person.changed = ev.display_name, True  # as the CRM does
        elif isinstance(ev, ContactUpdated):
            person = _get(state, ws, ev.contact_id)
            if ev.display_name and not person.erased:
                person.display_name, person.changed = ev.display_name, True
            person.add_phone(ev.phone, first=True)
            person.add_emails(ev.attributes)
        elif isinstance(ev, ContactMerged):
            gone, survivor = _get(state, ws, ev.merged_contact_id), _get(state, ws, ev.contact_id)
            for phone in gone.phones:
                survivor.add_phone(phone)
            survivor.add_emails({"emails": gone.emails})
            gone.merged_into, gone.changed = ev.contact_id, True
        elif isinstance(ev, ContactErased):
            _get(state, ws, ev.contact_id).erase()
            state.erased.append((ws, ev.contact_id))
        elif isinstance(ev, LeadCreated):
            if (ws, ev.lead_id) in state.leads:
                continue
            facts = LeadFacts(
                ev.lead_id,
                ev.contact_id,
                ev.source_channel.value if ev.source_channel else "unknown",
                ev.campaign_id or "",
                ev.value,
                ev.currency,
                ev.referral.click_id if ev.referral else None,
            )
            lead = Lead(facts, at, ev.stage, at, changed=True)
            state.leads[(ws, ev.lead_id)] = lead
            enter(ws, lead, ev.stage, at, item)
        elif isinstance(ev, LeadStageChanged):
            found = state.leads.get((ws, ev.lead_id))
            if found is None:
                continue  # a change to a lead this projection never saw created
            value: Decimal | None = ev.value if ev.value is not None else found.facts.value
            found.facts = replace(found.facts, value=value, contact_id=ev.contact_id)
            found.stage, found.updated_at, found.changed = ev.to_stage, at, True
            enter(ws, found, ev.to_stage, at, item)
    await entries.write(conn)
    await count_events(STREAM, new).write(conn)
    await _save(conn, state)
    await _record(conn, ctx, state.decided)
    if state.too_old:
        log.info("stage changes past Meta's 7 days decided no conversion", count=state.too_old)
    for ws, contact_id in state.erased:
        await _scrub_ledger(conn, ctx, ws, contact_id)
    if ctx.observe:
        for ws, stage, source in entered:
            metrics.LEAD_ENTRIES.labels(ws, stage, source).inc()


def _get(state: Batch, ws: str, contact_id: str) -> Person:
    person = state.people.get((ws, contact_id))
    if person is None:
        person = state.people[(ws, contact_id)] = Person(changed=True)
    return person


def _person(state: Batch, ws: str, contact_id: str) -> Person | None:
    """The contact, following merges to the survivor (what the CRM shows for the lead)."""
    seen = {contact_id}
    person = state.people.get((ws, contact_id))
    while person is not None and person.merged_into and person.merged_into not in seen:
        seen.add(person.merged_into)
        survivor = state.people.get((ws, person.merged_into))
        if survivor is None:
            break
        person = survivor
    return person


async def _load(conn: Conn, items: list[Item]) -> Batch:
    state = Batch()
    contact_ids: set[tuple[str, str]] = set()
    lead_ids: set[tuple[str, str]] = set()
    for item in items:
        ev, ws = item.model, item.workspace
        for attr in ("contact_id", "merged_contact_id"):
            value = getattr(ev, attr, None)
            if isinstance(value, str):
                contact_ids.add((ws, value))
        if isinstance(ev, LeadCreated | LeadStageChanged):
            lead_ids.add((ws, ev.lead_id))
    if lead_ids:
        rows = await rows_for(conn, "leads", "lead_id", lead_ids)
        for r in rows:
            facts = LeadFacts(
                r["lead_id"],
                r["contact_id"],
                r["source"],
                r["campaign_id"],
                r["value"],
                r["currency"],
                r["click_id"],
            )
            ws = r["workspace_id"]
            state.leads[(ws, r["lead_id"])] = Lead(
                facts, r["created_at"], r["stage"], r["updated_at"]
            )
            contact_ids.add((ws, r["contact_id"]))
        reached = await rows_for(conn, "lead_stages_reached", "lead_id", lead_ids)
        for r in reached:
            state.reached[(r["workspace_id"], r["lead_id"], r["stage"])] = r["first_at"]
    # Merged contacts point at their survivor, which may need loading in turn.
    wanted = contact_ids
    for _ in range(8):
        if not wanted:
            break
        rows = await rows_for(conn, "contacts", "contact_id", wanted)
        for r in rows:
            state.people[(r["workspace_id"], r["contact_id"])] = Person(
                r["display_name"], list(r["phones"]), list(r["emails"]), r["merged_into"],
                r["erased"],
            )  # fmt: skip
        wanted = {
            (ws, p.merged_into)
            for (ws, _), p in state.people.items()
            if p.merged_into and (ws, p.merged_into) not in state.people
        }
    return state


async def _save(conn: Conn, state: Batch) -> None:
    people = [(k, p) for k, p in state.people.items() if p.changed]
    if people:
        await conn.execute(
            """INSERT INTO contacts (workspace_id, contact_id, display_name, phones, emails,
                   merged_into, erased)
               SELECT ws, id, name, ARRAY(SELECT json_array_elements_text(ph::json)),
                      ARRAY(SELECT json_array_elements_text(em::json)), merged, erased
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::bool[]) AS t(ws, id, name, ph, em, merged, erased)
               ON CONFLICT (workspace_id, contact_id) DO UPDATE SET
                   display_name = EXCLUDED.display_name, phones = EXCLUDED.phones,
                   emails = EXCLUDED.emails, merged_into = EXCLUDED.merged_into,
                   erased = EXCLUDED.erased""",
            [k[0] for k, _ in people],
            [k[1] for k, _ in people],
            [p.display_name for _, p in people],
            [json.dumps(p.phones) for _, p in people],
            [json.dumps(p.emails) for _, p in people],
            [p.merged_into for _, p in people],
            [p.erased for _, p in people],
        )
    leads = [(k, lead) for k, lead in state.leads.items() if lead.changed]
    if leads:
        await conn.execute(
            """INSERT INTO leads (workspace_id, lead_id, contact_id, source, campaign_id,
                   created_at, stage, value, currency, updated_at, click_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                    $6::timestamptz[], $7::text[], $8::numeric[], $9::text[],
                                    $10::timestamptz[], $11::text[])
               ON CONFLICT (workspace_id, lead_id) DO UPDATE SET
                   contact_id = EXCLUDED.contact_id, stage = EXCLUDED.stage,
                   value = EXCLUDED.value, updated_at = EXCLUDED.updated_at""",
            [k[0] for k, _ in leads],
            [k[1] for k, _ in leads],
            [lead.facts.contact_id for _, lead in leads],
            [lead.facts.source for _, lead in leads],
            [lead.facts.campaign_id for _, lead in leads],
            [lead.created_at for _, lead in leads],
            [lead.stage for _, lead in leads],
            [lead.facts.value for _, lead in leads],
            [lead.facts.currency for _, lead in leads],
            [lead.updated_at for _, lead in leads],
            [lead.facts.click_id for _, lead in leads],
        )
    if state.reached:
        keys = list(state.reached)
        await conn.execute(
            """INSERT INTO lead_stages_reached (workspace_id, lead_id, stage, first_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
               ON CONFLICT DO NOTHING""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [state.reached[k] for k in keys],
        )


async def _record(conn: Conn, ctx: Context, decided: list[Decision]) -> None:
    """Write decided conversions to the ledger (never twice per lead and stage) and wake
    the publisher once this transaction commits."""
    if not decided:
        return
    rows = await conn.fetch(
        f"""INSERT INTO {ctx.ledger_schema}.conversion_ledger (conversion_id, workspace_id,
                lead_id, stage, contact_id, event_name, value, currency, event_time,
                crm_event_id, command)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::numeric[], $8::text[], $9::timestamptz[],
                                 $10::text[], $11::jsonb[])
            ON CONFLICT (conversion_id) DO NOTHING RETURNING conversion_id""",
        [d.command.conversion_id for d in decided],
        [d.workspace for d in decided],
        [d.command.lead_id for d in decided],
        [d.stage for d in decided],
        [d.contact_id for d in decided],
        [d.command.event_name for d in decided],
        [Decimal(str(d.command.value)) if d.command.value is not None else None for d in decided],
        [d.command.currency for d in decided],
        [d.command.event_time for d in decided],
        [d.crm_event_id for d in decided],
        [d.command.model_dump_json(exclude_none=True) for d in decided],
    )
    if rows:
        await conn.execute(f"NOTIFY {CONVERSIONS_CHANNEL}")


async def _scrub_ledger(conn: Conn, ctx: Context, ws: str, contact_id: str) -> None:
    """Erasure reaches the ledger too: keep only our own id of the person."""
    await conn.execute(
        f"""UPDATE {ctx.ledger_schema}.conversion_ledger
            SET command = jsonb_set(command, '{{user_data}}',
                                    jsonb_build_object('external_id', jsonb_build_array($2::text)))
            WHERE workspace_id = $1 AND contact_id = $2""",
        ws,
        contact_id,
    )
