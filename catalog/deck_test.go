package catalog

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/codedeck"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestCheckRateRow: the bounds of docs/DESIGN.md "Rate deck CSV" — a rate
// within ±999,999,999 with at most 9 decimals, negative included; a setup
// fee 0 … 999,999,999; code names PostgreSQL can store.
func TestCheckRateRow(t *testing.T) {
	f := func(rate, setup, name, want string) {
		t.Helper()
		r := &codedeck.Row{Rate: decimal.RequireFromString(rate), SetupFee: decimal.RequireFromString(setup), CodeName: name, Profile: codedeck.AllProfile}
		if got := CheckRateRow(r); got != want {
			t.Errorf("rate %s setup %s name %q: %q, want %q", rate, setup, name, got, want)
		}
	}
	f("0.1", "0", "UK", "")
	f("-0.05", "0", "Inbound revenue share", "")
	f("-999999999", "999999999", "", "")
	f("-999999999.000000001", "0", "", "rate: must be between -999999999 and 999999999, got -999999999.000000001")
	f("1000000000", "0", "", "rate: must be between -999999999 and 999999999, got 1000000000")
	f("0.0123456789", "0", "", "rate: at most 9 decimal places, got 0.0123456789")
	f("0.1", "-0.01", "", "setup_fee: may not be negative, got -0.01")
	f("0.1", "0.0000000001", "", "setup_fee: at most 9 decimal places, got 0.0000000001")
	f("0.1", "0", "Fran\xe7e", "code_name: must be valid UTF-8 text without NUL bytes")
	f("0.1", "0", "a\x00b", "code_name: must be valid UTF-8 text without NUL bytes")
}

// TestNegativeRatesAreStored: the rates table takes a negative rate (the
// check constraint of migration 0006) and refuses one beyond the bounds.
func TestNegativeRatesAreStored(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, db.PG, func(tx pgx.Tx) error {
		w := NewWriter(tx, Operator("test"))
		out, err := w.Create(ctx, RateTables, Input{"name": "inbound", "currency": "USD"})
		if err != nil {
			return err
		}
		rows := []codedeck.Row{
			{Line: 2, Code: "800", Rate: decimal.RequireFromString("-0.0125"), Profile: codedeck.AllProfile, MinVolume: 1, Interval: 1},
			{Line: 3, Code: "801", Rate: decimal.RequireFromString("-999999999"), Profile: codedeck.AllProfile, MinVolume: 1, Interval: 1},
		}
		res, err := w.ImportRates(ctx, idValue(DecodeRow(out)["id"]), rows, nil, Merge, false)
		if err != nil {
			return err
		}
		if res.AddedN != 2 || res.RejectedN != 0 {
			t.Errorf("import: %+v", res)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum string
	if err := db.PG.QueryRow(ctx, "SELECT sum(rate)::text FROM rates").Scan(&sum); err != nil || sum != "-999999999.012500000" {
		t.Errorf("stored rates sum to %s (%v)", sum, err)
	}
	if _, err := db.PG.Exec(ctx, "UPDATE rates SET rate = -1000000000 WHERE code = '800'"); err == nil {
		t.Error("a rate below -999,999,999 was stored")
	}
}
