-- Conversations and messages projected from CONV. Every column comes from events (no now()),
-- so a rebuild by replay produces byte-identical rows.
CREATE TABLE conversations (
    id               text PRIMARY KEY,
    workspace_id     text NOT NULL,
    channel          text NOT NULL,
    account          text NOT NULL,
    chat_id          text NOT NULL,
    chat_type        text NOT NULL,
    title            text,
    first_message_at timestamptz NOT NULL,
    last_message_at  timestamptz NOT NULL,
    message_count    integer NOT NULL DEFAULT 0,
    last_preview     text,
    updated_seq      bigint NOT NULL,
    UNIQUE (workspace_id, channel, account, chat_id)
);
CREATE INDEX conversations_inbox ON conversations (workspace_id, last_message_at DESC, id DESC);

CREATE TABLE messages (
    event_id            text PRIMARY KEY,
    conversation_id     text NOT NULL REFERENCES conversations (id),
    workspace_id        text NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('in', 'out')),
    provider_message_id text NOT NULL,
    sender_id           text,
    sender_name         text,
    kind                text NOT NULL,
    text                text,
    content             jsonb NOT NULL,
    reply_to            text,
    sent_at             timestamptz NOT NULL,
    received_at         timestamptz,
    edited_at           timestamptz,
    stream_seq          bigint NOT NULL,
    UNIQUE (conversation_id, direction, provider_message_id)
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, sent_at, stream_seq);
