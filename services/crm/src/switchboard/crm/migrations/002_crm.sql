-- Contacts, identities and leads, projected from the CRM stream; delivery state from
-- DELIVERY. Each table is written by exactly one projection (one stream, one order), and
-- cross-stream facts are joined at read time, so a rebuild by replay is byte-identical to
-- the live tables whatever the interleaving of the streams was.

CREATE TABLE contacts (
    id             text PRIMARY KEY,
    workspace_id   text NOT NULL,
    display_name   text,
    phone          text,
    attributes     jsonb NOT NULL DEFAULT '{}',
    tags           text[] NOT NULL DEFAULT '{}',
    source_channel text,
    merged_into    text,
    erased         boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
CREATE INDEX contacts_list ON contacts (workspace_id, updated_at DESC, id DESC);

CREATE TABLE contact_identities (
    workspace_id text NOT NULL,
    channel      text NOT NULL,
    external_id  text NOT NULL,
    contact_id   text NOT NULL,
    account      text,
    username     text,
    phone        text,
    PRIMARY KEY (workspace_id, channel, external_id)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

CREATE TABLE contact_notes (
    contact_id text NOT NULL,
    seq        bigint NOT NULL,
    note       text NOT NULL,
    author     text,
    at         timestamptz NOT NULL,
    PRIMARY KEY (contact_id, seq)
);

-- Identities of erased people, hashed (the hash of workspace/channel/external id): the
-- conversation projection blanks their messages on sight, live and on every rebuild.
CREATE TABLE erased_identities (
    key_hash text PRIMARY KEY
);

CREATE TABLE leads (
    id             text PRIMARY KEY,
    workspace_id   text NOT NULL,
    contact_id     text NOT NULL,
    stage          text NOT NULL,
    source_channel text,
    campaign_id    text,
    value          numeric,
    currency       text,
    assignee       text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
CREATE INDEX leads_list ON leads (workspace_id, updated_at DESC, id DESC);
CREATE INDEX leads_contact ON leads (contact_id);

CREATE TABLE lead_stage_history (
    lead_id    text NOT NULL,
    seq        bigint NOT NULL,
    from_stage text,
    to_stage   text NOT NULL,
    author     text,
    reason     text,
    at         timestamptz NOT NULL,
    PRIMARY KEY (lead_id, seq)
);

-- Outbound messages and their delivery, from CONV (message_sent) and DELIVERY.
ALTER TABLE messages ADD COLUMN message_id text;
ALTER TABLE messages ADD COLUMN deleted_at timestamptz;
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(text, ''))) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
CREATE INDEX messages_outbound ON messages (workspace_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX messages_provider ON messages (workspace_id, provider_message_id);

-- Edits that arrived before their message (applied when it lands).
CREATE TABLE pending_edits (
    conversation_id     text NOT NULL,
    provider_message_id text NOT NULL,
    edited_at           timestamptz NOT NULL,
    kind                text NOT NULL,
    text                text,
    content             jsonb NOT NULL,
    PRIMARY KEY (conversation_id, provider_message_id, edited_at)
);

-- What outbound and the providers said about each sent message, highest rank wins:
-- queued < retrying < sent < delivered < read; failed is terminal.
CREATE TABLE deliveries (
    workspace_id text NOT NULL,
    message_id   text NOT NULL,
    channel      text NOT NULL,
    account      text NOT NULL,
    recipient    text NOT NULL,
    status       text NOT NULL,
    rank         integer NOT NULL,
    reason       text,
    provider_message_id text,
    at           timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
);
CREATE TABLE receipts (
    workspace_id        text NOT NULL,
    channel             text NOT NULL,
    account             text NOT NULL,
    provider_message_id text NOT NULL,
    recipient           text NOT NULL,
    status              text NOT NULL,
    rank                integer NOT NULL,
    reason              text,
    at                  timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, channel, account, provider_message_id, recipient)
);
