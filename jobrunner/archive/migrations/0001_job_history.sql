-- 0001: the job history, one row per job id: its last ending (done, dead or cancelled).
-- A job requeued from dead and run again ends twice: the row keeps the later ending.
CREATE TABLE job_history (
    id          text PRIMARY KEY,
    queue       text NOT NULL,
    type        text NOT NULL,
    state       text NOT NULL CHECK (state IN ('done', 'dead', 'cancelled')),
    attempts    integer NOT NULL,
    error       text,
    payload     jsonb,
    result      jsonb,
    enqueued_at timestamptz,
    started_at  timestamptz,
    finished_at timestamptz NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);
-- the listing's order (newest first, id breaking ties) and its keyset paging; retention
CREATE INDEX job_history_finished ON job_history (finished_at DESC, id DESC);
CREATE INDEX job_history_type ON job_history (type, finished_at DESC);
CREATE INDEX job_history_queue ON job_history (queue, finished_at DESC);
