package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/rater"
	"github.com/tarifa/tarifa/sinks"
)

// TestAuthorizeAgreesWithRater: whatever the rate row and the balance,
// authorize's max_seconds N satisfies Charge(N) ≤ available < Charge(N+1),
// or N is the configured cap.
func TestAuthorizeAgreesWithRater(t *testing.T) {
	e := newEnv(t)
	res := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "EUR"})
	rt := e.create("/v1/rate-tables", map[string]any{"name": "t", "currency": "EUR"})
	rnd := rand.New(rand.NewPCG(1, 2))
	var deck strings.Builder
	deck.WriteString("code,code_name,rate,min_volume,interval,grace_volume,setup_fee\n")
	for i := range 12 {
		rate := decimal.New(rnd.Int64N(5_000_000), -int32(rnd.IntN(5)+3)) // 0 … 50 per minute
		setup := decimal.New(rnd.Int64N(300), -2)
		if i%3 == 0 {
			setup = decimal.Zero
		}
		fmt.Fprintf(&deck, "%d,Dest %d,%s,%d,%d,%d,%s\n", 4470+i, i, rate, 1+rnd.IntN(60), 1+rnd.IntN(60), rnd.IntN(10), setup)
	}
	m := e.must(200, e.admin, "POST", path("/v1/rate-tables/{id}/rates", rt), deck.String())
	if num(t, m["added_count"]) != 12 {
		t.Fatalf("import: %v", m)
	}
	c := e.create("/v1/clients", map[string]any{"name": "Prepaid", "reseller_id": res, "currency": "EUR", "credit_limit": "0.5", "orig_rate_table_id": rt})
	e.create(path("/v1/clients/{id}/accounts", c), map[string]any{"kind": "ip", "ident": "2001:db8::7"})
	u := e.create("/v1/clients", map[string]any{"name": "Postpaid", "reseller_id": res, "currency": "EUR", "unlimited": true, "orig_rate_table_id": rt})
	e.create(path("/v1/clients/{id}/accounts", u), map[string]any{"kind": "username", "ident": "post-trunk"})

	loader := sinks.NewCatalogLoader(e.db.PG)
	capSeconds := int64(4 * time.Hour / time.Second)
	ref := 0
	for round := range 8 {
		// move the balance by a random amount, sometimes below zero
		amount := decimal.New(rnd.Int64N(40_000_000)-8_000_000, -6)
		if !amount.IsZero() {
			ref++
			e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "adjustment", "amount": amount.String(), "ref": fmt.Sprint("r", ref)})
		}
		cat, err := loader.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			dst := fmt.Sprintf("+%d555%04d", 4470+i, round)
			a := e.must(200, e.admin, "POST", "/v1/authorize", map[string]any{"src_ip": "2001:DB8::7", "dst": dst})
			acc, number, _ := cat.MatchOrig(&ingest.CDR{SrcIP: "2001:db8::7", Dst: strings.TrimPrefix(dst, "+")})
			r, _ := rater.Select(acc.OrigRates().Deck, number, time.Now(), acc.Client.Loc)
			avail := sinks.Micro(decimal.RequireFromString(a["available"].(string)))
			n := num(t, a["max_seconds"])
			_, cn := rater.Charge(r, time.Duration(n)*time.Second)
			_, cn1 := rater.Charge(r, time.Duration(n+1)*time.Second)
			if n != capSeconds && !(cn <= avail && avail < cn1) || n == capSeconds && cn > avail {
				t.Fatalf("authorize %s with available %d: max %d, charge(N)=%d charge(N+1)=%d (%v)", dst, avail, n, cn, cn1, a)
			}
			if a["allowed"] != (n > 0) {
				t.Fatalf("allowed %v with max %d", a["allowed"], n)
			}
			if n == 0 && a["reason"] != ReasonInsufficientBalance {
				t.Fatalf("reason %v with max 0", a["reason"])
			}
			if rs := a["rate"].(map[string]any); rs["code"] != r.Code || rs["rate"] != r.Rate.String() {
				t.Fatalf("rate %v, rater chose %s @ %s", rs, r.Code, r.Rate)
			}
		}
	}
	a := e.must(200, e.admin, "POST", "/v1/authorize", map[string]any{"src_user": "post-trunk", "dst": "44705551234"})
	if a["allowed"] != true || num(t, a["max_seconds"]) != capSeconds || a["available"] != nil {
		t.Fatalf("unlimited: %v", a)
	}
}

func TestAuthorizeReasons(t *testing.T) {
	e := newEnv(t)
	res := e.create("/v1/resellers", map[string]any{"name": "R", "currency": "USD"})
	rt := e.create("/v1/rate-tables", map[string]any{"name": "t", "currency": "USD"})
	e.must(200, e.admin, "POST", path("/v1/rate-tables/{id}/rates", rt), "code,rate,effective_from,end_date\n44,0.02,2024-01-01,\n447,0.10,2024-01-01,2024-06-01\n")
	c := e.create("/v1/clients", map[string]any{"name": "C", "reseller_id": res, "currency": "USD", "credit_limit": "10", "orig_rate_table_id": rt})
	e.create(path("/v1/clients/{id}/accounts", c), map[string]any{"kind": "ip", "ident": "192.0.2.1", "tech_prefix": "99#"})
	e.create(path("/v1/clients/{id}/accounts", c), map[string]any{"kind": "ani", "ident": "+3531234567"})

	f := func(body map[string]any, wantReason string, wantAllowed bool) {
		t.Helper()
		a := e.must(200, e.admin, "POST", "/v1/authorize", body)
		if a["reason"] != wantReason || a["allowed"] != wantAllowed {
			t.Fatalf("authorize %v: %v", body, a)
		}
	}
	f(map[string]any{"src_ip": "192.0.2.1", "dst": "99#447700900123", "time": "2024-02-15T10:00:00Z"}, "", true)
	f(map[string]any{"src_ip": "192.0.2.1", "dst": "447700900123", "time": "2024-02-15T10:00:00Z"}, "unknown_account", false)
	f(map[string]any{"ani": "3531234567", "dst": "+447700900123", "time": "2024-02-15T10:00:00Z"}, "", true)
	f(map[string]any{"ani": "3531234567", "dst": "33123", "time": "2024-02-15T10:00:00Z"}, "unknown_destination", false)
	f(map[string]any{"ani": "3531234567", "dst": "4471", "time": "2023-02-15T10:00:00Z"}, "no_rate", false)
	f(map[string]any{"ani": "3531234567", "dst": "44x", "time": "2024-02-15T10:00:00Z"}, "malformed", false)
	// an ended 447 rate is not revived by the 44 rate? No: 44 is a shorter
	// code, so it applies once 447 has ended.
	a := e.must(200, e.admin, "POST", "/v1/authorize", map[string]any{"ani": "3531234567", "dst": "447700", "time": "2024-07-01T00:00:00Z"})
	if a["rate"].(map[string]any)["code"] != "44" {
		t.Fatalf("after the end date: %v", a)
	}
	// a change through the API is in force at once
	e.must(200, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"status": "stop"})
	f(map[string]any{"ani": "3531234567", "dst": "447700", "time": "2024-02-15T10:00:00Z"}, "inactive_client", false)
	e.must(200, e.admin, "PATCH", path("/v1/clients/{id}", c), map[string]any{"status": "active"})
	e.must(201, e.admin, "POST", "/v1/transactions", map[string]any{"client_id": c, "kind": "charge", "amount": "20"})
	f(map[string]any{"ani": "3531234567", "dst": "447700", "time": "2024-02-15T10:00:00Z"}, ReasonInsufficientBalance, false)
}
