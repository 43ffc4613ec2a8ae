-- Whose edit a pending edit (one that arrived before its message) is: the keyed hash of its
-- author, as erased_identities keeps them, so an erasure blanks the text of that person's
-- edits still waiting for their message and an edit arriving after it is kept blanked.
-- Rows written before carry none: they keep applying when their message lands, the
-- erasure blanks them in the person's one-to-one chats, and a `crm rebuild` fills the column.
ALTER TABLE pending_edits ADD COLUMN IF NOT EXISTS erase_hash text;
