-- The request each caller-chosen campaign id was first started with (its fingerprint): a
-- retry with the same request is the campaign again; another content or segment under the
-- id is refused (422 idempotency_conflict) instead of being answered as started while
-- outbound keeps the first. A ledger of decisions, not a projection: a rebuild keeps it.
CREATE TABLE IF NOT EXISTS campaign_requests (
    workspace_id text NOT NULL,
    campaign_id text NOT NULL,
    fingerprint text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, campaign_id)
);
