-- xdrs_rollup: the rated calls of xdrs FINAL summed per hour of setup time,
-- hour of event time and every grouping the summary and orig-term reports
-- offer except the code (term_currency is the cost's currency: the orig one for
-- calls without a rated vendor side). Rows of one setup hour are written together under
-- one generation (gen, from PostgreSQL's rollup_gen); a report reads the
-- generation that rollup_hours names for the hour, so a recomputed hour
-- replaces its figures whole, including groups that vanished. Older
-- generations are merged away where a newer one has the same key.
CREATE TABLE IF NOT EXISTS xdrs_rollup (
    setup_hour           DateTime,
    event_hour           DateTime,
    reseller_id          UInt64,
    orig_client_id       UInt64,
    orig_account_id      UInt64,
    term_client_id       UInt64,
    orig_code_name       String,
    orig_currency        String,
    term_currency        String,
    calls                UInt64,
    answered             UInt64,
    answered_ms          UInt64,
    orig_billed_seconds  UInt64,
    orig_cost            Decimal(18, 6),
    term_calls           UInt64,
    term_billed_seconds  UInt64,
    term_cost            Decimal(18, 6),
    gen                  UInt64
) ENGINE = ReplacingMergeTree(gen)
PARTITION BY toYYYYMM(setup_hour)
ORDER BY (setup_hour, event_hour, reseller_id, orig_client_id, orig_account_id, term_client_id, orig_code_name, orig_currency, term_currency);

-- xdrs_rollup_clients: xdrs_rollup without the account and the code name,
-- the same generations: what summaries by time, reseller and client read
-- (a few hundred rows per hour instead of thousands).
CREATE TABLE IF NOT EXISTS xdrs_rollup_clients (
    setup_hour           DateTime,
    event_hour           DateTime,
    reseller_id          UInt64,
    orig_client_id       UInt64,
    term_client_id       UInt64,
    orig_currency        String,
    term_currency        String,
    calls                UInt64,
    answered             UInt64,
    answered_ms          UInt64,
    orig_billed_seconds  UInt64,
    orig_cost            Decimal(18, 6),
    term_calls           UInt64,
    term_billed_seconds  UInt64,
    term_cost            Decimal(18, 6),
    gen                  UInt64
) ENGINE = ReplacingMergeTree(gen)
PARTITION BY toYYYYMM(setup_hour)
ORDER BY (setup_hour, event_hour, reseller_id, orig_client_id, term_client_id, orig_currency, term_currency);

-- Names for analysts, copied from the PostgreSQL catalog (ClickHouse 18.16
-- has no PostgreSQL dictionary source): every worker copies them within a
-- minute of a catalog change, and `tarifa migrate` on every run.
-- Read with FINAL; version is the catalog version they were copied at.
CREATE TABLE IF NOT EXISTS resellers (
    id         UInt64,
    name       String,
    parent_id  UInt64,
    currency   String,
    status     String,
    version    UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS clients (
    id             UInt64,
    name           String,
    reseller_id    UInt64,
    currency       String,
    status         String,
    timezone       String,
    tags           Array(String),
    hidden_digits  UInt8,
    version        UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS accounts (
    id           UInt64,
    client_id    UInt64,
    kind         String,
    ident        String,
    tech_prefix  String,
    status       String,
    version      UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;
