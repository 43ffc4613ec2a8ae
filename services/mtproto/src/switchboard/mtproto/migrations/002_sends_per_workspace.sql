-- Send ids (message_id) are the caller's, unique within its workspace only: another
-- workspace's same id is another message, never a "taken" answer that would leak it.
ALTER TABLE sends ADD COLUMN workspace_id text NOT NULL DEFAULT 'default';
UPDATE sends SET workspace_id = s.workspace_id FROM sessions s WHERE s.session_id = sends.session_id;
ALTER TABLE sends ALTER COLUMN workspace_id DROP DEFAULT;
ALTER TABLE sends DROP CONSTRAINT sends_pkey;
ALTER TABLE sends ADD PRIMARY KEY (workspace_id, message_id);
