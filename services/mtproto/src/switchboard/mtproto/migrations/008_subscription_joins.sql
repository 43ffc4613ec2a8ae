-- Whether a subscription made the account a member of its channel or group (it joined it to
-- read it: Telegram sends a channel's posts to its members only), and the chats to leave
-- again: unsubscribing leaves what subscribing joined, so an account does not gather
-- channels up to Telegram's limit. The session's holder leaves them at its next tick.
ALTER TABLE subscriptions ADD COLUMN joined boolean NOT NULL DEFAULT false;

CREATE TABLE leaves (
    session_id      text NOT NULL,
    chat_id         text NOT NULL,
    peer            jsonb NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, chat_id)
);
