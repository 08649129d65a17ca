package sinks_test

import (
	"context"
	"testing"
	"time"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// TestCatalogParentRateTables: a rate table with a parent rates over the
// union of both (DOMAIN.md "Rate table"): the same code in the child wins,
// a longer code of the parent overrides the child's shorter one, codes only
// the parent has are priced from it; grandparents too. A change to a
// parent's rates reaches its children on the next load, and a cycle made
// behind the API's back does not stop loading.
func TestCatalogParentRateTables(t *testing.T) {
	db := sinktest.New(t)
	ctx := context.Background()
	exec := func(sql string) {
		t.Helper()
		if _, err := db.PG.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`
		INSERT INTO rate_tables (id, name, currency) VALUES (1, 'parent', 'USD');
		INSERT INTO rate_tables (id, name, currency, parent_id) VALUES (2, 'child', 'USD', 1), (3, 'grandchild', 'USD', 2);
		INSERT INTO rates (rate_table_id, code, code_name, rate) VALUES
		  (1, '44', 'UK', 0.020), (1, '447', 'UK Mobile', 0.100), (1, '1', 'USA', 0.010),
		  (2, '44', 'UK (child)', 0.015), (2, '4420', 'London', 0.012),
		  (3, '447', 'UK Mobile (grandchild)', 0.090)`)

	loader := sinks.NewCatalogLoader(db.PG)
	price := func(table int64, number string) string {
		t.Helper()
		cat, err := loader.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
		cdr := &ingest.CDR{SetupTime: at, ConnectTime: at, DisconnectTime: at.Add(time.Minute), Duration: time.Minute}
		p := rater.PriceCall(cat.Tables[table].Deck, number, cdr, rater.BillByDisconnect, nil)
		if p.Rate == nil {
			return string(p.Reason)
		}
		return p.Rate.Code + " " + p.Rate.RateString()
	}
	for _, c := range []struct {
		table  int64
		number string
		want   string
	}{
		{1, "442071234567", "44 0.02"},
		{2, "442071234567", "4420 0.012"}, // the child's longer code
		{2, "441234567890", "44 0.015"},   // the same code: the child's
		{2, "447700900123", "447 0.1"},    // the parent's longer code overrides
		{2, "12125550123", "1 0.01"},      // only the parent has it
		{3, "447700900123", "447 0.09"},
		{3, "442071234567", "4420 0.012"},
		{3, "12125550123", "1 0.01"},
		{2, "3312345678", "unknown_destination"},
	} {
		if got := price(c.table, c.number); got != c.want {
			t.Errorf("table %d, %s: %s, want %s", c.table, c.number, got, c.want)
		}
	}

	exec(`UPDATE rates SET rate = 0.011 WHERE rate_table_id = 1 AND code = '1'`)
	if got := price(3, "12125550123"); got != "1 0.011" {
		t.Errorf("after the parent's USA rate changed, the grandchild prices %s, want 1 0.011", got)
	}

	exec(`UPDATE rate_tables SET parent_id = 3 WHERE id = 1`) // 1 → 3 → 2 → 1
	if got := price(1, "447700900123"); got != "447 0.1" {
		t.Errorf("with a cycle, the parent's own code prices %s, want 447 0.1", got)
	}
}
