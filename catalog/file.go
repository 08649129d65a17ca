package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gopkg.in/yaml.v3"

	"github.com/tarifa/tarifa/codedeck"
)

// File is a parsed and validated catalog file. Amounts and times are kept
// as written and parsed exactly (never through float64) by Load.
type File struct {
	// Path is the file as named by the caller; errors start with it and deck
	// paths are relative to its directory.
	Path string `yaml:"-"`

	TimeProfiles map[string][]codedeck.Window `yaml:"time_profiles"`
	RateTables   []RateTable                  `yaml:"rate_tables"`
	Resellers    []Reseller                   `yaml:"resellers"`
	Clients      []Client                     `yaml:"clients"`
	Payments     []Payment                    `yaml:"payments"`
	PaymentTerms []PaymentTerms               `yaml:"payment_terms"` // billing.go
	TaxProfiles  []TaxProfile                 `yaml:"tax_profiles"`
}

// RateTable is a rate table and the deck CSV that holds all its rates.
type RateTable struct {
	Name     string `yaml:"name"`
	Currency string `yaml:"currency"`
	Deck     string `yaml:"deck"`   // relative to the catalog file
	Parent   string `yaml:"parent"` // a rate table of the same currency whose codes this one extends
	Notes    string `yaml:"notes"`

	rows []codedeck.Row
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
	// InvoiceNumberTemplate is the numbering (billing.NumberTemplate);
	// default "{n}".
	InvoiceNumberTemplate string `yaml:"invoice_number_template"`
	CompanyName           string `yaml:"company_name"`
	Email                 string `yaml:"email"`
	Address               string `yaml:"address"`
	TaxID                 string `yaml:"tax_id"`
	RegID                 string `yaml:"reg_id"`

	credit decimal.Decimal
}

// Client is a paying entity, customer (orig) and vendor (term), with the
// fields of DOMAIN.md "Entities" that the file may carry. Reseller defaults
// to the file's first reseller without a parent, Currency to the
// reseller's, Timezone to UTC, Status to active, BillBy to disconnect,
// Locale to en.
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
	// The billing settings (billing.go): names of payment terms and a
	// tax profile, the rounding (default round_then_sum) and precision
	// (default the currency's) of invoices.
	PaymentTerms     string `yaml:"payment_terms"`
	TaxProfile       string `yaml:"tax_profile"`
	InvoiceRounding  string `yaml:"invoice_rounding"`
	InvoicePrecision *int   `yaml:"invoice_precision"`

	credit, vendorCredit decimal.Decimal
	threshold            *decimal.Decimal
}

// Account is how a client is recognised in a CDR. Orig defaults to on and
// Term to off; Status to active.
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

	amount decimal.Decimal
	at     time.Time
}

// Error is a catalog file that cannot be applied: every problem found, each
// naming the entry and the field.
type Error struct {
	Path     string
	Problems []string
}

