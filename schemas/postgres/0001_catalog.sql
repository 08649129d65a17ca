-- Tarifa catalog, money and pipeline state.
-- Money is numeric everywhere: balances and transactions at 6 decimals (the
-- per-call rounding of DOMAIN.md), rates at 9.

CREATE TABLE time_profiles (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]+$' AND name <> 'all'),
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rate_tables (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    parent_id   bigint REFERENCES rate_tables (id),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    notes       text NOT NULL DEFAULT '',
    -- rates_rev moves with every committed change to the table's rates (a
    -- row lock orders the bumps by commit), so a loader can tell exactly
    -- which decks to rebuild.
    rates_rev   bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);

CREATE TABLE rates (
    id              bigserial PRIMARY KEY,
    rate_table_id   bigint NOT NULL REFERENCES rate_tables (id) ON DELETE CASCADE,
    code            text NOT NULL CHECK (code ~ '^[0-9]{1,32}$'),
    code_name       text NOT NULL DEFAULT '',
    rate            numeric(24, 9) NOT NULL CHECK (rate >= 0),
    effective_from  timestamptz NOT NULL DEFAULT 'epoch',
    end_date        timestamptz CHECK (end_date IS NULL OR end_date > effective_from),
    min_volume      integer NOT NULL DEFAULT 1 CHECK (min_volume >= 1),
    "interval"      integer NOT NULL DEFAULT 1 CHECK ("interval" >= 1),
    grace_volume    integer NOT NULL DEFAULT 0 CHECK (grace_volume >= 0),
    setup_fee       numeric(24, 9) NOT NULL DEFAULT 0 CHECK (setup_fee >= 0),
    time_profile    text NOT NULL DEFAULT 'all',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stashed')),
    notes           text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rate_table_id, code, effective_from, time_profile)
);

