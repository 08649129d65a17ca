package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tarifa/tarifa/billing"
	"github.com/tarifa/tarifa/codedeck"
)

// File is a parsed catalog file (DESIGN.md "Catalog file"). Load checks
// it with the rules the API applies, except those that need the database;
// amounts are kept as written and parsed exactly, never through float64.
type File struct {
	// Path is the file as named by the caller; errors start with it, deck
	// paths are relative to its directory, and audit rows name it.
	Path string `yaml:"-"`

	TimeProfiles map[string][]codedeck.Window `yaml:"time_profiles"`
	RateTables   []RateTable                  `yaml:"rate_tables"`
	PaymentTerms []PaymentTerms               `yaml:"payment_terms"` // billing.go
	TaxProfiles  []TaxProfile                 `yaml:"tax_profiles"`
	Resellers    []Reseller                   `yaml:"resellers"`
	Clients      []Client                     `yaml:"clients"`
	Payments     []Payment                    `yaml:"payments"`
}

// RateTable is a rate table and the deck CSV that holds all its rates.
type RateTable struct {
	Name     string `yaml:"name"`
	Currency string `yaml:"currency"`
	Deck     string `yaml:"deck"`     // relative to the catalog file
	Parent   string `yaml:"parent"`   // a rate table of the same currency whose codes this one extends
	Reseller string `yaml:"reseller"` // the reseller it belongs to; empty for the operator's own
	Notes    string `yaml:"notes"`

	rows     []codedeck.Row
	rejected []RejectedRow
	deckErr  error // the deck could not be read
}

// Reseller is a company owning clients. Parent names another reseller.
type Reseller struct {
	Name            string `yaml:"name"`
	Parent          string `yaml:"parent"`
	Currency        string `yaml:"currency"`
	Status          string `yaml:"status"` // active (default) | deleted
	OrigRateTable   string `yaml:"orig_rate_table"`
	TermRateTable   string `yaml:"term_rate_table"`
	CreditLimit     string `yaml:"credit_limit"`
	Unlimited       bool   `yaml:"unlimited"`
	InvoiceTemplate string `yaml:"invoice_template"`
	CompanyName     string `yaml:"company_name"`
	Email           string `yaml:"email"`
	Address         string `yaml:"address"`
	TaxID           string `yaml:"tax_id"`
	RegID           string `yaml:"reg_id"`

	// InvoiceNumberTemplate is the numbering of its invoices
	// (billing.NumberTemplate); default "{n}".
	InvoiceNumberTemplate string `yaml:"invoice_number_template"`
}

// Client is a paying entity, customer (orig) and vendor (term), with the
// fields of DOMAIN.md "Entities" that the file may carry. Reseller defaults
// to the file's first reseller without a parent, Currency to the
// reseller's; every other field left out takes the default of the API.
type Client struct {
	Name                   string    `yaml:"name"`
	Reseller               string    `yaml:"reseller"`
	Currency               string    `yaml:"currency"`
	Status                 string    `yaml:"status"`
	Timezone               string    `yaml:"timezone"`
	Tags                   []string  `yaml:"tags"`
	BillBy                 string    `yaml:"bill_by"`
	HiddenDigits           int       `yaml:"hidden_digits"`
	CreditLimit            string    `yaml:"credit_limit"`
	Unlimited              bool      `yaml:"unlimited"`
	OrigRateTable          string    `yaml:"orig_rate_table"`
	TermRateTable          string    `yaml:"term_rate_table"`
	RoutingPlan            string    `yaml:"routing_plan"`
	OrigCapacity           *int      `yaml:"orig_capacity"`
	TermCapacity           *int      `yaml:"term_capacity"`
	VendorCreditLimit      string    `yaml:"vendor_credit_limit"`
	NotifyClient           bool      `yaml:"notify_client"`
	NotifyAdmin            bool      `yaml:"notify_admin"`
	LowBalanceThreshold    string    `yaml:"low_balance_threshold"`
	CapacityUnderThreshold *int      `yaml:"capacity_under_threshold"`
	InvoiceTemplate        string    `yaml:"invoice_template"`
	Autoinvoice            bool      `yaml:"autoinvoice"`
	CompanyName            string    `yaml:"company_name"`
	EmailMain              string    `yaml:"email_main"`
	EmailNOC               string    `yaml:"email_noc"`
	EmailBilling           string    `yaml:"email_billing"`
	EmailRates             string    `yaml:"email_rates"`
	Address                string    `yaml:"address"`
	Zip                    string    `yaml:"zip"`
	TaxID                  string    `yaml:"tax_id"`
	RegID                  string    `yaml:"reg_id"`
	AccountDetails         string    `yaml:"account_details"`
	Locale                 string    `yaml:"locale"`
	Accounts               []Account `yaml:"accounts"`

	// The billing settings: payment terms and a tax profile by name, the
	// rounding (default round_then_sum) and precision (default the
	// currency's) of its invoices.
	PaymentTerms     string `yaml:"payment_terms"`
	TaxProfile       string `yaml:"tax_profile"`
	InvoiceRounding  string `yaml:"invoice_rounding"`
	InvoicePrecision *int   `yaml:"invoice_precision"`
}