func (e *Error) Error() string {
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

var (
	currencyRe    = regexp.MustCompile(`^[A-Z]{3}$`)
	profileNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	techPrefixRe  = regexp.MustCompile(`^[0-9]*#?$`)
)

// Load reads, parses and validates the catalog file at path and every deck
// it names. Unknown keys are errors (a typo must not silently drop a
// setting). References to names neither in the file nor in the database
// are found by Apply.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse is Load for the contents b of the file named path.
func Parse(path string, b []byte) (*File, error) {
	f := &File{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) /* empty file */ {
		return nil, &Error{Path: path, Problems: []string{yamlProblem(err)}}
	}
	f.Path = path
	var v validator
	f.validate(&v)
	if len(v.problems) > 0 {
		return nil, &Error{Path: path, Problems: v.problems}
	}
	return f, nil
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

func (f *File) validate(v *validator) {
	for _, name := range f.profileNames() {
		e := fmt.Sprintf("time_profiles %q", name)
		if !profileNameRe.MatchString(name) || name == codedeck.AllProfile {
			v.add(e, "", "name must be letters, digits, _ . - and not %q", codedeck.AllProfile)
			continue
		}
		if _, err := codedeck.NewProfiles(map[string][]codedeck.Window{name: f.TimeProfiles[name]}); err != nil {
			v.add(e, "", "%s", strings.TrimPrefix(err.Error(), fmt.Sprintf("time profile %q", name)+" "))
		}
	}

	seen := map[string]bool{}
	for i := range f.RateTables {
		t := &f.RateTables[i]
		e := entry("rate_tables", i, t.Name)
		checkName(v, e, t.Name, seen)
		checkCurrency(v, e, t.Currency, true)
		if t.Parent != "" && t.Parent == t.Name {
			v.add(e, "parent", "a rate table cannot be its own parent")
		}
		if t.Deck == "" {
			v.add(e, "deck", "required")
			continue
		}
		rows, err := f.readDeck(t.Deck)
		if err != nil {
			v.add(e, "", "%v", err)
			continue
		}
		t.rows = rows
	}

	// Parents named in the file must not loop (those in the database are
	// checked when the file is applied).
	parentOf := map[string]string{}
	for _, t := range f.RateTables {
		parentOf[t.Name] = t.Parent
	}
	for i, t := range f.RateTables {
		steps, p := 0, t.Parent
		for p != "" && p != t.Name && steps <= len(f.RateTables) {
			p, steps = parentOf[p], steps+1
		}
		if p == t.Name && t.Parent != t.Name {
			v.add(entry("rate_tables", i, t.Name), "parent", "rate tables form a cycle")
			break
		}
	}

	seen = map[string]bool{}
	for i := range f.Resellers {
		r := &f.Resellers[i]
		e := entry("resellers", i, r.Name)
		checkName(v, e, r.Name, seen)
		checkCurrency(v, e, r.Currency, true)
		checkEnum(v, e, "status", &r.Status, "active", "deleted")
		if r.Parent == r.Name && r.Name != "" {
			v.add(e, "parent", "a reseller cannot be its own parent")
		}
		r.credit = checkCredit(v, e, r.CreditLimit, r.Unlimited)
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
		checkCurrency(v, e, c.Currency, false)
		checkEnum(v, e, "status", &c.Status, "active", "stop", "deleted")
		checkEnum(v, e, "bill_by", &c.BillBy, "disconnect", "setup", "connect")
		if c.Timezone == "" {
			c.Timezone = "UTC"
		}
		if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "Local" {
			v.add(e, "timezone", "unknown time zone %q", c.Timezone)
		}
		for j, tag := range c.Tags {
			if strings.TrimSpace(tag) == "" {
				v.add(e, fmt.Sprintf("tags[%d]", j), "empty tag")
			}
		}
		if c.HiddenDigits < 0 || c.HiddenDigits > 20 {
			v.add(e, "hidden_digits", "must be 0 to 20, got %d", c.HiddenDigits)
		}
		c.credit = checkCredit(v, e, c.CreditLimit, c.Unlimited)
		c.vendorCredit = checkAmount(v, e, "vendor_credit_limit", c.VendorCreditLimit, false)
		if c.LowBalanceThreshold != "" {
			d := checkAmount(v, e, "low_balance_threshold", c.LowBalanceThreshold, false)
			c.threshold = &d
		}
		for _, p := range []struct {
			name string
			v    *int
		}{{"orig_capacity", c.OrigCapacity}, {"term_capacity", c.TermCapacity}, {"capacity_under_threshold", c.CapacityUnderThreshold}} {
			if p.v != nil && *p.v < 0 {
				v.add(e, p.name, "must not be negative, got %d", *p.v)
			}
		}
		if c.Locale == "" {
			c.Locale = "en"
		}
		for j := range c.Accounts {
			a := &c.Accounts[j]
			ae := fmt.Sprintf("%s: accounts[%d]", e, j)
			switch a.Kind {
			case "ip", "username", "ani":
			case "":
				v.add(ae, "kind", "required (ip, username or ani)")
			default:
				v.add(ae, "kind", "must be ip, username or ani, got %q", a.Kind)
			}
			if strings.TrimSpace(a.Ident) == "" {
				v.add(ae, "ident", "required")
			}
			if a.TechPrefix != "" {
				if a.Kind != "ip" {
					v.add(ae, "tech_prefix", "only ip accounts have a tech prefix")
				} else if !techPrefixRe.MatchString(a.TechPrefix) || a.TechPrefix == "#" {
					v.add(ae, "tech_prefix", "must be digits, optionally ending in #, got %q", a.TechPrefix)
				}
			}
			checkEnum(v, ae, "status", &a.Status, "active", "inactive")
			key := a.Kind + "\x00" + a.Ident + "\x00" + a.TechPrefix
			if other, dup := accounts[key]; dup {
				v.add(ae, "", "the same kind, ident and tech_prefix as %s", other)
			}
			accounts[key] = ae
		}
	}

	f.validateBilling(v)

	refs := map[string]bool{}
	for i := range f.Payments {
		p := &f.Payments[i]
		e := fmt.Sprintf("payments[%d]", i)
		if p.Ref != "" {
			e = fmt.Sprintf("payments[%d] %q", i, p.Ref)
		}
		if p.Client == "" {
			v.add(e, "client", "required")
		}
		if p.Ref == "" {
			v.add(e, "ref", "required (payments are recorded once per client and ref)")
		} else if refs[p.Client+"\x00"+p.Ref] {
			v.add(e, "ref", "the same client and ref twice")
		}
		refs[p.Client+"\x00"+p.Ref] = true
		n := len(v.problems)
		p.amount = checkAmount(v, e, "amount", p.Amount, true)
		if len(v.problems) == n && p.amount.Sign() <= 0 {
			v.add(e, "amount", "must be positive, got %s", p.Amount)
		}
		checkCurrency(v, e, p.Currency, false)
		if p.At != "" {
			t, err := parseTime(p.At)
			if err != nil {
				v.add(e, "at", "%q is not RFC 3339 or YYYY-MM-DD", p.At)
			}
			p.at = t
		}
	}
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

// readDeck parses a deck CSV named relative to the catalog file.
func (f *File) readDeck(name string) ([]codedeck.Row, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(f.Path), name)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("deck: %w", err)
	}
	defer fh.Close()
	rows, err := codedeck.ParseCSV(fh)
	if err != nil {
		var pe *codedeck.ParseError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("deck %s: %w", name, err)
		}
		var b strings.Builder
		for i, r := range pe.Rows {
			if i == 5 {
				fmt.Fprintf(&b, "; and %d more", len(pe.Rows)-i)
				break
			}
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(r.String())
		}
		return nil, fmt.Errorf("deck %s: %s", name, b.String())
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("deck %s: no rates", name)
	}
	return rows, nil
}

