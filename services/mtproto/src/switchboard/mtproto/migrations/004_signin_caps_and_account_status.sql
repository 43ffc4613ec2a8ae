-- Sign-in attempts that reached Telegram (code requests, codes, passwords), for the local
-- cap per phone and per workspace: kept in Postgres so every instance counts the same ones.
CREATE TABLE signin_attempts (
    workspace_id    text NOT NULL,
    phone           text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signin_attempts_workspace ON signin_attempts (workspace_id, at);
CREATE INDEX signin_attempts_phone ON signin_attempts (phone, at);

-- The account status last announced (mtproto.account_status_changed), so a status is
-- announced once when it changes, whichever instance sees it.
ALTER TABLE sessions ADD COLUMN account_status text;

-- Answers to dialogs / contact-search queries (dialogs.py), kept briefly: the API on any
-- instance waits for its query's answer here (the event on the bus is the same answer).
CREATE TABLE query_answers (
    command_id      text PRIMARY KEY,
    session_id      text NOT NULL,
    name            text NOT NULL,
    body            jsonb NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_answers_at ON query_answers (at);

-- Session TTL (ttl.py): a session idle for its TTL is parked (disconnected, its lease
-- released, not claimed) until demand for it arrives.
ALTER TABLE sessions ADD COLUMN parked_at timestamptz;
