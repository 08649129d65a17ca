-- Each side's currency, and the CDR fields switch engineers look for, as
-- xdrs columns (DESIGN.md "ClickHouse tables analysts query").
--
-- orig_currency defaults to currency, so rows written before this migration
-- read it without being rewritten. term_currency needs the term client's
-- currency from PostgreSQL: `tarifa migrate` fills it for older rows with a
-- mutation after this migration (sinks.FillTermCurrency). Rows written
-- before it have ani, src_user, term_ip, term_user, sip_code and cause
-- empty (0): those are in cdrs_raw.raw.
--
-- One ALTER with every column: ClickHouse 18.16 has no ADD COLUMN IF NOT
-- EXISTS, and a multi-column ALTER is applied whole or not at all, so the
-- migration runner can tell "already applied" from a duplicate column.
ALTER TABLE xdrs
    ADD COLUMN orig_currency String DEFAULT currency,
    ADD COLUMN term_currency String,
    ADD COLUMN ani String,
    ADD COLUMN src_user String,
    ADD COLUMN term_ip String,
    ADD COLUMN term_user String,
    ADD COLUMN sip_code Int64,
    ADD COLUMN cause Int64;
