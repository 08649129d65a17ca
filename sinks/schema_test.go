package sinks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestClickHouseXDRRoundTripAndFinal proves the pinned driver writes Decimal
// and DateTime columns to the local ClickHouse and that a second version of
// the same CDR replaces the first under FINAL.
func TestClickHouseXDRRoundTripAndFinal(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	ctx := context.Background()
	setup := time.Date(2024, 2, 15, 10, 0, 0, 0, time.UTC)
	insert := func(version uint64, cost string) {
		t.Helper()
		b, err := db.CH.PrepareBatch(ctx, "INSERT INTO xdrs (cdr_id, switch, event_time, setup_time, disconnect_time, duration_ms, dst, status, orig_client_id, orig_code, orig_code_name, orig_rate, orig_billed_seconds, orig_cost, currency, version)")
		if err != nil {
			t.Fatal(err)
		}
		err = b.Append("c1", "sw1", setup.Add(66*time.Second), setup, setup.Add(66*time.Second), uint64(65400), "447700900123", "rated",
			uint64(7), "447", "UK Mobile", decimal.RequireFromString("0.1"), uint32(66), decimal.RequireFromString(cost), "USD", version)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	insert(1, "0.110000")
	insert(2, "0.132000")

	var (
		n        uint64
		cost     decimal.Decimal
		rate     decimal.Decimal
		event    time.Time
		codeName string
	)
	if err := db.CH.QueryRow(ctx, "SELECT count(), any(orig_cost), any(orig_rate), any(event_time), any(orig_code_name) FROM xdrs FINAL WHERE cdr_id = 'c1'").Scan(&n, &cost, &rate, &event, &codeName); err != nil {
		t.Fatal(err)
	}
	if n != 1 || cost.String() != "0.132" || rate.String() != "0.1" || !event.Equal(setup.Add(66*time.Second)) || codeName != "UK Mobile" {
		t.Fatalf("xdrs FINAL: count %d cost %s rate %s event %v name %q; want 1 row, cost 0.132 (version 2), rate 0.1, event %v", n, cost, rate, event, codeName, setup.Add(66*time.Second))
	}
}

// TestPostgresMoneyConstraints checks that the catalog keeps money and
// references honest and that transactions move the contract view.
func TestPostgresMoneyConstraints(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	ctx := context.Background()
	mustExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.PG.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustFail := func(want, sql string, args ...any) {
		t.Helper()
		_, err := db.PG.Exec(ctx, sql, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v, want one mentioning %q", sql, err, want)
		}
	}
	mustExec("INSERT INTO resellers (id, name, currency) VALUES (1, 'Acme', 'USD')")
	mustExec("INSERT INTO clients (id, reseller_id, name, currency, credit_limit) VALUES (1, 1, 'Customer A', 'USD', 100)")
	mustFail("violates check constraint", "INSERT INTO clients (reseller_id, name, currency) VALUES (1, 'Bad', 'usd')")
	mustFail("violates foreign key", "INSERT INTO clients (reseller_id, name, currency) VALUES (99, 'Orphan', 'USD')")
	mustFail("violates check constraint", "INSERT INTO accounts (client_id, kind, ident, tech_prefix) VALUES (1, 'ip', '10.0.0.1', '77a')")
	mustFail("violates check constraint", "INSERT INTO transactions (client_id, kind, amount, currency) VALUES (1, 'payment', -5, 'USD')")

	mustExec("INSERT INTO transactions (client_id, kind, amount, currency, ref) VALUES (1, 'payment', 500.123456, 'USD', 'wire-1')")
	mustExec("INSERT INTO transactions (client_id, kind, amount, currency) VALUES (1, 'charge', 0.000001, 'USD')")
	mustFail("duplicate key", "INSERT INTO transactions (client_id, kind, amount, currency, ref) VALUES (1, 'payment', 500, 'USD', 'wire-1')")

	var live, fixed, credit, available decimal.Decimal
	if err := db.PG.QueryRow(ctx, "SELECT live, fixed, credit, available FROM client_balances WHERE client_id = 1").Scan(&live, &fixed, &credit, &available); err != nil {
		t.Fatal(err)
	}
	// The charge moves live now and fixed through the invoice that bills it.
	if live.String() != "500.123455" || fixed.String() != "500.123456" || available.String() != "600.123455" {
		t.Fatalf("client_balances: live %s fixed %s available %s; want 500.123455, 500.123456, 600.123455", live, fixed, available)
	}
}
