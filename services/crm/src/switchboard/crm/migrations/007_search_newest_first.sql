-- The message search looks for a page among a workspace's newest messages first
-- (queries.search_messages): this index walks them newest first (read backwards) and the
-- walk stops after a bound.
CREATE INDEX IF NOT EXISTS messages_newest ON messages (workspace_id, sent_at, stream_seq);
