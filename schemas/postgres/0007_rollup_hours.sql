-- Rollups of the summary (ClickHouse xdrs_rollup) are computed per hour of
-- setup time (UTC): setup time never changes for a CDR, so the hour a
-- rerated or replayed xDR replaces its old row in is the hour of the new one.
--
-- rollup_dirty: the setup hours a committed batch wrote xDRs into, one row
-- per hour per batch, inserted in the same transaction as the balances (an
-- append-only log, so concurrent batches never wait on each other here).
-- rollup_hours: per setup hour, the generation of xdrs_rollup rows that
-- holds its figures (gen), a generation being written (pending), and the
-- latest event hour among its calls (max_event), so a report knows which
-- hours can matter to its period.
--
-- A report reads an hour from the rollup only when it has a gen, no pending
-- generation and no rollup_dirty row; every other hour is read from xdrs
-- FINAL. An hour found in neither table has no xDRs.
CREATE TABLE rollup_dirty (
    id         bigserial PRIMARY KEY,
    hour       timestamptz NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_dirty_hour_idx ON rollup_dirty (hour, id);

CREATE TABLE rollup_hours (
    hour         timestamptz PRIMARY KEY,
    gen          bigint,
    pending      bigint,
    max_event    timestamptz,
    computed_at  timestamptz
);

CREATE SEQUENCE rollup_gen;
