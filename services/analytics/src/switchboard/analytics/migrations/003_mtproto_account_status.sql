-- The Telegram account's status behind each MTProto session (mtproto.account_status_changed):
-- active, session_revoked, banned, restricted or flood_limited, and since when.
ALTER TABLE mtproto_sessions ADD COLUMN IF NOT EXISTS account_status text;
ALTER TABLE mtproto_sessions ADD COLUMN IF NOT EXISTS account_status_at timestamptz;
