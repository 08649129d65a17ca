package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tarifa/tarifa/report"
)

// Config holds the billing settings.
type Config struct {
	// SMTP is where invoices are e-mailed; without an Addr, Send queues
	// the mail and reports that nothing can deliver it.
	SMTP SMTPConfig
	// MaxPeriods bounds how many periods of one client a bill run invoices
	// (a client whose last invoiced date lies years back). Default 120;
	// the next run goes on from where this one stopped.
	MaxPeriods int
	// MailAttempts is how many times a mail is tried before it is failed
	// for good (an operator may retry it). Default 5.
	MailAttempts int
}

// Validate fills defaults and checks the settings.
func (c *Config) Validate() error {
	if c.MaxPeriods == 0 {
		c.MaxPeriods = 120
	}
	if c.MaxPeriods < 1 {
		return fmt.Errorf("max periods %d: want at least 1", c.MaxPeriods)
	}
	if c.MailAttempts == 0 {
		c.MailAttempts = 5
	}
	if c.MailAttempts < 1 {
		return fmt.Errorf("mail attempts %d: want at least 1", c.MailAttempts)
	}
	return c.SMTP.Validate()
}

// Service runs bill runs and keeps invoices: creation (and regeneration of
// drafts), the state transitions and their effect on the fixed balance,
// documents and e-mail. It is safe for concurrent use, across processes
// too: every change to a client's invoices holds that client's row lock
// (FOR NO KEY UPDATE, which rating and foreign keys never wait on), so
// concurrent bill runs, creates and approvals of one client run one after
// the other, and numbering holds the reseller's row lock. Calls block on
// PostgreSQL and, for lines, on ClickHouse through the report package.
//
// Generating an invoice holds a transaction (the client's lock) while the
// report package reads the rollup state on a connection of its own, so at
// most half the pool's connections generate at once: concurrent bill runs
// and creates never take every connection and wait for one another.
type Service struct {
	cfg     Config
	pg      *pgxpool.Pool
	reports *report.Reports
	log     *slog.Logger
	slots   chan struct{} // generations in flight
}

// New returns a service over pg (catalog, invoices, balances, mail queue)
// whose invoice lines come from reports.
func New(cfg Config, pg *pgxpool.Pool, reports *report.Reports, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("billing config: %w", err)
	}
	n := int(pg.Config().MaxConns) / 2
	return &Service{cfg: cfg, pg: pg, reports: reports, log: log, slots: make(chan struct{}, max(n, 1))}, nil
}

// slot waits for a generation slot; release it with the returned func.
func (s *Service) slot(ctx context.Context) (func(), error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Caller is who asks: the scope of what it may see and change, and its
// name in the audit log. The zero Caller is an operator at the CLI, who
// sees everything.
type Caller struct {
	// Scope limits invoices to those of the clients of Scope.Resellers (a
	// reseller token) or of Scope.Client (a client token: read only, which
	// the API enforces).
	Scope   report.Scope
	Actor   string // "cli" when empty
	TokenID int64
}

func (c Caller) actor() string {
	if c.Actor == "" {
		return "cli"
	}
	return c.Actor
}

// scopeCond is the SQL condition on a client id expression that keeps
// what c may see, with its arguments numbered from next.
func (c Caller) scopeCond(col string, args *[]any) string {
	switch {
	case c.Scope.Client != 0:
		*args = append(*args, c.Scope.Client)
		return col + " = $" + strconv.Itoa(len(*args))
	case c.Scope.Resellers != nil:
		*args = append(*args, c.Scope.Resellers)
		return col + " IN (SELECT id FROM clients WHERE reseller_id = ANY($" + strconv.Itoa(len(*args)) + "))"
	}
	return "true"
}

// audit records a change in the audit log, in the transaction of the
// change, as the API records its own: entity "invoice" (or the one named),
// the reseller that owns the client, the object before and after.
func (s *Service) audit(ctx context.Context, tx pgx.Tx, c Caller, action, entity string, id int64, reseller *int64, before, after any) error {
	enc := func(v any) (any, error) {
		if v == nil {
			return nil, nil
		}
		switch x := v.(type) {
		case *Invoice:
			if x == nil {
				return nil, nil
			}
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	b, err := enc(before)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a, err := enc(after)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	var token any
	if c.TokenID != 0 {
		token = c.TokenID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, action, entity, entity_id, before, after, token_id, reseller_id)
		VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)`, c.actor(), action, entity, id, b, a, token, reseller); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// uniqueViolation reports whether err is PostgreSQL's unique_violation.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
