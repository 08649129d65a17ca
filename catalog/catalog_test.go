package catalog_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/sinks"
	"github.com/tarifa/tarifa/sinks/sinktest"
)

// copyTestdata copies testdata into a fresh directory, so that a test can
// edit the catalog or its decks, and returns the catalog's path there.
func copyTestdata(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"catalog.good.yaml", "decks/retail.csv", "decks/vendor.csv", "decks/bad.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "catalog.good.yaml")
}

func apply(t *testing.T, pool *pgxpool.Pool, path string, dry bool) *catalog.Report {
	t.Helper()
	f, err := catalog.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := catalog.Apply(context.Background(), pool, f, catalog.Options{DryRun: dry})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func version(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var v int64
	if err := pool.QueryRow(context.Background(), "SELECT version FROM catalog_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestApplyTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := copyTestdata(t)

	rep := apply(t, db.PG, path, false)
	want := catalog.Report{
		TimeProfiles: catalog.Counts{Created: 1},
		RateTables:   catalog.Counts{Created: 2},
		Resellers:    catalog.Counts{Created: 2},
		Clients:      catalog.Counts{Created: 3},
		Accounts:     catalog.Counts{Created: 5},
		Payments:     catalog.Counts{Created: 2},
	}
	checkCounts(t, rep, want)
	if got := rep.Rates[0]; got.Added != 7 || got.Changed+got.Removed+got.Unchanged != 0 {
		t.Errorf("retail rates: %+v, want 7 added", got)
	}
	v := version(t, db.PG)

	// Every field landed where the domain reads it.
	var tz, billBy, credit, threshold, reseller, parent string
	var tags []string
	err := db.PG.QueryRow(context.Background(), `
		SELECT c.timezone, c.bill_by, c.credit_limit::text, c.low_balance_threshold::text, c.tags, r.name, p.name
		FROM clients c JOIN resellers r ON r.id = c.reseller_id JOIN resellers p ON p.id = r.parent_id
		WHERE c.name = 'Customer A'`).Scan(&tz, &billBy, &credit, &threshold, &tags, &reseller, &parent)
	if err != nil {
		t.Fatal(err)
	}
	if tz != "Europe/London" || billBy != "disconnect" || credit != "100.000000" || threshold != "20.500000" ||
		strings.Join(tags, ",") != "gold,uk" || reseller != "Acme East" || parent != "Acme Wholesale" {
		t.Errorf("Customer A = %s %s %s %s %v %s %s", tz, billBy, credit, threshold, tags, reseller, parent)
	}
	var unlimited bool
	var resellerB, currencyB string
	err = db.PG.QueryRow(context.Background(), `
		SELECT c.unlimited, r.name, c.currency FROM clients c JOIN resellers r ON r.id = c.reseller_id WHERE c.name = 'Customer B'`).
		Scan(&unlimited, &resellerB, &currencyB)
	if err != nil {
		t.Fatal(err)
	}
	if !unlimited || resellerB != "Acme Wholesale" || currencyB != "USD" {
		t.Errorf("Customer B: unlimited %v reseller %s currency %s; want the top reseller's USD", unlimited, resellerB, currencyB)
	}
	if n := count(t, db.PG, "SELECT count(*) FROM accounts WHERE tech_prefix = '7788#' AND orig AND NOT term"); n != 1 {
		t.Errorf("tech prefix accounts = %d", n)
	}
	if n := count(t, db.PG, "SELECT count(*) FROM accounts WHERE ident = '198.51.100.7' AND term AND NOT orig"); n != 1 {
		t.Errorf("vendor term accounts = %d", n)
	}

	rep = apply(t, db.PG, path, false)
	if rep.Changed() {
		var b strings.Builder
		_ = rep.Write(&b)
		t.Errorf("second apply changed something:\n%s", b.String())
	}
	if got := version(t, db.PG); got != v {
		t.Errorf("catalog version moved from %d to %d on a no-op apply", v, got)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "nothing changed") {
		t.Errorf("second report:\n%s", b.String())
	}
}

func checkCounts(t *testing.T, got *catalog.Report, want catalog.Report) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want catalog.Counts
	}{
		{"time profiles", got.TimeProfiles, want.TimeProfiles},
		{"rate tables", got.RateTables, want.RateTables},
		{"resellers", got.Resellers, want.Resellers},
		{"clients", got.Clients, want.Clients},
		{"accounts", got.Accounts, want.Accounts},
		{"payments", got.Payments, want.Payments},
	} {
		if c.got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := copyTestdata(t)
	v := version(t, db.PG)

	rep := apply(t, db.PG, path, true)
	if !rep.DryRun || rep.Clients.Created != 3 || rep.Rates[0].Added != 7 || rep.Payments.Created != 2 {
		t.Errorf("dry run report: %+v", rep)
	}
	for _, table := range []string{"time_profiles", "rate_tables", "rates", "resellers", "clients", "accounts", "transactions", "balances"} {
		if n := count(t, db.PG, "SELECT count(*) FROM "+table); n != 0 {
			t.Errorf("dry run wrote %d rows to %s", n, table)
		}
	}
	if got := version(t, db.PG); got != v {
		t.Errorf("dry run moved the catalog version from %d to %d", v, got)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dry run", `created client "Customer A"`, "clients        3 created, 0 updated, 0 unchanged"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("dry run report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestChangedDeck(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := copyTestdata(t)
	apply(t, db.PG, path, false)

	// One rate changed, one row dropped, one added; a client setting changed.
	deck := `code,code_name,rate,effective_from,end_date,min_volume,interval,grace_volume,setup_fee,time_profile
44,United Kingdom,0.0215,2024-01-01,,1,1,0,0,all
447,United Kingdom - Mobile,0.10,2024-01-01,,60,60,0,0,all
447,United Kingdom - Mobile,0.12,2024-03-01,,60,60,0,0,all
"1201-1203",USA,0.009,,,6,6,0,0,all
33,France,0.03,2024-01-01,,30,6,0,0,all
`
	dir := filepath.Dir(path)
	if err := os.WriteFile(filepath.Join(dir, "decks/retail.csv"), []byte(deck), 0o644); err != nil {
		t.Fatal(err)
	}
	yml, _ := os.ReadFile(path)
	yml = []byte(strings.Replace(string(yml), "timezone: America/New_York", "timezone: America/Chicago", 1))
	if err := os.WriteFile(path, yml, 0o644); err != nil {
		t.Fatal(err)
	}

	dry := apply(t, db.PG, path, true)
	rep := apply(t, db.PG, path, false)
	for _, r := range []*catalog.Report{dry, rep} {
		if got, want := r.Rates[0], (catalog.RateCounts{Table: "retail-usd", Added: 1, Changed: 1, Removed: 1, Unchanged: 5}); got != want {
			t.Errorf("retail rates: %+v, want %+v", got, want)
		}
		if got := r.Rates[1]; got.Unchanged != 3 || got.Added+got.Changed+got.Removed != 0 {
			t.Errorf("vendor rates: %+v, want unchanged", got)
		}
		checkCounts(t, r, catalog.Report{
			TimeProfiles: catalog.Counts{Unchanged: 1},
			RateTables:   catalog.Counts{Unchanged: 2},
			Resellers:    catalog.Counts{Unchanged: 2},
			Clients:      catalog.Counts{Updated: 1, Unchanged: 2},
			Accounts:     catalog.Counts{Unchanged: 5},
			Payments:     catalog.Counts{Unchanged: 2},
		})
	}
	var rate decimal.Decimal
	var rateText string
	if err := db.PG.QueryRow(context.Background(), `SELECT rate::text FROM rates WHERE code = '44' AND rate_table_id = (SELECT id FROM rate_tables WHERE name = 'retail-usd')`).Scan(&rateText); err != nil {
		t.Fatal(err)
	}
	rate = decimal.RequireFromString(rateText)
	if !rate.Equal(decimal.RequireFromString("0.0215")) {
		t.Errorf("rate of 44 = %s, want 0.0215", rate)
	}
	if n := count(t, db.PG, "SELECT count(*) FROM rates WHERE time_profile = 'business'"); n != 0 {
		t.Errorf("removed row still there (%d)", n)
	}
}

func TestPaymentsIdempotent(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := copyTestdata(t)
	apply(t, db.PG, path, false)
	apply(t, db.PG, path, false)

	var live string
	if err := db.PG.QueryRow(context.Background(), "SELECT live::text FROM client_balances WHERE client_name = 'Customer A'").Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != "512.250000" {
		t.Errorf("live balance after two applies = %s, want 512.250000", live)
	}
	if n := count(t, db.PG, "SELECT count(*) FROM transactions WHERE kind = 'payment'"); n != 2 {
		t.Errorf("payments = %d, want 2", n)
	}
	var at time.Time
	if err := db.PG.QueryRow(context.Background(), "SELECT at FROM transactions WHERE ref = 'wire-002'").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if !at.Equal(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("wire-002 at %s", at)
	}

	// The same ref with another amount is refused, not paid twice.
	yml, _ := os.ReadFile(path)
	yml = []byte(strings.Replace(string(yml), `amount: "500"`, `amount: "600"`, 1))
	if err := os.WriteFile(path, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := catalog.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = catalog.Apply(context.Background(), db.PG, f, catalog.Options{})
	if err == nil || !strings.Contains(err.Error(), `payments[0] "wire-001": ref: ref "wire-001" is already used by transaction 1 (a payment of 500.000000): a recorded transaction is never changed`) {
		t.Errorf("changed payment: err = %v", err)
	}
}

func TestApplyErrors(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	f := func(yml, want string) {
		t.Helper()
		path := copyTestdata(t)
		path = filepath.Join(filepath.Dir(path), "catalog.yaml")
		if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := catalog.Load(path)
		if err == nil {
			_, err = catalog.Apply(context.Background(), db.PG, file, catalog.Options{})
		}
		if err == nil {
			t.Errorf("no error, want %q", want)
			return
		}
		got := strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", "")
		if got != want {
			t.Errorf("error\n got: %s\nwant: %s", got, want)
		}
	}
	const head = "resellers: [{name: R, currency: USD}]\nclients:\n  - {name: Customer A}\n  - {name: Customer Z}\n"
	f(head+"  - {name: Customer B, timezone: Mars/Base}\n",
		`catalog.yaml: clients[2] "Customer B": timezone: unknown timezone "Mars/Base": want an IANA name such as Europe/London`)
	f(head+"  - {name: Customer B, bill_by: answer}\n",
		`catalog.yaml: clients[2] "Customer B": bill_by: must be one of disconnect, setup, connect, got "answer"`)
	f(head+"  - {name: Customer B, credit_limit: \"1e3\"}\n",
		`catalog.yaml: clients[2] "Customer B": credit_limit: "1e3" is not a plain decimal such as "12.50"`)
	f(head+"  - {name: Customer B, credit_limit: \"10\", unlimited: true}\n",
		`catalog.yaml: clients[2] "Customer B": credit_limit: must be 0 with unlimited: true (postpaid has no limit), got 10`)
	f(head+"  - {name: Customer B, accounts: [{kind: username, ident: u1, tech_prefix: \"77#\"}]}\n",
		`catalog.yaml: clients[2] "Customer B": accounts[0]: tech_prefix: only ip accounts have a tech prefix`)
	f(head+"  - {name: Customer B, orig_rate_table: nope}\n",
		`catalog.yaml: clients[2] "Customer B": orig_rate_table: unknown rate table "nope"`)
	f(head+"  - {name: Customer B, timezone: UTC, colour: red}\n",
		"catalog.yaml: line 5: field colour not found in type catalog.Client")
	f("rate_tables: [{name: bad, currency: USD, deck: decks/bad.csv}]\n",
		`catalog.yaml: rate_tables[0] "bad": deck decks/bad.csv: line 3: code: "4x7" is not digits`)
	f("rate_tables: [{name: r, currency: usd, deck: decks/missing.csv}]\n",
		`catalog.yaml: 2 problems:
  rate_tables[0] "r": currency: unknown currency "usd": want an ISO 4217 code such as USD
  rate_tables[0] "r": deck: open decks/missing.csv: no such file or directory`)
	f("resellers: [{name: R, currency: USD, parent: Q}]\n",
		`catalog.yaml: resellers[0] "R": parent: unknown reseller "Q"`)
	f("rate_tables: [{name: a, currency: USD, deck: decks/vendor.csv, parent: nope}]\n",
		`catalog.yaml: rate_tables[0] "a": parent: unknown rate table "nope"`)
	f("rate_tables: [{name: a, currency: USD, deck: decks/vendor.csv, parent: a}]\n",
		`catalog.yaml: rate_tables[0] "a": parent: a rate table cannot be its own parent`)
	f("rate_tables: [{name: a, currency: EUR, deck: decks/vendor.csv, parent: b}, {name: b, currency: USD, deck: decks/vendor.csv}]\n",
		`catalog.yaml: rate_tables[0] "a": parent: rate table "b" is in USD, not EUR`)
	f("rate_tables: [{name: a, currency: USD, deck: decks/vendor.csv, parent: b}, {name: b, currency: USD, deck: decks/vendor.csv, parent: a}]\n",
		`catalog.yaml: rate_tables[0] "a": parent: rate tables form a cycle: "a" → "b" → "a"`)
	f(head+"payments: [{client: Customer A, amount: \"-5\", ref: w1}]\n",
		`catalog.yaml: payments[0] "w1": amount: a payment must be positive; use an adjustment to lower a balance the other way`)
	f(head+"payments: [{client: Nobody, amount: \"5\", ref: w1}]\n",
		`catalog.yaml: payments[0] "w1": client: unknown client "Nobody"`)
}

// TestRateTableParent: a child listed before its parent is applied after
// it, gets its parent_id, and re-applying changes nothing; dropping the
// parent from the file clears it.
func TestRateTableParent(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := filepath.Join(filepath.Dir(copyTestdata(t)), "catalog.yaml")
	write := func(yml string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parentOf := func(name string) string {
		t.Helper()
		var parent string
		if err := db.PG.QueryRow(context.Background(), `SELECT coalesce(p.name, '') FROM rate_tables t
			LEFT JOIN rate_tables p ON p.id = t.parent_id WHERE t.name = $1`, name).Scan(&parent); err != nil {
			t.Fatal(err)
		}
		return parent
	}
	write("rate_tables:\n  - {name: child, currency: USD, deck: decks/vendor.csv, parent: base}\n  - {name: base, currency: USD, deck: decks/vendor.csv}\n")
	apply(t, db.PG, path, false)
	if got := parentOf("child"); got != "base" {
		t.Errorf("child's parent is %q, want base", got)
	}
	if rep := apply(t, db.PG, path, false); rep.Changed() {
		t.Error("second apply changed something")
	}
	write("rate_tables:\n  - {name: child, currency: USD, deck: decks/vendor.csv}\n  - {name: base, currency: USD, deck: decks/vendor.csv}\n")
	apply(t, db.PG, path, false)
	if got := parentOf("child"); got != "" {
		t.Errorf("child's parent is %q after the file dropped it, want none", got)
	}

	// A cycle through a table the file does not name is found in the
	// database.
	write("rate_tables:\n  - {name: child, currency: USD, deck: decks/vendor.csv, parent: base}\n")
	apply(t, db.PG, path, false)
	write("rate_tables:\n  - {name: base, currency: USD, deck: decks/vendor.csv, parent: child}\n")
	file, err := catalog.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = catalog.Apply(context.Background(), db.PG, file, catalog.Options{})
	want := `rate_tables[0] "base": parent: rate table 2 "child" is 1 "base" itself or below it: that would make a cycle`
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("apply closing a cycle through the database: %v, want …%s", err, want)
	}
}

// TestDemoCatalog applies deploy/demo/catalog.yaml (decks of 20k+ codes)
// and loads it the way workers do.
func TestDemoCatalog(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	rep := apply(t, db.PG, filepath.Join("..", "deploy", "demo", "catalog.yaml"), false)
	if rep.Clients.Created != 9 || rep.Accounts.Created < 17 || rep.Rates[0].Added < 20000 {
		t.Errorf("demo apply: %+v", rep)
	}
	cat, err := sinks.NewCatalogLoader(db.PG).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Clients) != 9 || len(cat.Tables) != 5 {
		t.Errorf("loaded %d clients, %d tables", len(cat.Clients), len(cat.Tables))
	}
	if rep := apply(t, db.PG, filepath.Join("..", "deploy", "demo", "catalog.yaml"), false); rep.Changed() {
		t.Error("second demo apply changed something")
	}
}

// TestApplyAuditsLikeTheAPI: every change an apply makes has its audit row
// under the actor "catalog apply (FILE)", payments included; a client the
// file deletes gets its accounts switched off, each audited, and applying
// the same file again changes nothing.
func TestApplyAuditsLikeTheAPI(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	path := copyTestdata(t)
	apply(t, db.PG, path, false)
	actor := "catalog apply (" + path + ")"
	audits := func(entity, action string) int {
		return count(t, db.PG, "SELECT count(*) FROM audit_log WHERE actor = $1 AND entity = $2 AND action = $3", actor, entity, action)
	}
	for _, c := range []struct {
		entity, action string
		want           int
	}{
		{"time profile", "create", 1}, {"rate table", "create", 2}, {"rate table", "import_rates", 2},
		{"reseller", "create", 2}, {"client", "create", 3}, {"account", "create", 5}, {"transaction", "create", 2},
	} {
		if got := audits(c.entity, c.action); got != c.want {
			t.Errorf("%s %s audit rows: %d, want %d", c.entity, c.action, got, c.want)
		}
	}
	if n := count(t, db.PG, "SELECT count(*) FROM audit_log WHERE actor <> $1", actor); n != 0 {
		t.Errorf("%d audit rows under another actor", n)
	}

	yml, _ := os.ReadFile(path)
	yml = []byte(strings.Replace(string(yml), "    status: active\n", "    status: deleted\n", 1)) // Customer A
	if err := os.WriteFile(path, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := apply(t, db.PG, path, false)
	if rep.Clients.Updated != 1 || rep.Accounts.Unchanged != 5 {
		t.Errorf("delete through the file: %+v", rep)
	}
	if n := count(t, db.PG, `SELECT count(*) FROM accounts a JOIN clients c ON c.id = a.client_id
		WHERE c.name = 'Customer A' AND (a.orig OR a.term)`); n != 0 {
		t.Errorf("%d accounts of the deleted Customer A still on", n)
	}
	if got := audits("account", "update"); got != 3 {
		t.Errorf("account update audit rows: %d, want 3 (one per account switched off)", got)
	}
	if rep := apply(t, db.PG, path, false); rep.Changed() {
		t.Error("applying the deleting file again changed something")
	}
}

// TestApplyRefusesAResellerCycleThroughTheDatabase is the attack of issue
// 10: a file that names only "Acme Wholesale" with the parent "Acme East",
// while East's parent is Wholesale. Neither the dry run nor the apply may
// make the loop.
func TestApplyRefusesAResellerCycleThroughTheDatabase(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	apply(t, db.PG, copyTestdata(t), false)
	dir := t.TempDir()
	path := filepath.Join(dir, "cycle.yaml")
	if err := os.WriteFile(path, []byte("resellers: [{name: Acme Wholesale, parent: Acme East, currency: USD}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := catalog.Load(path)
	if err != nil {
		t.Fatalf("check: %v (the loop is only in the database)", err)
	}
	want := path + `: resellers[0] "Acme Wholesale": parent: reseller 2 "Acme East" is 1 "Acme Wholesale" itself or below it: that would make a cycle`
	for _, dry := range []bool{true, false} {
		_, err := catalog.Apply(context.Background(), db.PG, f, catalog.Options{DryRun: dry})
		if err == nil || err.Error() != want {
			t.Errorf("dry run %v: %v, want %s", dry, err, want)
		}
	}
	if n := count(t, db.PG, "SELECT count(*) FROM resellers WHERE name = 'Acme Wholesale' AND parent_id IS NULL"); n != 1 {
		t.Error("Acme Wholesale got a parent")
	}
}

// TestNoRevivalUnderAnArchivedReseller: once a reseller is archived (all
// it owned deleted first), neither its deleted client nor its deleted
// sub-reseller can be brought back, whoever writes — a revived client's
// token would answer again under an owner that no longer exists.
func TestNoRevivalUnderAnArchivedReseller(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	apply(t, db.PG, copyTestdata(t), false)
	ctx := context.Background()
	id := func(table, name string) int64 {
		var n int64
		if err := db.PG.QueryRow(ctx, "SELECT id FROM "+table+" WHERE name = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	east, customerA := id("resellers", "Acme East"), id("clients", "Customer A")
	op := catalog.Operator("test")
	update := func(e *catalog.Entity, id int64, in catalog.Input) error {
		return catalog.Write(ctx, db.PG, op, func(w *catalog.Writer) error {
			_, _, err := w.Update(ctx, e, id, in)
			return err
		})
	}
	var south int64
	err := catalog.Write(ctx, db.PG, op, func(w *catalog.Writer) error {
		_, err := w.Create(ctx, catalog.Resellers, catalog.Input{"name": "Acme South", "parent_id": east, "currency": "USD"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	south = id("resellers", "Acme South")
	for _, step := range []struct {
		e  *catalog.Entity
		id int64
	}{{catalog.Resellers, south}, {catalog.Clients, customerA}, {catalog.Resellers, east}} {
		if err := update(step.e, step.id, catalog.Input{"status": "deleted"}); err != nil {
			t.Fatalf("delete %s %d: %v", step.e.Name, step.id, err)
		}
	}
	for _, c := range []struct {
		e    *catalog.Entity
		id   int64
		want string
	}{
		{catalog.Clients, customerA, `status: reseller 2 "Acme East" is archived: a client of it stays deleted`},
		{catalog.Resellers, south, `status: reseller 2 "Acme East" is archived: a sub-reseller of it stays deleted`},
	} {
		err := update(c.e, c.id, catalog.Input{"status": "active"})
		if err == nil || err.Error() != c.want {
			t.Errorf("revive %s %d: %v, want %s", c.e.Name, c.id, err, c.want)
		}
	}
	if n := count(t, db.PG, "SELECT count(*) FROM clients WHERE reseller_id = $1 AND status <> 'deleted'", east); n != 0 {
		t.Errorf("%d live clients under the archived Acme East", n)
	}
	// Reviving the reseller first makes its client revivable again.
	if err := update(catalog.Resellers, east, catalog.Input{"status": "active"}); err != nil {
		t.Fatal(err)
	}
	if err := update(catalog.Clients, customerA, catalog.Input{"status": "active"}); err != nil {
		t.Errorf("revive Customer A under the revived Acme East: %v", err)
	}
}
