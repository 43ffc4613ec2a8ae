-- A send's outcome (sent / failed) is recorded before its events are published, so that a
-- redelivered command is never sent twice; outcome_published says whether the events made it
-- to the bus too. A command redelivered after a failed publish (a NATS timeout, a crash)
-- publishes them from the record instead of acking silently. Rows from before stay "published".
ALTER TABLE sends ADD COLUMN outcome_published boolean NOT NULL DEFAULT true;
