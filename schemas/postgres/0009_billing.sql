-- Bill runs and invoices (DOMAIN.md "Bill run", DESIGN.md "Invoices and
-- bill runs"): payment terms as the contract has them, tax profiles, the
-- invoices with their frozen lines, the mail queue, and a fixed balance
-- that moves with approved invoices.

-- Payment terms: monthly on day D (1-28), weekly on a weekday, or every N
-- days from an anchor date; due_days after the period's end give the due
-- date. The terms of migration 0001 (daily, weekly, semimonthly, monthly)
-- map onto these: daily is every 1 day, weekly starts on Mondays,
-- monthly on day 1; semimonthly has no equivalent and becomes monthly on
-- day 1 (nothing could create payment terms before this migration).
ALTER TABLE payment_terms DROP CONSTRAINT payment_terms_period_check;
ALTER TABLE payment_terms
    ADD COLUMN day        integer CHECK (day BETWEEN 1 AND 28),
    ADD COLUMN weekday    text CHECK (weekday IN ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')),
    ADD COLUMN every      integer CHECK (every BETWEEN 1 AND 3660),
    ADD COLUMN anchor     date,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE payment_terms SET period = 'days', every = 1, anchor = DATE '2000-01-01' WHERE period = 'daily';
UPDATE payment_terms SET weekday = 'mon' WHERE period = 'weekly';
UPDATE payment_terms SET period = 'monthly', day = 1 WHERE period IN ('monthly', 'semimonthly');
ALTER TABLE payment_terms ADD CONSTRAINT payment_terms_period_check CHECK (
       (period = 'monthly' AND day IS NOT NULL AND weekday IS NULL AND every IS NULL AND anchor IS NULL)
    OR (period = 'weekly' AND weekday IS NOT NULL AND day IS NULL AND every IS NULL AND anchor IS NULL)
    OR (period = 'days' AND every IS NOT NULL AND anchor IS NOT NULL AND day IS NULL AND weekday IS NULL));
ALTER TABLE payment_terms ADD CONSTRAINT payment_terms_due_days_check2 CHECK (due_days <= 3660);

-- Tax profiles: percent_of_total taxes the rounded net, sum_of_items the
-- unrounded lines; taxes is a list of {"name", "percent"} (validated by
-- package billing, the one writer).
CREATE TABLE tax_profiles (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    mode        text NOT NULL CHECK (mode IN ('percent_of_total', 'sum_of_items')),
    taxes       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(taxes) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A client's invoicing settings besides payment_terms_id: its tax profile,
-- the rounding of its invoices and their precision (NULL: the currency's,
-- 2 for most).
ALTER TABLE clients
    ADD COLUMN tax_profile_id    bigint REFERENCES tax_profiles (id),
    ADD COLUMN invoice_rounding  text NOT NULL DEFAULT 'round_then_sum'
        CHECK (invoice_rounding IN ('round_then_sum', 'sum_then_round')),
    ADD COLUMN invoice_precision integer CHECK (invoice_precision BETWEEN 0 AND 6);

-- Invoices. period_from and period_to (exclusive) are dates of the client's
-- timezone at creation (timezone); number and issued_at are set when the
-- invoice is approved (it leaves to_verify), from the client's reseller's
-- numbering. The settings that made the figures (rounding, precision, tax
-- profile) are copied in, so an invoice reads the same after they change.
CREATE TABLE invoices (
    id            bigserial PRIMARY KEY,
    number        text,
    number_seq    bigint,
    reseller_id   bigint NOT NULL REFERENCES resellers (id),
    client_id     bigint NOT NULL REFERENCES clients (id),
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    period_from   date NOT NULL,
    period_to     date NOT NULL,
    timezone      text NOT NULL,
    state         text NOT NULL DEFAULT 'to_verify' CHECK (state IN ('to_verify', 'to_send', 'sent', 'paid', 'void')),
    source        text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'billrun')),
    rounding      text NOT NULL CHECK (rounding IN ('round_then_sum', 'sum_then_round')),
    precision     integer NOT NULL CHECK (precision BETWEEN 0 AND 6),
    tax_profile   text NOT NULL DEFAULT '',
    tax_mode      text NOT NULL DEFAULT '',
    net           numeric NOT NULL DEFAULT 0,
    taxes         jsonb NOT NULL DEFAULT '[]',
    total         numeric NOT NULL DEFAULT 0,
    due_at        date NOT NULL,
    generated_at  timestamptz NOT NULL DEFAULT now(),
    issued_at     timestamptz,
    sent_at       timestamptz,
    paid_at       timestamptz,
    voided_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (period_to > period_from),
    CHECK ((number IS NULL) = (number_seq IS NULL) AND (number IS NULL) = (issued_at IS NULL)),
    CHECK (state IN ('to_verify', 'void') OR number IS NOT NULL),
    CHECK (state <> 'to_verify' OR number IS NULL),
    CHECK ((state = 'void') = (voided_at IS NOT NULL))
);
-- One invoice per client and period (a voided one may be issued again).
-- Overlapping periods are refused by package billing under the client's
-- row lock; this index is the last line.
CREATE UNIQUE INDEX invoices_client_period_idx ON invoices (client_id, period_from, period_to) WHERE state <> 'void';
CREATE INDEX invoices_client_idx ON invoices (client_id, period_from);
-- Numbers are never reused, whatever a template or "Last No" does.
CREATE UNIQUE INDEX invoices_number_idx ON invoices (reseller_id, number) WHERE number IS NOT NULL;
CREATE UNIQUE INDEX invoices_number_seq_idx ON invoices (reseller_id, number_seq) WHERE number_seq IS NOT NULL;

-- The lines of an invoice: traffic per code name (from the report
-- package: xdrs FINAL of the client and period), charge transactions, and
-- corrections (what xdrs FINAL says now of an earlier approved invoice's
-- period, per code name, minus what was billed for it: the invoice itself
-- and earlier corrections).
CREATE TABLE invoice_lines (
    invoice_id          bigint NOT NULL REFERENCES invoices (id),
    position            integer NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('traffic', 'charge', 'correction')),
    code_name           text NOT NULL DEFAULT '',
    calls               bigint NOT NULL DEFAULT 0,
    billed_seconds      bigint NOT NULL DEFAULT 0,
    amount              numeric NOT NULL,
    transaction_id      bigint REFERENCES transactions (id),
    ref                 text,
    at                  timestamptz,
    corrects_invoice_id bigint REFERENCES invoices (id),
    PRIMARY KEY (invoice_id, position),
    CHECK ((kind = 'charge') = (transaction_id IS NOT NULL)),
    CHECK ((kind = 'correction') = (corrects_invoice_id IS NOT NULL))
);
CREATE INDEX invoice_lines_transaction_idx ON invoice_lines (transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX invoice_lines_corrects_idx ON invoice_lines (corrects_invoice_id) WHERE corrects_invoice_id IS NOT NULL;

-- What an approved invoice billed is frozen: its lines and figures change
-- only while it is a draft (to_verify).
CREATE FUNCTION freeze_invoice_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    inv bigint := CASE TG_OP WHEN 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
BEGIN
    IF EXISTS (SELECT 1 FROM invoices WHERE id = inv AND state <> 'to_verify') THEN
        RAISE EXCEPTION 'invoice % is approved: its lines are frozen', inv USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER invoice_lines_frozen AFTER INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION freeze_invoice_lines();

CREATE FUNCTION freeze_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state <> 'to_verify' AND (NEW.net, NEW.taxes, NEW.total, NEW.period_from, NEW.period_to, NEW.client_id,
            NEW.currency, NEW.number, NEW.due_at) IS DISTINCT FROM (OLD.net, OLD.taxes, OLD.total, OLD.period_from,
            OLD.period_to, OLD.client_id, OLD.currency, OLD.number, OLD.due_at) THEN
        RAISE EXCEPTION 'invoice % is approved: its figures are frozen', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.state = 'void' AND NEW.state <> 'void' THEN
        RAISE EXCEPTION 'invoice % is void', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION freeze_invoice();
-- Invoices are never deleted: a draft that should not be is voided, and
-- keeps its row (and an approved one its number).
CREATE FUNCTION forbid_invoice_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'invoice % cannot be deleted: void it', OLD.id USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices FOR EACH ROW EXECUTE FUNCTION forbid_invoice_delete();

-- "Last No" may be raised (numbering continues from an earlier system) but
-- never lowered below a number already issued: numbers are never reused.
CREATE FUNCTION guard_invoice_last_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    issued bigint;
BEGIN
    IF NEW.invoice_last_number < OLD.invoice_last_number THEN
        SELECT max(number_seq) INTO issued FROM invoices WHERE reseller_id = NEW.id;
        IF issued IS NOT NULL AND NEW.invoice_last_number < issued THEN
            RAISE EXCEPTION 'invoice_last_number % is below %, a number already issued: invoice numbers are never reused',
                NEW.invoice_last_number, issued USING ERRCODE = 'check_violation', CONSTRAINT = 'resellers_invoice_last_number_check';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER resellers_invoice_last_number BEFORE UPDATE OF invoice_last_number ON resellers
    FOR EACH ROW EXECUTE FUNCTION guard_invoice_last_number();

-- The mail queue (JeraSoft's Mail Queue): every e-mail Tarifa sends, its
-- state, attempts and the last error, for operators to list and retry.
-- queued: waiting or to be retried; sent: the SMTP server accepted it;
-- failed: given up after the last attempt.
CREATE TABLE mail_queue (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('invoice', 'statement', 'low_balance')),
    invoice_id  bigint REFERENCES invoices (id),
    client_id   bigint REFERENCES clients (id),
    reseller_id bigint REFERENCES resellers (id),
    recipients  text[] NOT NULL,
    subject     text NOT NULL,
    state       text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX mail_queue_pending_idx ON mail_queue (id) WHERE state = 'queued';
CREATE INDEX mail_queue_invoice_idx ON mail_queue (invoice_id) WHERE invoice_id IS NOT NULL;

-- The fixed balance (DOMAIN.md "Balances") is payments + adjustments −
-- totals of approved invoices not void. A charge transaction moves the live
-- balance at once and the fixed one through the invoice that bills it (it
-- is a line of the next invoice); until now charges moved both, which an
-- approved invoice would have counted twice. Past charges are given back
-- to the fixed balance here: they reach it with the invoices that bill them.
CREATE OR REPLACE FUNCTION apply_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    live_delta  numeric := CASE NEW.kind WHEN 'charge' THEN -NEW.amount ELSE NEW.amount END;
    fixed_delta numeric := CASE NEW.kind WHEN 'charge' THEN 0 ELSE NEW.amount END;
BEGIN
    INSERT INTO balances AS b (client_id, live, fixed) VALUES (NEW.client_id, live_delta, fixed_delta)
    ON CONFLICT (client_id) DO UPDATE
        SET live = b.live + live_delta, fixed = b.fixed + fixed_delta, updated_at = now();
    -- A refill above the low-balance threshold re-arms the notification.
    UPDATE balances b SET low_balance_notified = false
    FROM clients c
    WHERE b.client_id = NEW.client_id AND c.id = b.client_id AND b.low_balance_notified
      AND c.low_balance_threshold IS NOT NULL AND b.live + c.credit_limit >= c.low_balance_threshold;
    RETURN NULL;
END $$;
UPDATE balances b SET fixed = b.fixed + c.charges, updated_at = now()
FROM (SELECT client_id, sum(amount) AS charges FROM transactions WHERE kind = 'charge' GROUP BY client_id) c
WHERE b.client_id = c.client_id;
