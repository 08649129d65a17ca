-- Management API and catalog hardening (issue 10).

-- Rates may be negative (DESIGN.md "Rate deck CSV": a table that pays the
-- client, as for inbound revenue share), within what carrier systems accept;
-- a setup fee stays non-negative and gets the same ceiling.
ALTER TABLE rates DROP CONSTRAINT rates_rate_check;
ALTER TABLE rates ADD CONSTRAINT rates_rate_check CHECK (rate BETWEEN -999999999 AND 999999999);
ALTER TABLE rates DROP CONSTRAINT rates_setup_fee_check;
ALTER TABLE rates ADD CONSTRAINT rates_setup_fee_check CHECK (setup_fee BETWEEN 0 AND 999999999);

-- Tokens may expire: an expired token answers 401 like a revoked one.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

-- A rate table may belong to a reseller: that reseller (and its parents)
-- see it before any of its clients uses it. NULL is the operator's own.
ALTER TABLE rate_tables ADD COLUMN reseller_id bigint REFERENCES resellers (id);
CREATE INDEX rate_tables_reseller_idx ON rate_tables (reseller_id) WHERE reseller_id IS NOT NULL;
-- The tables a reseller's clients and accounts use are found through these.
CREATE INDEX clients_orig_rate_table_idx ON clients (orig_rate_table_id) WHERE orig_rate_table_id IS NOT NULL;
CREATE INDEX clients_term_rate_table_idx ON clients (term_rate_table_id) WHERE term_rate_table_id IS NOT NULL;
