-- The kept downloads (object store) of an erased person's messages: noted by the erasure,
-- deleted by the CRM's sweeper (erased_files.py), the row with them. A ledger of work to
-- do, kept by a rebuild. ``message_id`` is the id a file is kept under: the message's
-- event id, or our outbound message id.
CREATE TABLE IF NOT EXISTS erased_files (
    workspace_id text NOT NULL,
    message_id text NOT NULL,
    file_index integer NOT NULL,
    PRIMARY KEY (workspace_id, message_id, file_index)
);
