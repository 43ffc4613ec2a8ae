-- Rollups of every stream. Everything here is derived from event contents only (never the
-- wall clock), so a rebuild by replay yields byte-identical tables. Hours are UTC; days are
-- summed from hours at query time. '' stands for "none" in key columns.

-- The projections' positions (the runtime's own layout, created here so that the four
-- projections starting at once do not race to create it).
CREATE TABLE checkpoints (
    projection text PRIMARY KEY,
    stream text NOT NULL,
    seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The ce-ids already counted: an event re-published under a new stream sequence (beyond
-- JetStream's duplicate window) is still counted once.
CREATE TABLE seen_events (id text PRIMARY KEY);

CREATE TABLE message_volume (
    workspace_id text NOT NULL,
    hour timestamptz NOT NULL,
    channel text NOT NULL,
    account text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('in', 'out')),
    messages bigint NOT NULL,
    PRIMARY KEY (workspace_id, hour, channel, account, direction)
);

-- Every event of every stream by name: the generic view (MTProto events included).
CREATE TABLE event_counts (
    workspace_id text NOT NULL,
    hour timestamptz NOT NULL,
    stream text NOT NULL,
    name text NOT NULL,
    channel text NOT NULL,
    account text NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (workspace_id, hour, stream, name, channel, account)
);

-- Exact percentiles come from the samples themselves (see queries.py for why).
CREATE TABLE latency_samples (
    kind text NOT NULL CHECK (kind IN ('send', 'e2e')),
    workspace_id text NOT NULL,
    key text NOT NULL,
    hour timestamptz NOT NULL,
    channel text NOT NULL,
    account text NOT NULL,
    ms double precision NOT NULL,
    PRIMARY KEY (kind, workspace_id, key)
);
CREATE INDEX latency_samples_range ON latency_samples (workspace_id, kind, hour);

-- First response time: first customer message and first reply after it, per conversation.
CREATE TABLE conversations (
    workspace_id text NOT NULL,
    conversation text NOT NULL,
    channel text NOT NULL,
    account text NOT NULL,
    first_in_at timestamptz,
    first_reply_at timestamptz,
    inbound bigint NOT NULL DEFAULT 0,
    outbound bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, conversation)
);
CREATE INDEX conversations_first_in ON conversations (workspace_id, first_in_at);

-- One row per outbound message: what send latency and campaign attribution need.
CREATE TABLE deliveries (
    workspace_id text NOT NULL,
    message_id text NOT NULL,
    channel text NOT NULL,
    account text NOT NULL,
    campaign_id text NOT NULL,
    queued_at timestamptz,
    sent_at timestamptz,
    provider_message_id text,
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX deliveries_provider_id
    ON deliveries (workspace_id, channel, account, provider_message_id);

CREATE TABLE delivery_outcomes (
    workspace_id text NOT NULL,
    hour timestamptz NOT NULL,
    provider text NOT NULL,
    account text NOT NULL,
    campaign_id text NOT NULL,
    outcome text NOT NULL,
    reason text NOT NULL,
    example text,
    events bigint NOT NULL,
    PRIMARY KEY (workspace_id, hour, provider, account, campaign_id, outcome, reason)
);

-- Receipts that arrived before the send they report on: counted at once without a
-- campaign, moved to the campaign when the send shows up.
CREATE TABLE orphan_receipts (
    workspace_id text NOT NULL,
    channel text NOT NULL,
    account text NOT NULL,
    provider_message_id text NOT NULL,
    event_id text NOT NULL,
    hour timestamptz NOT NULL,
    outcome text NOT NULL,
    reason text NOT NULL,
    PRIMARY KEY (workspace_id, channel, account, provider_message_id, event_id)
);

-- What the conversion signals need to know about people (blanked on erasure).
CREATE TABLE contacts (
    workspace_id text NOT NULL,
    contact_id text NOT NULL,
    display_name text,
    phones text[] NOT NULL DEFAULT '{}',
    emails text[] NOT NULL DEFAULT '{}',
    merged_into text,
    erased boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workspace_id, contact_id)
);

CREATE TABLE leads (
    workspace_id text NOT NULL,
    lead_id text NOT NULL,
    contact_id text NOT NULL,
    source text NOT NULL,
    campaign_id text NOT NULL,
    created_at timestamptz NOT NULL,
    stage text NOT NULL,
    value numeric,
    currency text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, lead_id)
);
CREATE INDEX leads_created ON leads (workspace_id, created_at);

CREATE TABLE lead_stages_reached (
    workspace_id text NOT NULL,
    lead_id text NOT NULL,
    stage text NOT NULL,
    first_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, lead_id, stage)
);

CREATE TABLE lead_stage_entries (
    workspace_id text NOT NULL,
    hour timestamptz NOT NULL,
    source text NOT NULL,
    campaign_id text NOT NULL,
    stage text NOT NULL,
    entries bigint NOT NULL,
    PRIMARY KEY (workspace_id, hour, source, campaign_id, stage)
);

-- MTProto session health and backfill jobs, read by event name and field names (see
-- mtproto_projector.py), so events added later are still counted in event_counts.
CREATE TABLE mtproto_sessions (
    workspace_id text NOT NULL,
    session text NOT NULL,
    state text NOT NULL,
    last_event text NOT NULL,
    last_at timestamptz NOT NULL,
    connects bigint NOT NULL DEFAULT 0,
    disconnects bigint NOT NULL DEFAULT 0,
    flood_waits bigint NOT NULL DEFAULT 0,
    flood_wait_seconds bigint NOT NULL DEFAULT 0,
    login_failures bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, session)
);

CREATE TABLE mtproto_backfill (
    workspace_id text NOT NULL,
    session text NOT NULL,
    job_id text NOT NULL,
    chat text NOT NULL,
    fetched bigint NOT NULL DEFAULT 0,
    pages bigint NOT NULL DEFAULT 0,
    status text NOT NULL,
    detail text,
    started_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, session, job_id)
);

-- Conversion signals already decided: one row per lead and stage, written in the same
-- transaction as the CRM checkpoint, published after commit (an outbox). This table is a
-- record of side effects, not a projection: a rebuild never replaces it (rebuild.py), so a
-- replay can never decide the same conversion twice.
CREATE TABLE conversion_ledger (
    conversion_id text PRIMARY KEY,
    workspace_id text NOT NULL,
    lead_id text NOT NULL,
    stage text NOT NULL,
    contact_id text NOT NULL,
    event_name text NOT NULL,
    value numeric,
    currency text,
    event_time timestamptz NOT NULL,
    crm_event_id text NOT NULL,
    command jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX conversion_ledger_unpublished
    ON conversion_ledger (event_time) WHERE published_at IS NULL;
