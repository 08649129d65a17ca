-- Raw CDRs as received and rated xDRs. Both are ReplacingMergeTree keyed by
-- fields that never change for a CDR (setup time, switch, id), so a replayed or
-- rerated CDR replaces its row: read with FINAL (or argMax by version).
-- DDL kept to what ClickHouse 18.16 and current releases both accept.

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
    src_user             String,
    ani                  String,
    term_ip              String,
    term_user            String,
    sip_code             Int32,
    cause                Int32,
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
    term_currency        String,
    currency             String,
    rated_at             DateTime,
    kafka_partition      Int32,
    kafka_offset         Int64,
    version              UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(setup_time)
ORDER BY (setup_time, switch, cdr_id);
