-- Per-flow funnel (issue 21): one row per run (its latest state) and one per step a run
-- reached, projected from flows.run_recorded; flow names from flows.flow_saved.
CREATE TABLE IF NOT EXISTS flow_runs (
    workspace_id text NOT NULL,
    run_id text NOT NULL,
    flow_id text NOT NULL,
    revision integer NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    decision integer NOT NULL,
    status text NOT NULL,
    last_step text,
    completed boolean NOT NULL DEFAULT false,
    handed_off boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workspace_id, run_id)
);
CREATE INDEX IF NOT EXISTS flow_runs_by_flow ON flow_runs (workspace_id, flow_id, started_at);

CREATE TABLE IF NOT EXISTS flow_run_steps (
    workspace_id text NOT NULL,
    run_id text NOT NULL,
    step text NOT NULL,
    first_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, run_id, step)
);

CREATE TABLE IF NOT EXISTS flow_names (
    workspace_id text NOT NULL,
    flow_id text NOT NULL,
    revision integer NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (workspace_id, flow_id)
);