func checkName(v *validator, e, name string, seen map[string]bool) {
	switch {
	case strings.TrimSpace(name) == "":
		v.add(e, "name", "required")
	case seen[name]:
		v.add(e, "name", "defined twice")
	}
	seen[name] = true
}

func checkCurrency(v *validator, e, cur string, required bool) {
	if cur == "" {
		if required {
			v.add(e, "currency", "required (three capital letters, such as USD)")
		}
		return
	}
	if !currencyRe.MatchString(cur) {
		v.add(e, "currency", "must be three capital letters such as USD, got %q", cur)
	}
}

// checkEnum checks *val against the allowed values, the first being the
// default for an empty value.
func checkEnum(v *validator, e, field string, val *string, allowed ...string) {
	if *val == "" {
		*val = allowed[0]
		return
	}
	for _, a := range allowed {
		if *val == a {
			return
		}
	}
	v.add(e, field, "must be one of %s, got %q", strings.Join(allowed, ", "), *val)
}

func checkCredit(v *validator, e, credit string, unlimited bool) decimal.Decimal {
	if credit != "" && unlimited {
		v.add(e, "credit_limit", "not allowed with unlimited: true (postpaid has no limit)")
	}
	return checkAmount(v, e, "credit_limit", credit, false)
}

// checkAmount parses a non-negative exact decimal; empty is zero unless
// required.
func checkAmount(v *validator, e, field, s string, required bool) decimal.Decimal {
	if s == "" {
		if required {
			v.add(e, field, "required")
		}
		return decimal.Zero
	}
	d, err := decimal.NewFromString(s)
	if err != nil || strings.ContainsAny(s, "eE") {
		v.add(e, field, "%q is not a decimal number", s)
		return decimal.Zero
	}
	if d.Sign() < 0 {
		v.add(e, field, "must not be negative, got %s", s)
	}
	return d
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// RateCount returns the number of rates (one per code) in the table's deck.
func (t *RateTable) RateCount() int { return len(t.rows) }

// yamlProblem shortens a yaml.v3 error to "line N: what".
func yamlProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:")
	return strings.Join(strings.Fields(msg), " ")
}
