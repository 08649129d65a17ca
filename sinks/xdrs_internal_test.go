package sinks

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/schemas"
)

// TestInsertOrderIsTheTablesOrder: the writer hands ClickHouse rows in
// the tables' ORDER BY, so a server that checks for sorted blocks skips its
// sort. Every migration that creates xdrs or cdrs_raw (or one of their
// cluster tables) must still order by the key the writer sorts on.
func TestInsertOrderIsTheTablesOrder(t *testing.T) {
	create := regexp.MustCompile(`(?is)CREATE TABLE IF NOT EXISTS (\w+).*?ORDER BY \(([^)]*)\)`)
	seen := map[string]bool{}
	for _, m := range schemas.ClickHouse() {
		for _, g := range create.FindAllStringSubmatch(m.SQL, -1) {
			table := strings.TrimSuffix(g[1], "_local")
			if table != "xdrs" && table != "cdrs_raw" {
				continue
			}
			seen[table] = true
			if key := strings.Join(strings.Fields(g[2]), " "); key != "setup_time, switch, cdr_id" {
				t.Errorf("%s orders %s by (%s); the writer's rowOrder sorts by (setup_time, switch, cdr_id)", m.Name, g[1], key)
			}
		}
	}
	if !seen["xdrs"] || !seen["cdrs_raw"] {
		t.Fatalf("found the DDL of %v, want xdrs and cdrs_raw", seen)
	}
}

// TestRowOrder: live xDRs of several writes come out by setup second,
// switch and id (bytes, as ClickHouse compares strings); sub-second setup
// times count as their second, as a DateTime holds them; duplicates are
// left out; copies of one CDR keep the order of the writes.
func TestRowOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 30, 23, 59, 58, 0, time.UTC)
	var parts []writePart
	want := 0
	for p := range 3 {
		xs := make([]rater.XDR, 400)
		for i := range xs {
			x := &xs[i]
			x.CDR.SetupTime = base.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			x.CDR.Switch = []string{"sw-b", "sw-a", "sw", "sw-a\u00e9"}[rng.IntN(4)]
			x.ID = fmt.Sprintf("c%d", rng.IntN(50))
			x.Version = uint64(p)
			if i%10 == 0 {
				x.MarkDuplicate()
			} else {
				want++
			}
		}
		parts = append(parts, writePart{xs: xs, raw: p != 1})
	}
	var o rowOrder
	rows, nRaw := o.sort(parts)
	if len(rows) != want || nRaw != want*2/3 {
		t.Fatalf("%d rows, %d with raw; want %d and %d", len(rows), nRaw, want, want*2/3)
	}
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1].x, rows[i].x
		ka := fmt.Sprintf("%d\x00%s\x00%s", a.CDR.SetupTime.Unix(), a.CDR.Switch, a.ID)
		kb := fmt.Sprintf("%d\x00%s\x00%s", b.CDR.SetupTime.Unix(), b.CDR.Switch, b.ID)
		if ka > kb || (ka == kb && a.Version > b.Version) {
			t.Fatalf("row %d (%q, version %d) after row %d (%q, version %d)", i, kb, b.Version, i-1, ka, a.Version)
		}
		if b.Duplicate() {
			t.Fatalf("row %d is a duplicate", i)
		}
	}
	o.reset()
	if rows, _ := o.sort(nil); len(rows) != 0 {
		t.Fatalf("after reset: %d rows", len(rows))
	}
}

// BenchmarkRowOrder: one insert of four partitions' batches of 25,000
// CDRs each, every batch in setup order as live traffic nearly is.
func BenchmarkRowOrder(b *testing.B) {
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var parts []writePart
	for p := range 4 {
		xs := make([]rater.XDR, 25000)
		for i := range xs {
			xs[i].CDR.SetupTime = base.Add(time.Duration(i*4+p) * 300 * time.Millisecond)
			xs[i].CDR.Switch = "sw1"
			xs[i].ID = fmt.Sprintf("call-%d-%d", p, i)
		}
		parts = append(parts, writePart{xs: xs, raw: true})
	}
	var o rowOrder
	b.ReportAllocs()
	for b.Loop() {
		o.sort(parts)
		o.reset()
	}
}

// TestNextMonth: the month boundaries the writer splits inserts at are
// those of the server's timezone, December running into January.
func TestNextMonth(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	for _, c := range []struct {
		at   time.Time
		loc  *time.Location
		want time.Time
	}{
		{time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.UTC, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.UTC, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		// 15:00 UTC on 30 November is already December in Tokyo.
		{time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC), tokyo, time.Date(2027, 1, 1, 0, 0, 0, 0, tokyo)},
		{time.Date(2026, 11, 30, 14, 59, 59, 0, time.UTC), tokyo, time.Date(2026, 12, 1, 0, 0, 0, 0, tokyo)},
		{time.Unix(0, 0), time.UTC, time.Date(1970, 2, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if got := nextMonth(c.at.Unix(), c.loc); got != c.want.Unix() {
			t.Errorf("nextMonth(%s in %s) = %s, want %s", c.at, c.loc, time.Unix(got, 0).In(c.loc), c.want)
		}
	}
}
