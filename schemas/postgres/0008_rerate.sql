-- Rerating jobs (tarifa rerate, POST /v1/rerate-jobs): who asked for what,
-- against which catalog, how far it got and what it did. A job's chunks are
-- planned once, when it starts, so that a resumed job walks the same
-- setup-time ranges; a chunk is done when its balance deltas committed, in
-- the same transaction.
CREATE TABLE rerate_jobs (
    id               bigserial PRIMARY KEY,
    state            text NOT NULL CHECK (state IN ('dry_run', 'running', 'done', 'failed')),
    dry_run          boolean NOT NULL,
    selection        jsonb NOT NULL,
    -- selection_key identifies "the same command": running it again
    -- resumes the unfinished job instead of starting another.
    selection_key    text NOT NULL,
    actor            text NOT NULL,
    reseller_id      bigint REFERENCES resellers (id), -- the scope of a reseller's job; NULL for an admin's
    topic            text NOT NULL,
    catalog_version  bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    planned          bigint NOT NULL DEFAULT 0,  -- CDRs the plan counted
    selected         bigint NOT NULL DEFAULT 0,  -- CDRs rated again so far
    changed          bigint NOT NULL DEFAULT 0,  -- of which the billing changed
    skipped          bigint NOT NULL DEFAULT 0,  -- left alone: a worker was billing them at that moment, or outside the scope
    result           jsonb NOT NULL DEFAULT '{}',
    error            text NOT NULL DEFAULT ''
);
CREATE INDEX rerate_jobs_unfinished_idx ON rerate_jobs (id) WHERE state IN ('running', 'failed');

CREATE TABLE rerate_chunks (
    job_id     bigint NOT NULL REFERENCES rerate_jobs (id) ON DELETE CASCADE,
    chunk      integer NOT NULL,
    from_time  timestamptz NOT NULL,
    to_time    timestamptz NOT NULL,
    planned    bigint NOT NULL,
    done_at    timestamptz,
    version    bigint, -- the xDR version the chunk wrote, once done
    PRIMARY KEY (job_id, chunk)
);
