-- Management API (tarifa api): audit rows name the token that made the
-- change and the reseller that owns the changed object, so that a reseller
-- token reads the audit of its own subtree only.
ALTER TABLE audit_log
    ADD COLUMN token_id    bigint,
    ADD COLUMN reseller_id bigint;
CREATE INDEX audit_log_reseller_idx ON audit_log (reseller_id, id);

