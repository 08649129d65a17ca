package rater

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tarifa/tarifa/ingest"
)

// testCatalog: customers A (active), B (active), S (stopped), D (deleted,
// its account switched off as DOMAIN.md says); vendor V. IP 10.0.0.1 is
// shared: A plain, B behind tech prefix "77#", D behind "99" (orig off).
func testCatalog(t *testing.T) *Catalog {
	retail := &Table{ID: 1, Name: "retail", Currency: "USD", Deck: deck(t, "code,code_name,rate\n44,UK,0.012\n447,UK Mobile,0.05\n")}
	vendor := &Table{ID: 2, Name: "vendor", Currency: "USD", Deck: deck(t, "code,code_name,rate\n447,UK Mobile,0.03\n")}
	cl := func(id int64, status string, orig, term *Table) *Client {
		return &Client{ID: id, Name: fmt.Sprint(id), Currency: "USD", Status: status, Loc: time.UTC, OrigTable: orig, TermTable: term}
	}
	a, b, s, d, v := cl(1, "active", retail, nil), cl(2, "active", retail, nil), cl(3, "stop", retail, nil), cl(4, "deleted", retail, nil), cl(10, "active", nil, vendor)
	accounts := []*Account{
		{ID: 1, Client: a, Kind: "ip", Ident: "10.0.0.1", Orig: true},
		{ID: 2, Client: b, Kind: "ip", Ident: "10.0.0.1", TechPrefix: "77#", Orig: true},
		{ID: 3, Client: b, Kind: "username", Ident: "trunk-b", Orig: true},
		{ID: 4, Client: a, Kind: "ani", Ident: "4420000000", Orig: true},
		{ID: 5, Client: s, Kind: "ip", Ident: "10.0.0.3", Orig: true},
		{ID: 6, Client: d, Kind: "ip", Ident: "10.0.0.1", TechPrefix: "99", Orig: false},
		{ID: 7, Client: v, Kind: "ip", Ident: "192.0.2.7", Term: true},
		{ID: 8, Client: v, Kind: "username", Ident: "vendor-x", Term: true},
	}
	return NewCatalog(1, map[int64]*Client{1: a, 2: b, 3: s, 4: d, 10: v}, map[int64]*Table{1: retail, 2: vendor}, accounts)
}

func TestCatalogRate(t *testing.T) {
	cat := testCatalog(t)
	// f rates a 60 s answered call and checks "status reason client number
	// cost | term-reason term-client term-cost".
	f := func(src, dst, term, want string) {
		t.Helper()
		c := ingest.CDR{ID: "x", SetupTime: at("2024-03-01T10:00:00Z"), ConnectTime: at("2024-03-01T10:00:00Z"),
			DisconnectTime: at("2024-03-01T10:01:00Z"), Duration: time.Minute, Dst: dst}
		fmt.Sscanf(src, "ip=%s", &c.SrcIP)
		fmt.Sscanf(src, "user=%s", &c.SrcUser)
		fmt.Sscanf(src, "ani=%s", &c.ANI)
		fmt.Sscanf(term, "ip=%s", &c.TermIP)
		fmt.Sscanf(term, "user=%s", &c.TermUser)
		var r Rating
		cat.Rate(&c, &r)
		got := fmt.Sprintf("%s %s %d %s %d | %s %d %d", r.Status, r.Reason, r.Orig.ClientID, r.Number, r.Orig.CostMicro, r.Term.Reason, r.Term.ClientID, r.Term.CostMicro)
		if got != want {
			t.Fatalf("src %s dst %s term %s:\n got  %s\n want %s", src, dst, term, got, want)
		}
	}
	f("ip=10.0.0.1", "447700900123", "ip=192.0.2.7", "rated  1 447700900123 50000 |  10 30000")
	f("ip=10.0.0.1", "+447700900123", "", "rated  1 447700900123 50000 |  0 0")                     // '+' stripped, no term side: not a mismatch
	f("ip=10.0.0.1", "77#447700900123", "user=vendor-x", "rated  2 447700900123 50000 |  10 30000") // IP + tech prefix wins, prefix stripped
	f("user=trunk-b", "442071234567", "ip=192.0.2.7", "rated  2 442071234567 12000 | term_unknown_destination 10 0")
	f("ani=4420000000", "442071234567", "ip=203.0.113.9", "rated  1 442071234567 12000 | term_unknown_account 0 0")
	f("ip=10.0.0.3", "447700900123", "", "mismatch inactive_client 3  0 |  0 0")
	f("ip=10.0.0.1", "99447700900123", "", "mismatch unknown_account 0  0 |  0 0") // claimed by a switched-off prefix: no fall-through to A
	f("ip=10.9.9.9", "447700900123", "", "mismatch unknown_account 0  0 |  0 0")
	f("ip=10.0.0.1", "33123", "", "mismatch unknown_destination 1 33123 0 |  0 0")
	f("ip=10.0.0.1", "44abc", "", "mismatch malformed 1  0 |  0 0") // the number is checked after the account
}

// TestCatalogRateDetails: what makes a call unbillable is said in the
// rating's detail, the same text the offline rater prints.
func TestCatalogRateDetails(t *testing.T) {
	huge := &Table{ID: 3, Name: "huge", Currency: "USD", Deck: deck(t, "code,rate\n44,999999999\n")}
	cat := testCatalog(t)
	cat.Clients[1].OrigTable = huge
	f := func(dst string, dur time.Duration, want string) {
		t.Helper()
		c := ingest.CDR{ID: "x", SrcIP: "10.0.0.1", SetupTime: at("2024-03-01T10:00:00Z"), ConnectTime: at("2024-03-01T10:00:00Z"),
			DisconnectTime: at("2024-03-01T10:00:00Z").Add(dur), Duration: dur, Dst: dst}
		var r Rating
		cat.Rate(&c, &r)
		if got := string(r.Reason) + ": " + r.Detail; got != want {
			t.Fatalf("dst %s, %v: got %q, want %q", dst, dur, got, want)
		}
	}
	f("44"+strings.Repeat("1", 31), time.Minute, "malformed: dst: more than 32 digits")
	f("44a", time.Minute, "malformed: dst: not a number (digits only, after any tech prefix)")
	f("4420", time.Minute, ": ")
	// 999,999,999 a minute for 1001 minutes is beyond what one xDR holds.
	f("4420", 1001*time.Minute, "cost_out_of_range: one call would cost beyond ±999999999999.999999 at rate 999999999 per minute (code 44)")
}
