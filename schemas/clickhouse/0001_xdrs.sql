-- Raw CDRs as received and rated xDRs. Both are ReplacingMergeTree keyed by
-- fields that never change for a CDR (setup time, switch, id), so a replayed or
-- rerated CDR replaces its row: read with FINAL (or argMax by version).
-- DDL kept to what ClickHouse 18.16 and current releases both accept.
-- xdrs keeps what rating decided and what reports group by; everything else
-- the switch sent (ANI, SIP code, term IP, …) is in cdrs_raw.raw. Every
-- column is a pair of files in every part ClickHouse 18.16 writes, so fewer
-- columns are directly fewer files per insert.

CREATE TABLE IF NOT EXISTS cdrs_raw (
    cdr_id           String,
    switch           String,
    setup_time       DateTime,
    connect_time     Nullable(DateTime),
    disconnect_time  DateTime,
    raw              String,
    received_at      DateTime,
    kafka_partition  Int32,
    kafka_offset     Int64,
    version          UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(setup_time)
ORDER BY (setup_time, switch, cdr_id);

CREATE TABLE IF NOT EXISTS xdrs (
    cdr_id               String,
    switch               String,
    event_time           DateTime,
    setup_time           DateTime,
    connect_time         Nullable(DateTime),
    disconnect_time      DateTime,
    duration_ms          UInt64,
    dst                  String,
    src_ip               String,
    status               String,
    reason               String,
    detail               String,
    reseller_id          UInt64,
    orig_client_id       UInt64,
    orig_account_id      UInt64,
    orig_code            String,
    orig_code_name       String,
    orig_rate            Decimal(18, 9),
    orig_billed_seconds  UInt32,
    orig_cost            Decimal(18, 6),
    term_client_id       UInt64,
    term_account_id      UInt64,
    term_reason          String,
    term_code            String,
    term_code_name       String,
    term_rate            Decimal(18, 9),
    term_billed_seconds  UInt32,
    term_cost            Decimal(18, 6),
    currency             String,
    version              UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(setup_time)
ORDER BY (setup_time, switch, cdr_id);
