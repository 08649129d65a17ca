-- pgbench script: the PostgreSQL end of one batch commit (phase 4 of
-- sinks/store.go) for a batch that bills one client: lock the partition's
-- offset row, add the client's delta, store the next offset, commit.
-- :clients is how many clients the traffic spreads over (1: one hot row).
\set client random(1, :clients)
BEGIN;
SELECT next_offset FROM consumed_offsets WHERE topic = 'cdrs' AND "partition" = :client_id FOR UPDATE;
INSERT INTO balances (client_id, live) VALUES (:client, -0.012)
  ON CONFLICT (client_id) DO UPDATE SET live = balances.live + excluded.live;
UPDATE consumed_offsets SET next_offset = next_offset + 50000 WHERE topic = 'cdrs' AND "partition" = :client_id;
COMMIT;
