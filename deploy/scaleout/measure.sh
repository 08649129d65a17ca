#!/usr/bin/env bash
# What one PostgreSQL primary allows Tarifa, measured with pgbench in a
# scratch database (created and dropped here) on the server of
# TARIFA_PG_DSN (the local stack by default):
#
#   deploy/scaleout/measure.sh [SECONDS]
#
#  1. dedupe claims: keys a second, for 1 and 2 sessions claiming 10,000-key
#     batches at once (two workers), into a table holding 2 million keys,
#     and WAL bytes per key, from a checkpoint on (so the full-page images
#     of the B-tree leaves the random keys land in are counted);
#  2. batch commits on balance rows: commits a second for 8 sessions (eight
#     partitions committing at once) when batches bill one hot client and
#     when they spread over 1,000 clients.
set -euo pipefail
secs=${1:-15}
dsn=${TARIFA_PG_DSN:-postgres://postgres@127.0.0.1:55432/tarifa?sslmode=disable}
base=${dsn%%\?*}
server=${base%/*}
db=tarifa_scaleout_$$
pgbench=$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)
here=$(cd "$(dirname "$0")" && pwd)
psql -q "$server/postgres" -c "CREATE DATABASE $db"
trap 'psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
url="$server/$db"
psql -q "$url" <<'SQL'
CREATE TABLE cdr_keys (key uuid PRIMARY KEY, topic text NOT NULL, "partition" integer NOT NULL,
  "offset" bigint NOT NULL, seen_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON cdr_keys USING brin (seen_at);
CREATE TABLE balances (client_id bigint PRIMARY KEY, live numeric(20, 6) NOT NULL DEFAULT 0);
CREATE TABLE consumed_offsets (topic text, "partition" int, next_offset bigint NOT NULL DEFAULT 0, PRIMARY KEY (topic, "partition"));
INSERT INTO consumed_offsets SELECT 'cdrs', p, 0 FROM generate_series(1, 16) p;
INSERT INTO balances SELECT g, 0 FROM generate_series(1, 1000) g;
-- A table a day old, as in production: 48 h of keys are resident.
INSERT INTO cdr_keys (key, topic, "partition", "offset") SELECT gen_random_uuid(), 'cdrs', 0, 0 FROM generate_series(1, 2000000);
VACUUM ANALYZE;
SQL
tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
for c in 1 2; do
  psql -q "$url" -c CHECKPOINT
  lsn0=$(psql -Atq "$url" -c "SELECT pg_current_wal_lsn()")
  t=$("$pgbench" -n -f "$here/claims.sql" -c $c -j $c -T "$secs" "$url" 2>/dev/null | tps)
  wal=$(psql -Atq "$url" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
  keys=$(awk -v t="$t" -v s="$secs" 'BEGIN { printf "%.0f", t * 10000 }')
  per=$(awk -v w="$wal" -v k="$keys" -v s="$secs" 'BEGIN { printf "%.0f", w / (k * s) }')
  echo "dedupe claims, $c session(s): $keys keys/s, $per WAL bytes/key"
done
for clients in 1 1000; do
  t=$("$pgbench" -n -f "$here/balances.sql" -D clients=$clients -c 8 -j 2 -T "$secs" "$url" 2>/dev/null | tps)
  echo "batch commits, 8 partitions, traffic over $clients client(s): ${t%.*} commits/s"
done
