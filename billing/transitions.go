package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// transition runs fn on invoice id of c's scope in one transaction, under
// the client's lock and the invoice's, and records the change in the audit
// log. fn changes the stored invoice; the invoice as it is afterwards is
// returned.
func (s *Service) transition(ctx context.Context, c Caller, id int64, action string,
	fn func(tx pgx.Tx, inv *Invoice, cl *client) error) (*Invoice, error) {
	var out *Invoice
	err := pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		// Find the client first: every change to a client's invoices takes
		// the client's lock before an invoice's.
		var clientID int64
		args := []any{id}
		err := tx.QueryRow(ctx, `SELECT client_id FROM invoices i WHERE id = $1 AND `+c.scopeCond("i.client_id", &args), args...).Scan(&clientID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("invoice %d", id)
		}
		if err != nil {
			return fmt.Errorf("read invoice %d: %w", id, err)
		}
		cl, err := lockClient(ctx, tx, clientID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM invoices WHERE id = $1 FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock invoice %d: %w", id, err)
		}
		before, err := s.get(ctx, tx, Caller{}, id)
		if err != nil {
			return err
		}
		if err := fn(tx, before, cl); err != nil {
			return err
		}
		if out, err = s.get(ctx, tx, Caller{}, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, c, action, "invoice", id, &cl.ResellerID, before, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// moveFixed adds delta to the client's fixed balance in tx.
func moveFixed(ctx context.Context, tx pgx.Tx, clientID int64, delta string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO balances AS b (client_id, fixed) VALUES ($1, $2::numeric)
		ON CONFLICT (client_id) DO UPDATE SET fixed = b.fixed + excluded.fixed, updated_at = now()`, clientID, delta); err != nil {
		return fmt.Errorf("move fixed balance of client %d: %w", clientID, err)
	}
	return nil
}

// Approve issues a draft (to_verify → to_send): it takes the next number of
// the client's reseller (gapless: the number and the approval commit
// together, and the reseller's row lock orders concurrent approvals),
// freezes the invoice and lowers the client's fixed balance by its total,
// once. Approving an invoice that is not a draft is a *ConflictError.
func (s *Service) Approve(ctx context.Context, c Caller, id int64) (*Invoice, error) {
	return s.transition(ctx, c, id, "approve", func(tx pgx.Tx, inv *Invoice, cl *client) error {
		if inv.State != StateToVerify {
			return conflictErr("invoice %d is %s, not to_verify: it was approved already", id, inv.State)
		}
		var n int64
		var tpl string
		var issued time.Time
		if err := tx.QueryRow(ctx, `UPDATE resellers SET invoice_last_number = invoice_last_number + 1 WHERE id = $1
			RETURNING invoice_last_number, invoice_number_template, clock_timestamp()`, inv.ResellerID).Scan(&n, &tpl, &issued); err != nil {
			return fmt.Errorf("take the next number of reseller %d: %w", inv.ResellerID, err)
		}
		if err := NumberTemplate(tpl).Validate(); err != nil {
			return conflictErr("reseller %d: its numbering cannot number invoices: %v", inv.ResellerID, err)
		}
		loc, err := time.LoadLocation(inv.Timezone)
		if err != nil {
			return fmt.Errorf("invoice %d timezone %q: %w", id, inv.Timezone, err)
		}
		number := NumberTemplate(tpl).Format(n, issued.In(loc))
		_, err = tx.Exec(ctx, `UPDATE invoices SET state = 'to_send', number = $2, number_seq = $3, issued_at = $4, updated_at = now()
			WHERE id = $1`, id, number, n, issued)
		if uniqueViolation(err) {
			return conflictErr("reseller %d has already issued number %q: change its numbering template", inv.ResellerID, number)
		}
		if err != nil {
			return fmt.Errorf("approve invoice %d: %w", id, err)
		}
		return moveFixed(ctx, tx, inv.ClientID, inv.Total.Neg().String())
	})
}

// Void voids an invoice: an approved one gives its total back to the fixed
// balance, once, and keeps its number; a draft is discarded. When it was
// the client's latest invoice, the last invoiced date goes back to the day
// before its period, so the next bill run invoices the period again. An invoice
// whose period another invoice (not void) corrects is voided after that
// one, so that no difference is billed twice. Voiding a void invoice is a
// *ConflictError.
func (s *Service) Void(ctx context.Context, c Caller, id int64) (*Invoice, error) {
	return s.transition(ctx, c, id, "void", func(tx pgx.Tx, inv *Invoice, cl *client) error {
		if inv.State == StateVoid {
			return conflictErr("invoice %d is void already", id)
		}
		var by int64
		err := tx.QueryRow(ctx, `SELECT h.id FROM invoice_lines l JOIN invoices h ON h.id = l.invoice_id
			WHERE l.corrects_invoice_id = $1 AND h.state <> 'void' ORDER BY h.id LIMIT 1`, id).Scan(&by)
		if err == nil {
			return conflictErr("invoice %d corrects the period of invoice %d: void invoice %d first", by, id, by)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("corrections of invoice %d: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET state = 'void', voided_at = clock_timestamp(), updated_at = now() WHERE id = $1`, id); err != nil {
			return fmt.Errorf("void invoice %d: %w", id, err)
		}
		// The client's latest invoice voided: its period is invoiced by the
		// next bill run again (a later invoice keeps the date where it is).
		if cl.LastInvoiced.Equal(inv.PeriodTo.AddDays(-1)) {
			if _, err := tx.Exec(ctx, `UPDATE clients SET last_invoiced_at = $2::date, updated_at = now() WHERE id = $1`,
				cl.ID, inv.PeriodFrom.AddDays(-1).String()); err != nil {
				return fmt.Errorf("client %d: last invoiced date: %w", cl.ID, err)
			}
		}
		if approved(inv.State) {
			return moveFixed(ctx, tx, inv.ClientID, inv.Total.String())
		}
		return nil
	})
}

// Pay marks an approved invoice paid (to_send or sent → paid). The payment
// itself is a transaction of its own (a wire rarely matches one invoice):
// Pay moves no balance.
func (s *Service) Pay(ctx context.Context, c Caller, id int64) (*Invoice, error) {
	return s.transition(ctx, c, id, "pay", func(tx pgx.Tx, inv *Invoice, cl *client) error {
		if inv.State != StateToSend && inv.State != StateSent {
			return conflictErr("invoice %d is %s: only an approved invoice (to_send or sent) can be paid", id, inv.State)
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET state = 'paid', paid_at = clock_timestamp(), updated_at = now() WHERE id = $1`, id); err != nil {
			return fmt.Errorf("pay invoice %d: %w", id, err)
		}
		return nil
	})
}

// MarkDownloaded records that an approved invoice's document was taken to
// be sent by hand: to_send becomes sent (DOMAIN.md: "emailed or
// downloaded"); any other state stays. It returns the invoice as it is.
func (s *Service) MarkDownloaded(ctx context.Context, c Caller, id int64) (*Invoice, error) {
	inv, err := s.Get(ctx, c, id)
	if err != nil || inv.State != StateToSend {
		return inv, err
	}
	return s.transition(ctx, c, id, "download", func(tx pgx.Tx, inv *Invoice, cl *client) error {
		return markSent(ctx, tx, id)
	})
}

// markSent moves an invoice from to_send to sent.
func markSent(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `UPDATE invoices SET state = 'sent', sent_at = clock_timestamp(), updated_at = now()
		WHERE id = $1 AND state = 'to_send'`, id); err != nil {
		return fmt.Errorf("mark invoice %d sent: %w", id, err)
	}
	return nil
}
