-- Every batch of the conversations projection rewrites the summary row of each
-- conversation it touched. With room left on each page, Postgres updates a row in place
-- (a HOT update) when no indexed column changes, which is the case during a rebuild (the
-- inbox index is built after the replay): no new index entries, no page splits, three
-- times less work per update measured. Applies to pages written from now on.
ALTER TABLE conversations SET (fillfactor = 70);
