-- The fingerprint of the body a send's message_id was first used with: a command with another
-- body under the id is refused (the API answers 422, the holder rejects a bus command with 409)
-- instead of being answered with the first one's status. Rows from before have none and match
-- any body, as before.
ALTER TABLE sends ADD COLUMN fingerprint text;
