-- Where each session's update sequences stood (pts/qts/date/seq and a pts per channel),
-- so the next holder asks Telegram for the difference since then. Not secret: numbers.
CREATE TABLE update_states (
    session_id      text PRIMARY KEY,
    state           jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
