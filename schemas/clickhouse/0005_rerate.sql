-- What a rerating job replaces, recorded before it writes: ClickHouse keeps
-- only the newest version of an xDR once parts merge, so a job killed
-- between writing new versions and moving balances finds the old costs here
-- when it resumes. One partition per job, dropped when the job is done.
-- cluster: not sharded
CREATE TABLE IF NOT EXISTS rerate_staged (
    job                 UInt64,
    chunk               UInt32,
    version             UInt64,
    setup_time          DateTime,
    switch              String,
    cdr_id              String,
    old_status          String,
    old_reason          String,
    old_orig_client_id  UInt64,
    old_orig_cost       Decimal(18, 6),
    old_term_client_id  UInt64,
    old_term_reason     String,
    old_term_cost       Decimal(18, 6)
) ENGINE = MergeTree
PARTITION BY job
ORDER BY (chunk, setup_time, switch, cdr_id);
