-- Balances that traffic can never overflow, and dedupe claims that know
-- what they billed.
--
-- A live balance is a sum of per-call costs (each within ±999,999,999,999.999999,
-- what xdrs' Decimal(18, 6) holds) and transactions (each within ±10^12):
-- no fixed precision bounds such a sum, and a balance update that failed on
-- numeric overflow would stall its partition for every client. numeric(1000, 6)
-- is PostgreSQL's widest numeric with a fixed scale: the 6 decimals of the
-- per-call rounding, and room no traffic reaches.
DROP VIEW client_balances;

ALTER TABLE balances
    ALTER COLUMN live TYPE numeric(1000, 6),
    ALTER COLUMN fixed TYPE numeric(1000, 6);
ALTER TABLE notifications
    ALTER COLUMN available TYPE numeric(1000, 6),
    ALTER COLUMN threshold TYPE numeric(1000, 6);

CREATE VIEW client_balances AS
SELECT c.id AS client_id,
       c.name AS client_name,
       c.currency,
       COALESCE(b.live, 0)::numeric(1000, 6) AS live,
       COALESCE(b.fixed, 0)::numeric(1000, 6) AS fixed,
       c.credit_limit AS credit,
       c.unlimited,
       CASE WHEN c.unlimited THEN NULL
            ELSE (COALESCE(b.live, 0) + c.credit_limit)::numeric(1000, 6) END AS available
FROM clients c
LEFT JOIN balances b ON b.client_id = c.id;

-- The content hash of the message that holds a claim: a re-send with the
-- same switch and id but other content is a conflict to keep and show
-- (mismatch duplicate_conflict), not a duplicate to drop. NULL for claims
-- recorded before this column: treated as the same content.
ALTER TABLE cdr_keys ADD COLUMN content bigint;
