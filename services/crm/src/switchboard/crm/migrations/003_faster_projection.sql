-- The conversations projection writes messages and their conversation in one batch; the
-- foreign key cost a lookup per row and guarded nothing the projection does not already
-- guarantee. messages_provider served no query (receipts join through the conversation).
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_conversation_id_fkey;
DROP INDEX IF EXISTS messages_provider;
