-- Sessions: the Telethon StringSession, the app hash and the proxy's password/secret live only
-- in `sealed` (AES-256-GCM with the keyring, bound to the session id); nothing secret is in
-- clear columns.
CREATE TABLE sessions (
    session_id      text PRIMARY KEY,
    workspace_id    text NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'logging_out', 'revoked')),
    phone           text,
    user_id         bigint,
    username        text,
    first_name      text,
    last_name       text,
    api_id          integer NOT NULL,
    device          jsonb NOT NULL,
    proxy           jsonb,
    sealed          text NOT NULL,
    revoked_reason  text,
    send_paused_until timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A login in progress: what the next step needs, so any instance can serve it. The temporary
-- session and the phone_code_hash are sealed like a session.
CREATE TABLE logins (
    session_id      text PRIMARY KEY,
    workspace_id    text NOT NULL,
    phone           text NOT NULL,
    step            text NOT NULL CHECK (step IN ('code', 'password')),
    api_id          integer NOT NULL,
    device          jsonb NOT NULL,
    proxy           jsonb,
    sealed          text NOT NULL,
    code_type       text,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Peers a session reads. `ref` is what was asked for; the peer is resolved by the instance
-- that owns the session (status pending -> active, or failed with a reason). `last_seen_id` is the newest message published: after a reconnect,
-- everything newer is fetched by id.
CREATE TABLE subscriptions (
    session_id      text NOT NULL,
    ref             text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'active', 'failed')),
    chat_id         text,
    peer            jsonb,
    last_seen_id    bigint NOT NULL DEFAULT 0,
    reason          text,
    command_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, ref)
);
CREATE UNIQUE INDEX subscriptions_chat ON subscriptions (session_id, chat_id)
    WHERE chat_id IS NOT NULL;

-- Backfill jobs with their checkpoint (the next page starts below `offset_id`).
CREATE TABLE backfills (
    job_id          text NOT NULL,
    session_id      text NOT NULL,
    workspace_id    text NOT NULL,
    ref             text NOT NULL,
    chat_id         text,
    peer            jsonb,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    offset_id       bigint NOT NULL DEFAULT 0,
    fetched         bigint NOT NULL DEFAULT 0,
    max_messages    bigint,
    until_date      timestamptz,
    resume_at       timestamptz,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, job_id)
);

-- Private-chat and basic-group messages: MTProto reports their deletion by id only (ids are
-- per account), so the chat of each published id is remembered to name it in the event.
CREATE TABLE message_chats (
    session_id      text NOT NULL,
    message_id      bigint NOT NULL,
    chat_id         text NOT NULL,
    chat_type       text NOT NULL,
    PRIMARY KEY (session_id, message_id)
);

-- Sends as a user: the same message_id is sent at most once (barring a crash mid-call).
CREATE TABLE sends (
    message_id      text PRIMARY KEY,
    session_id      text NOT NULL,
    status          text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    provider_message_id text,
    attempts        integer NOT NULL DEFAULT 0,
    reason          text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