// Account is how a client is recognised in a CDR. Orig defaults to on
// (off for a deleted client) and Term to off; Status to active.
type Account struct {
	Kind          string `yaml:"kind"` // ip | username | ani
	Ident         string `yaml:"ident"`
	TechPrefix    string `yaml:"tech_prefix"` // ip accounts only
	Orig          *bool  `yaml:"orig"`
	Term          *bool  `yaml:"term"`
	OrigRateTable string `yaml:"orig_rate_table"`
	TermRateTable string `yaml:"term_rate_table"`
	Status        string `yaml:"status"` // active | inactive
}

// Payment is a payment transaction, recorded once per client and Ref.
// Currency defaults to the client's; At to the time of the apply.
type Payment struct {
	Client   string `yaml:"client"`
	Amount   string `yaml:"amount"`
	At       string `yaml:"at"`
	Ref      string `yaml:"ref"`
	Currency string `yaml:"currency"`
	Notes    string `yaml:"notes"`
}

// FileError is a catalog file that cannot be applied: every problem found,
// each naming the entry and the field.
type FileError struct {
	Path     string
	Problems []string
}

// Error lists the problems, one per line when there are several.
func (e *FileError) Error() string {
	if len(e.Problems) == 1 {
		return e.Path + ": " + e.Problems[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", e.Path, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

// Load reads, parses and checks the catalog file at path and every deck it
// names, with every rule of the API that needs no database: field values,
// references between entries of the file (parent cycles included), deck
// rows with their line numbers, and bytes PostgreSQL cannot store. Unknown
// keys are errors (a typo must not silently drop a setting). References to
// names not in the file, time profiles a deck uses that the file does not
// define, and cycles through the database are checked by Apply.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse is Load for the contents b of the file named path.
func Parse(path string, b []byte) (*File, error) {
	f, err := parse(path, b)
	if err != nil {
		return nil, err
	}
	var v validator
	f.check(&v)
	if len(v.problems) > 0 {
		return nil, &FileError{Path: path, Problems: v.problems}
	}
	return f, nil
}

// parse decodes b and reads the decks, checking nothing else.
func parse(path string, b []byte) (*File, error) {
	if p := badBytes(b); p != "" {
		return nil, &FileError{Path: path, Problems: []string{p}}
	}
	f := &File{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) /* empty file */ {
		return nil, &FileError{Path: path, Problems: []string{yamlProblem(err)}}
	}
	f.Path = path
	for i := range f.RateTables {
		if t := &f.RateTables[i]; t.Deck != "" {
			t.deckErr = f.readDeck(t)
		}
	}
	return f, nil
}

// badBytes names the line of the first byte a YAML file may not hold
// (invalid UTF-8, a control character), or "".
func badBytes(b []byte) string {
	line := 1
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("line %d: invalid UTF-8 (byte 0x%02x)", line, b[i])
		case r == '\n':
			line++
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return fmt.Sprintf("line %d: control character %U is not allowed", line, r)
		}
		i += size
	}
	return ""
}

type validator struct{ problems []string }

func (v *validator) add(entry, field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	if entry != "" {
		msg = entry + ": " + msg
	}
	v.problems = append(v.problems, msg)
}

// field adds a FieldError of entry, naming the field by the file's key.
func (v *validator) field(entry string, err *FieldError) {
	v.add(entry, fileKey(err.Field), "%s", err.Msg)
}

// fileKey is the catalog file's key for an entity field: references are by
// name in the file, by id in the database.
func fileKey(field string) string {
	switch field {
	case "parent_id":
		return "parent"
	case "reseller_id":
		return "reseller"
	case "client_id":
		return "client"
	case "orig_rate_table_id":
		return "orig_rate_table"
	case "term_rate_table_id":
		return "term_rate_table"
	case "payment_terms_id":
		return "payment_terms"
	case "tax_profile_id":
		return "tax_profile"
	}
	return field
}

func entry(list string, i int, name string) string {
	return fmt.Sprintf("%s[%d] %q", list, i, name)
}

func (f *File) profileNames() []string {
	names := make([]string, 0, len(f.TimeProfiles))
	for n := range f.TimeProfiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// check validates f without the database.
func (f *File) check(v *validator) {
	for _, name := range f.profileNames() {
		if err := CheckTimeProfile(name, f.TimeProfiles[name]); err != nil {
			v.add(fmt.Sprintf("time_profiles %q", name), err.Field, "%s", err.Msg)
		}
	}

	seen := map[string]bool{}
	for i := range f.RateTables {
		t := &f.RateTables[i]
		e := entry("rate_tables", i, t.Name)
		checkName(v, e, t.Name, seen)
		if _, problems := RateTables.Validate(t.values(), true); len(problems) > 0 {
			for _, p := range problems {
				v.field(e, p)
			}
		}
		if t.Parent != "" && t.Parent == t.Name {
			v.add(e, "parent", "a rate table cannot be its own parent")
		}
		if t.Deck == "" {
			v.add(e, "deck", "required")
			continue
		}
		if t.deckErr != nil {
			v.add(e, "", "%v", t.deckErr)
			continue
		}
		if len(t.rejected) > 0 {
			v.add(e, "", "%s", deckProblem(t.Deck, t.rejected))
		}
		if len(t.rows) == 0 && len(t.rejected) == 0 {
			v.add(e, "deck", "%s has no rates", t.Deck)
		}
	}
	if cyc := f.rateTableCycle(); cyc != nil {
		v.add(entry("rate_tables", cyc[0], f.RateTables[cyc[0]].Name), "parent", "rate tables form a cycle: %s", f.loop(cyc, func(i int) string { return f.RateTables[i].Name }))
	}

	f.checkBilling(v)

	seen = map[string]bool{}
	for i := range f.Resellers {
		r := &f.Resellers[i]
		e := entry("resellers", i, r.Name)
		checkName(v, e, r.Name, seen)
		if _, problems := Resellers.Validate(r.values(), true); len(problems) > 0 {
			for _, p := range problems {
				v.field(e, p)
			}
		}
		if r.Parent == r.Name && r.Name != "" {
			v.add(e, "parent", "a reseller cannot be its own parent")
		}
	}
	if cyc := f.resellerCycle(); cyc != nil {
		v.add(entry("resellers", cyc[0], f.Resellers[cyc[0]].Name), "parent", "resellers form a cycle: %s", f.loop(cyc, func(i int) string { return f.Resellers[i].Name }))
	}

	seen = map[string]bool{}
	accounts := map[string]string{} // kind/ident/prefix → entry that has it
	for i := range f.Clients {
		c := &f.Clients[i]
		e := entry("clients", i, c.Name)
		checkName(v, e, c.Name, seen)
		if c.Reseller == "" && f.defaultReseller() == "" {
			v.add(e, "reseller", "required (the file defines no top-level reseller to default to)")
		}
		vals := c.values()
		if c.Currency == "" {
			// The reseller's, which Apply finds; any valid code lets the
			// other fields be checked here.
			vals["currency"] = "USD"
		}
		if _, problems := Clients.Validate(vals, true); len(problems) > 0 {
			for _, p := range problems {
				v.field(e, p)
			}
		}
		for j := range c.Accounts {
			a := &c.Accounts[j]
			ae := fmt.Sprintf("%s: accounts[%d]", e, j)
			in, problems := Accounts.Validate(a.values(c), true)
			for _, p := range problems {
				v.field(ae, p)
			}
			if in == nil {
				continue
			}
			if c.Status == string(ClientDeleted) {
				for _, side := range []string{"orig", "term"} {
					if in[side] == true {
						v.field(ae, errDeletedClientAccount(side))
					}
				}
			}
			key := a.Kind + "\x00" + strValue(in["ident"]) + "\x00" + a.TechPrefix
			if other, dup := accounts[key]; dup {
				v.add(ae, "", "the same kind, ident and tech_prefix as %s", other)
			}
			accounts[key] = ae
		}
	}

	f.checkCurrencies(v)
	f.checkArchivedOwners(v)

	refs := map[string]bool{}
	for i := range f.Payments {
		p := &f.Payments[i]
		e := p.entry(i)
		if p.Client == "" {
			v.add(e, "client", "required")
		}
		if p.Ref == "" {
			v.add(e, "ref", "required (payments are recorded once per client and ref)")
		} else if refs[p.Client+"\x00"+p.Ref] {
			v.add(e, "ref", "the same client and ref twice")
		}
		refs[p.Client+"\x00"+p.Ref] = true
		if _, problems := ParseTxn(p.values()); len(problems) > 0 {
			for _, pr := range problems {
				v.field(e, pr)
			}
		}
	}
}

// checkCurrencies refuses what Apply would refuse of a rate table used in
// another currency than its user's — a parent table, a reseller, a client
// (in its reseller's currency when it names none) or an account — when
// both are defined in the file; a table or reseller only the database
// holds is left to Apply.
func (f *File) checkCurrencies(v *validator) {
	tables := map[string]string{}
	for _, t := range f.RateTables {
		tables[t.Name] = t.Currency
	}
	ref := func(e, field, table, currency string) {
		if cur, ok := tables[table]; ok && table != "" && currency != "" && cur != "" && cur != currency {
			v.add(e, field, "rate table %q is in %s, not %s", table, cur, currency)
		}
	}
	for i, t := range f.RateTables {
		ref(entry("rate_tables", i, t.Name), "parent", t.Parent, t.Currency)
	}
	resellers := map[string]string{}
	for i, r := range f.Resellers {
		resellers[r.Name] = r.Currency
		e := entry("resellers", i, r.Name)
		ref(e, "orig_rate_table", r.OrigRateTable, r.Currency)
		ref(e, "term_rate_table", r.TermRateTable, r.Currency)
	}
	for i := range f.Clients {
		c := &f.Clients[i]
		currency := c.Currency
		if currency == "" {
			currency = resellers[or(c.Reseller, f.defaultReseller())]
		}
		e := entry("clients", i, c.Name)
		ref(e, "orig_rate_table", c.OrigRateTable, currency)
		ref(e, "term_rate_table", c.TermRateTable, currency)
		for j, a := range c.Accounts {
			ae := fmt.Sprintf("%s: accounts[%d]", e, j)
			ref(ae, "orig_rate_table", a.OrigRateTable, currency)
			ref(ae, "term_rate_table", a.TermRateTable, currency)
		}
	}
}

// checkArchivedOwners refuses what Apply always refuses: a reseller or
// client that is not deleted below a reseller the file archives (status
// deleted). A deleted one below it is left to Apply: it stands when the
// database already holds it so.
func (f *File) checkArchivedOwners(v *validator) {
	archived := map[string]bool{}
	for _, r := range f.Resellers {
		archived[r.Name] = r.Status == string(ResellerDeleted)
	}
	for i, r := range f.Resellers {
		if r.Status != string(ResellerDeleted) && r.Parent != "" && archived[r.Parent] {
			v.add(entry("resellers", i, r.Name), "parent", "reseller %q is archived", r.Parent)
		}
	}
	for i, c := range f.Clients {
		if owner := or(c.Reseller, f.defaultReseller()); c.Status != string(ClientDeleted) && archived[owner] {
			v.add(entry("clients", i, c.Name), "reseller", "reseller %q is archived", owner)
		}
	}
}

func (p *Payment) entry(i int) string {
	if p.Ref != "" {
		return fmt.Sprintf("payments[%d] %q", i, p.Ref)
	}
	return fmt.Sprintf("payments[%d]", i)
}

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func optInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// values are the rate table's fields as Validate takes them; references
// by name are left out (Apply resolves them).
func (t *RateTable) values() map[string]any {
	return map[string]any{"name": t.Name, "currency": t.Currency, "notes": t.Notes, "status": string(RateTableActive)}
}

func (r *Reseller) values() map[string]any {
	return map[string]any{
		"name": r.Name, "currency": r.Currency, "status": or(r.Status, string(ResellerActive)),
		"credit_limit": or(r.CreditLimit, "0"), "unlimited": r.Unlimited,
		"invoice_template": r.InvoiceTemplate, "invoice_number_template": or(r.InvoiceNumberTemplate, string(billing.DefaultNumberTemplate)),
		"company_name": r.CompanyName, "email": r.Email,
		"address": r.Address, "tax_id": r.TaxID, "reg_id": r.RegID,
	}
}

func (c *Client) values() map[string]any {
	tags := c.Tags
	if tags == nil {
		tags = []string{}
	}
	var threshold any
	if c.LowBalanceThreshold != "" {
		threshold = c.LowBalanceThreshold
	}
	return map[string]any{
		"name": c.Name, "currency": c.Currency, "timezone": or(c.Timezone, "UTC"),
		"status": or(c.Status, string(ClientActive)), "tags": tags, "bill_by": or(c.BillBy, "disconnect"),
		"hidden_digits": int64(c.HiddenDigits), "credit_limit": or(c.CreditLimit, "0"), "unlimited": c.Unlimited,
		"routing_plan": c.RoutingPlan, "orig_capacity": optInt(c.OrigCapacity), "term_capacity": optInt(c.TermCapacity),
		"vendor_credit_limit": or(c.VendorCreditLimit, "0"), "notify_client": c.NotifyClient, "notify_admin": c.NotifyAdmin,
		"low_balance_threshold": threshold, "capacity_under_threshold": optInt(c.CapacityUnderThreshold),
		"invoice_template": c.InvoiceTemplate, "autoinvoice": c.Autoinvoice, "company_name": c.CompanyName,
		"email_main": c.EmailMain, "email_noc": c.EmailNOC, "email_billing": c.EmailBilling, "email_rates": c.EmailRates,
		"address": c.Address, "zip": c.Zip, "tax_id": c.TaxID, "reg_id": c.RegID,
		"account_details": c.AccountDetails, "locale": or(c.Locale, "en"),
		"invoice_rounding": or(c.InvoiceRounding, billing.RoundThenSum), "invoice_precision": optInt(c.InvoicePrecision),
	}
}

// values are the account's fields; orig defaults to off when its client
// is deleted (a deleted client's accounts stay off).
func (a *Account) values(c *Client) map[string]any {
	orig, term := c.Status != string(ClientDeleted), false
	if a.Orig != nil {
		orig = *a.Orig
	}
	if a.Term != nil {
		term = *a.Term
	}
	return map[string]any{
		"client_id": int64(1), // Apply's; Validate needs one
		"kind":      a.Kind, "ident": a.Ident, "tech_prefix": a.TechPrefix,
		"orig": orig, "term": term, "status": or(a.Status, string(AccountActive)),
	}
}

func (p *Payment) values() map[string]any {
	vals := map[string]any{"kind": string(TxnPayment), "amount": p.Amount, "currency": p.Currency, "at": p.At, "notes": p.Notes}
	if p.Ref != "" {
		vals["ref"] = p.Ref
	}
	return vals
}

// defaultReseller is the reseller of clients that name none: the file's
// first reseller without a parent.
func (f *File) defaultReseller() string {
	for _, r := range f.Resellers {
		if r.Parent == "" {
			return r.Name
		}
	}
	return ""
}

// rateTableCycle returns the indexes of rate tables whose parents named in
// the file loop, starting with the first of them in file order, or nil.
func (f *File) rateTableCycle() []int {
	parent := make([]string, len(f.RateTables))
	for i, t := range f.RateTables {
		parent[i] = t.Parent
	}
	return cycle(len(f.RateTables), func(i int) string { return f.RateTables[i].Name }, parent)
}

// resellerCycle is rateTableCycle for resellers.
func (f *File) resellerCycle() []int {
	parent := make([]string, len(f.Resellers))
	for i, r := range f.Resellers {
		parent[i] = r.Parent
	}
	return cycle(len(f.Resellers), func(i int) string { return f.Resellers[i].Name }, parent)
}

// cycle finds a loop of parents among n named entries (a name's own
// parent is reported elsewhere).
func cycle(n int, name func(int) string, parent []string) []int {
	index := map[string]int{}
	for i := range n {
		index[name(i)] = i
	}
	for start := range n {
		var path []int
		onPath := map[int]int{}
		for i := start; ; {
			if at, ok := onPath[i]; ok {
				loop := path[at:]
				if len(loop) < 2 {
					break // its own parent
				}
				first := 0
				for k := range loop { // start with the first in file order
					if loop[k] < loop[first] {
						first = k
					}
				}
				return append(append([]int{}, loop[first:]...), loop[:first]...)
			}
			onPath[i] = len(path)
			path = append(path, i)
			p, ok := index[parent[i]]
			if !ok || parent[i] == "" {
				break
			}
			i = p
		}
	}
	return nil
}

// loop writes a cycle of entries as "a → b → a".
func (f *File) loop(idx []int, name func(int) string) string {
	parts := make([]string, 0, len(idx)+1)
	for _, i := range idx {
		parts = append(parts, fmt.Sprintf("%q", name(i)))
	}
	parts = append(parts, fmt.Sprintf("%q", name(idx[0])))
	return strings.Join(parts, " → ")
}

// readDeck parses the deck CSV of t, named relative to the catalog file,
// and checks every row it can without the database.
func (f *File) readDeck(t *RateTable) error {
	path := t.Deck
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(f.Path), t.Deck)
	}
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("deck: %w", err)
	}
	defer fh.Close()
	rows, err := codedeck.ParseCSV(fh)
	if err != nil {
		rej, ok := ParseDeckError(err)
		if !ok {
			return fmt.Errorf("deck %s: %w", t.Deck, err)
		}
		t.rejected = rej
	}
	bad := map[int]bool{}
	for _, r := range t.rejected {
		bad[r.Line] = true
	}
	good := rows[:0]
	for i := range rows {
		r := &rows[i]
		if reason := CheckRateRow(r); reason != "" {
			if !bad[r.Line] {
				bad[r.Line] = true
				t.rejected = append(t.rejected, RejectedRow{Line: r.Line, Reason: reason})
			}
			continue
		}
		good = append(good, *r)
	}
	sort.SliceStable(t.rejected, func(i, j int) bool { return t.rejected[i].Line < t.rejected[j].Line })
	t.rows = good
	return nil
}

// deckProblem lists the first rejected lines of a deck in one problem.
func deckProblem(deck string, rejected []RejectedRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "deck %s: ", deck)
	for i, r := range rejected {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(rejected)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		if r.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", r.Line)
		}
		b.WriteString(r.Reason)
	}
	return b.String()
}

func checkName(v *validator, e, name string, seen map[string]bool) {
	if seen[name] && strings.TrimSpace(name) != "" {
		v.add(e, "name", "defined twice")
	}
	seen[name] = true
}

// RateCount returns the number of rates (one per code) in the table's deck.
func (t *RateTable) RateCount() int { return len(t.rows) }

// yamlProblem shortens a yaml.v3 error to "line N: what".
func yamlProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:")
	return strings.Join(strings.Fields(msg), " ")
}