CREATE TABLE payment_terms (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    period      text NOT NULL CHECK (period IN ('daily', 'weekly', 'semimonthly', 'monthly')),
    due_days    integer NOT NULL DEFAULT 0 CHECK (due_days >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE resellers (
    id                      bigserial PRIMARY KEY,
    name                    text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    parent_id               bigint REFERENCES resellers (id),
    currency                char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    orig_rate_table_id      bigint REFERENCES rate_tables (id),
    term_rate_table_id      bigint REFERENCES rate_tables (id),
    orig_capacity           integer CHECK (orig_capacity >= 0),
    term_capacity           integer CHECK (term_capacity >= 0),
    credit_limit            numeric(20, 6) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    unlimited               boolean NOT NULL DEFAULT false,
    invoice_template        text NOT NULL DEFAULT '',
    invoice_number_template text NOT NULL DEFAULT '{n}',
    invoice_last_number     bigint NOT NULL DEFAULT 0 CHECK (invoice_last_number >= 0),
    company_name            text NOT NULL DEFAULT '',
    email                   text NOT NULL DEFAULT '',
    address                 text NOT NULL DEFAULT '',
    tax_id                  text NOT NULL DEFAULT '',
    reg_id                  text NOT NULL DEFAULT '',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);

CREATE TABLE managers (
    id          bigserial PRIMARY KEY,
    reseller_id bigint NOT NULL REFERENCES resellers (id),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    email       text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reseller_id, name)
);

CREATE TABLE clients (
    id                        bigserial PRIMARY KEY,
    reseller_id               bigint NOT NULL REFERENCES resellers (id),
    manager_id                bigint REFERENCES managers (id),
    name                      text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    currency                  char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    timezone                  text NOT NULL DEFAULT 'UTC',
    status                    text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stop', 'deleted')),
    tags                      text[] NOT NULL DEFAULT '{}',
    bill_by                   text NOT NULL DEFAULT 'disconnect' CHECK (bill_by IN ('setup', 'connect', 'disconnect')),
    hidden_digits             integer NOT NULL DEFAULT 0 CHECK (hidden_digits BETWEEN 0 AND 20),
    credit_limit              numeric(20, 6) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    unlimited                 boolean NOT NULL DEFAULT false,
    payment_terms_id          bigint REFERENCES payment_terms (id),
    orig_rate_table_id        bigint REFERENCES rate_tables (id),
    routing_plan              text NOT NULL DEFAULT '',
    orig_capacity             integer CHECK (orig_capacity >= 0),
    term_rate_table_id        bigint REFERENCES rate_tables (id),
    vendor_credit_limit       numeric(20, 6) NOT NULL DEFAULT 0 CHECK (vendor_credit_limit >= 0),
    term_capacity             integer CHECK (term_capacity >= 0),
    notify_client             boolean NOT NULL DEFAULT false,
    notify_admin              boolean NOT NULL DEFAULT false,
    low_balance_threshold     numeric(20, 6),
    capacity_under_threshold  integer CHECK (capacity_under_threshold >= 0),
    invoice_template          text NOT NULL DEFAULT '',
    autoinvoice               boolean NOT NULL DEFAULT false,
    last_invoiced_at          date,
    company_name              text NOT NULL DEFAULT '',
    email_main                text NOT NULL DEFAULT '',
    email_noc                 text NOT NULL DEFAULT '',
    email_billing             text NOT NULL DEFAULT '',
    email_rates               text NOT NULL DEFAULT '',
    address                   text NOT NULL DEFAULT '',
    zip                       text NOT NULL DEFAULT '',
    tax_id                    text NOT NULL DEFAULT '',
    reg_id                    text NOT NULL DEFAULT '',
    account_details           text NOT NULL DEFAULT '',
    locale                    text NOT NULL DEFAULT 'en',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_reseller_idx ON clients (reseller_id);
CREATE INDEX clients_tags_idx ON clients USING gin (tags);

CREATE TABLE accounts (
    id                  bigserial PRIMARY KEY,
    client_id           bigint NOT NULL REFERENCES clients (id),
    kind                text NOT NULL CHECK (kind IN ('ip', 'username', 'ani')),
    ident               text NOT NULL CHECK (btrim(ident) <> ''),
    tech_prefix         text NOT NULL DEFAULT '' CHECK (tech_prefix ~ '^[0-9]*#?$'),
    orig                boolean NOT NULL DEFAULT true,
    term                boolean NOT NULL DEFAULT false,
    orig_rate_table_id  bigint REFERENCES rate_tables (id),
    term_rate_table_id  bigint REFERENCES rate_tables (id),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'ip' OR tech_prefix = ''),
    UNIQUE (kind, ident, tech_prefix)
);
CREATE INDEX accounts_client_idx ON accounts (client_id);

-- Transactions move both balances: payment +, charge −, adjustment ±.
CREATE TABLE transactions (
    id          bigserial PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id),
    kind        text NOT NULL CHECK (kind IN ('payment', 'adjustment', 'charge')),
    amount      numeric(20, 6) NOT NULL,
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    at          timestamptz NOT NULL DEFAULT now(),
    ref         text,
    notes       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'adjustment' OR amount > 0),
    UNIQUE (client_id, ref)
);
CREATE INDEX transactions_client_at_idx ON transactions (client_id, at);

