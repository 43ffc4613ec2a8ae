-- Read receipts of sends as a user (updateReadHistoryOutbox / updateReadChannelOutbox say
-- "read up to max_id" per chat): each sent message keeps its chat and the recipient its sender
-- named, and when a read receipt went out for it.
ALTER TABLE sends ADD COLUMN chat_id text;
ALTER TABLE sends ADD COLUMN recipient text;
ALTER TABLE sends ADD COLUMN read_at timestamptz;
CREATE INDEX sends_unread ON sends (session_id, chat_id) WHERE status = 'sent' AND read_at IS NULL;
