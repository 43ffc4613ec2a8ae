-- The Telegram user accounts (MTProto sessions) of each workspace with the status the gateway
-- last announced (mtproto.account_status_changed): active, session_revoked, restricted,
-- banned, flood_limited; since is the time of that announcement.
CREATE TABLE IF NOT EXISTS user_accounts (
    workspace_id text NOT NULL,
    session_id text NOT NULL,
    status text NOT NULL,
    reason text,
    error_code text,
    until timestamptz,
    since timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, session_id)
);