-- balances holds the moving sums: live (payments + adjustments − charges −
-- orig costs + term costs) and fixed (payments + adjustments − charges −
-- invoice totals). Workers add their per-batch deltas here.
CREATE TABLE balances (
    client_id           bigint PRIMARY KEY REFERENCES clients (id),
    live                numeric(20, 6) NOT NULL DEFAULT 0,
    fixed               numeric(20, 6) NOT NULL DEFAULT 0,
    low_balance_notified boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- consumed_offsets: the next Kafka offset to process per topic partition,
-- committed in the same transaction as the balance deltas it covers.
CREATE TABLE consumed_offsets (
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition")
);

-- cdr_keys: switch + id (as a 128-bit hash) of every CDR that moved a
-- balance in the last 48 hours, for dedupe across restarts and partition
-- rebalances, with the Kafka message that billed it: a replay of that same
-- message after a crash is recognised as the owner, not as a duplicate.
-- seen_at grows with insertion order, so a BRIN index serves the pruning of
-- expired keys at almost no cost per insert.
CREATE TABLE cdr_keys (
    key         uuid PRIMARY KEY,
    topic       text NOT NULL,
    "partition" integer NOT NULL,
    "offset"    bigint NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cdr_keys_seen_idx ON cdr_keys USING brin (seen_at);

-- Every transaction moves live and fixed at once, whoever inserts it.
CREATE FUNCTION apply_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta numeric(20, 6) := CASE NEW.kind WHEN 'charge' THEN -NEW.amount ELSE NEW.amount END;
BEGIN
    INSERT INTO balances AS b (client_id, live, fixed) VALUES (NEW.client_id, delta, delta)
    ON CONFLICT (client_id) DO UPDATE
        SET live = b.live + delta, fixed = b.fixed + delta, updated_at = now();
    -- A refill above the low-balance threshold re-arms the notification.
    UPDATE balances b SET low_balance_notified = false
    FROM clients c
    WHERE b.client_id = NEW.client_id AND c.id = b.client_id AND b.low_balance_notified
      AND c.low_balance_threshold IS NOT NULL AND b.live + c.credit_limit >= c.low_balance_threshold;
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_apply AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION apply_transaction();

CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id),
    kind        text NOT NULL,
    message     text NOT NULL,
    available   numeric(20, 6),
    threshold   numeric(20, 6),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    role        text NOT NULL CHECK (role IN ('admin', 'reseller', 'client')),
    reseller_id bigint REFERENCES resellers (id),
    client_id   bigint REFERENCES clients (id),
    hash        bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((role = 'admin' AND reseller_id IS NULL AND client_id IS NULL)
        OR (role = 'reseller' AND reseller_id IS NOT NULL AND client_id IS NULL)
        OR (role = 'client' AND client_id IS NOT NULL AND reseller_id IS NULL))
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    entity      text NOT NULL,
    entity_id   bigint,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);

-- catalog_version is bumped by every change to what rating reads, so running
-- workers notice a change with one cheap query and reload.
CREATE TABLE catalog_version (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint NOT NULL DEFAULT 0
);
INSERT INTO catalog_version DEFAULT VALUES;

CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER time_profiles_bump AFTER INSERT OR UPDATE OR DELETE ON time_profiles
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER rate_tables_bump AFTER INSERT OR UPDATE OR DELETE ON rate_tables
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER rates_bump AFTER INSERT OR UPDATE OR DELETE ON rates
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

CREATE FUNCTION bump_rates_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE rate_tables SET rates_rev = rates_rev + 1
        WHERE id IN (SELECT DISTINCT rate_table_id FROM old_rows);
    ELSE
        UPDATE rate_tables SET rates_rev = rates_rev + 1
        WHERE id IN (SELECT DISTINCT rate_table_id FROM new_rows);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        UPDATE rate_tables SET rates_rev = rates_rev + 1
        WHERE id IN (SELECT DISTINCT rate_table_id FROM old_rows EXCEPT SELECT DISTINCT rate_table_id FROM new_rows);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER rates_rev_insert AFTER INSERT ON rates REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rates_rev();
CREATE TRIGGER rates_rev_update AFTER UPDATE ON rates REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rates_rev();
CREATE TRIGGER rates_rev_delete AFTER DELETE ON rates REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rates_rev();
CREATE TRIGGER resellers_bump AFTER INSERT OR UPDATE OR DELETE ON resellers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER clients_bump AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER accounts_bump AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

-- client_balances is the contract view operators and scripts read.
-- available is NULL for unlimited (postpaid) clients: they have no limit.
CREATE VIEW client_balances AS
SELECT c.id AS client_id,
       c.name AS client_name,
       c.currency,
       COALESCE(b.live, 0)::numeric(20, 6) AS live,
       COALESCE(b.fixed, 0)::numeric(20, 6) AS fixed,
       c.credit_limit AS credit,
       c.unlimited,
       CASE WHEN c.unlimited THEN NULL
            ELSE (COALESCE(b.live, 0) + c.credit_limit)::numeric(20, 6) END AS available
FROM clients c
LEFT JOIN balances b ON b.client_id = c.id;
