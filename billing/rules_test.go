package billing

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func date(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// TestWorkedExample is DOMAIN.md's: lines 0.0050, 7.1144, 5.1144, 3.1144
// with VAT 21 %.
func TestWorkedExample(t *testing.T) {
	lines := []decimal.Decimal{dec("0.0050"), dec("7.1144"), dec("5.1144"), dec("3.1144")}
	f := func(rounding, mode, net, tax, total string) {
		t.Helper()
		got := ComputeTotals(lines, rounding, 2, &TaxProfile{Name: "eu-vat", Mode: mode, Taxes: []Tax{{Name: "VAT", Percent: dec("21")}}})
		if money(got.Net, 2) != net || len(got.Taxes) != 1 || money(got.Taxes[0].Amount, 2) != tax || money(got.Total, 2) != total {
			t.Errorf("%s + %s: net %s tax %v total %s; want %s / %s / %s", rounding, mode, got.Net, got.Taxes, got.Total, net, tax, total)
		}
	}
	f(RoundThenSum, PercentOfTotal, "15.34", "3.22", "18.56")
	f(SumThenRound, SumOfItems, "15.35", "3.22", "18.57")
	// and the two other pairings
	f(RoundThenSum, SumOfItems, "15.34", "3.22", "18.56")
	f(SumThenRound, PercentOfTotal, "15.35", "3.22", "18.57")
}

func TestTotalsRounding(t *testing.T) {
	f := func(lines []string, rounding string, p int, profile *TaxProfile, want string) {
		t.Helper()
		var ds []decimal.Decimal
		for _, l := range lines {
			ds = append(ds, dec(l))
		}
		got := ComputeTotals(ds, rounding, p, profile)
		var b strings.Builder
		b.WriteString(money(got.Net, p))
		for _, x := range got.Taxes {
			b.WriteString(" " + x.Name + "=" + money(x.Amount, p))
		}
		b.WriteString(" " + money(got.Total, p))
		if b.String() != want {
			t.Errorf("%v %s p%d: %s, want %s", lines, rounding, p, b.String(), want)
		}
	}
	// half away from zero, both signs (a correction may be negative)
	f([]string{"0.005"}, RoundThenSum, 2, nil, "0.01 0.01")
	f([]string{"-0.005"}, RoundThenSum, 2, nil, "-0.01 -0.01")
	f([]string{"0.004999"}, RoundThenSum, 2, nil, "0.00 0.00")
	// three lines of a third of a cent: 0 rounded one by one, 0.01 summed first
	f([]string{"0.003333", "0.003333", "0.003334"}, RoundThenSum, 2, nil, "0.00 0.00")
	f([]string{"0.003333", "0.003333", "0.003334"}, SumThenRound, 2, nil, "0.01 0.01")
	// JPY has no decimals; KWD three
	f([]string{"100.5", "0.49"}, SumThenRound, Precision("JPY"), nil, "101 101")
	f([]string{"1.2345"}, RoundThenSum, Precision("KWD"), nil, "1.235 1.235")
	// two taxes, each rounded on its own
	two := &TaxProfile{Name: "two", Mode: PercentOfTotal, Taxes: []Tax{{Name: "GST", Percent: dec("5")}, {Name: "QST", Percent: dec("9.975")}}}
	f([]string{"10.01"}, RoundThenSum, 2, two, "10.01 GST=0.50 QST=1.00 11.51")
}

func TestPrecision(t *testing.T) {
	for cur, want := range map[string]int{"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3, "XYZ": 2} {
		if got := Precision(cur); got != want {
			t.Errorf("Precision(%s) = %d, want %d", cur, got, want)
		}
	}
}

func TestPeriods(t *testing.T) {
	f := func(terms PaymentTerms, day, from, to string) {
		t.Helper()
		if err := terms.Validate(); err != nil {
			t.Fatal(err)
		}
		gf, gt := terms.PeriodAt(date(day))
		if gf.String() != from || gt.String() != to {
			t.Errorf("%+v at %s: [%s, %s), want [%s, %s)", terms, day, gf, gt, from, to)
		}
	}
	m1 := PaymentTerms{Name: "m1", Period: PeriodMonthly, Day: 1}
	f(m1, "2024-03-01", "2024-03-01", "2024-04-01")
	f(m1, "2024-03-31", "2024-03-01", "2024-04-01")
	f(m1, "2024-12-15", "2024-12-01", "2025-01-01")
	m15 := PaymentTerms{Name: "m15", Period: PeriodMonthly, Day: 15}
	f(m15, "2024-03-14", "2024-02-15", "2024-03-15")
	f(m15, "2024-03-15", "2024-03-15", "2024-04-15")
	f(m15, "2024-01-02", "2023-12-15", "2024-01-15")
	m28 := PaymentTerms{Name: "m28", Period: PeriodMonthly, Day: 28}
	f(m28, "2024-02-29", "2024-02-28", "2024-03-28") // leap day
	wMon := PaymentTerms{Name: "w", Period: PeriodWeekly, Weekday: "mon"}
	f(wMon, "2024-03-04", "2024-03-04", "2024-03-11") // a Monday
	f(wMon, "2024-03-10", "2024-03-04", "2024-03-11") // a Sunday
	wSun := PaymentTerms{Name: "w", Period: PeriodWeekly, Weekday: "sun"}
	f(wSun, "2024-03-10", "2024-03-10", "2024-03-17")
	f(wSun, "2024-03-09", "2024-03-03", "2024-03-10")
	d14 := PaymentTerms{Name: "d", Period: PeriodDays, Every: 14, Anchor: date("2024-01-01")}
	f(d14, "2024-01-01", "2024-01-01", "2024-01-15")
	f(d14, "2024-01-20", "2024-01-15", "2024-01-29")
	f(d14, "2023-12-31", "2023-12-18", "2024-01-01") // before the anchor
	f(d14, "2023-12-18", "2023-12-18", "2024-01-01")
	d1 := PaymentTerms{Name: "d", Period: PeriodDays, Every: 1, Anchor: date("2000-01-01")}
	f(d1, "2024-03-31", "2024-03-31", "2024-04-01")
}

// TestClosedPeriodsInTimezone: a period closes at midnight of the
// client's day after it, DST included; a client east of UTC sees its March
// close while it is still March in UTC (Lago's double invoices).
func TestClosedPeriodsInTimezone(t *testing.T) {
	m1 := PaymentTerms{Name: "m1", Period: PeriodMonthly, Day: 1}
	load := func(name string) *time.Location {
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	f := func(tz, at string, start string, want string) {
		t.Helper()
		when, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range m1.ClosedPeriods(date(start), when, load(tz), 100) {
			got = append(got, p[0].String()+"/"+p[1].String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s at %s from %s: %v, want %s", tz, at, start, got, want)
		}
	}
	// London's April starts at 2024-03-31T23:00Z (BST)
	f("Europe/London", "2024-03-31T22:59:59Z", "2024-03-01", "")
	f("Europe/London", "2024-03-31T23:00:00Z", "2024-03-01", "2024-03-01/2024-04-01")
	// New York's April starts at 04:00Z (EDT since March 10)
	f("America/New_York", "2024-04-01T03:59:59Z", "2024-03-01", "")
	f("America/New_York", "2024-04-01T04:00:00Z", "2024-03-01", "2024-03-01/2024-04-01")
	// Tokyo's April starts at 2024-03-31T15:00Z
	f("Asia/Tokyo", "2024-03-31T15:00:00Z", "2024-03-01", "2024-03-01/2024-04-01")
	f("UTC", "2024-03-31T15:00:00Z", "2024-03-01", "")
	// a first period that starts mid-month covers the rest of it only
	f("UTC", "2024-05-01T00:00:00Z", "2024-03-17", "2024-03-17/2024-04-01 2024-04-01/2024-05-01")
	// the London March is 743 hours long (the clocks go forward)
	from, to := date("2024-03-01").Start(load("Europe/London")), date("2024-04-01").Start(load("Europe/London"))
	if h := to.Sub(from).Hours(); h != 743 {
		t.Errorf("London March %v hours", h)
	}
}

func TestTermsValidate(t *testing.T) {
	f := func(terms PaymentTerms, field string) {
		t.Helper()
		err := terms.Validate()
		fe, ok := err.(*FieldError)
		if field == "" {
			if err != nil {
				t.Errorf("%+v: %v", terms, err)
			}
			return
		}
		if !ok || fe.Field != field {
			t.Errorf("%+v: %v, want an error on %s", terms, err, field)
		}
	}
	f(PaymentTerms{Name: "ok", Period: PeriodMonthly, Day: 1, DueDays: 15}, "")
	f(PaymentTerms{Name: " ", Period: PeriodMonthly, Day: 1}, "name")
	f(PaymentTerms{Name: "x", Period: PeriodMonthly, Day: 29}, "day")
	f(PaymentTerms{Name: "x", Period: PeriodMonthly, Day: 0}, "day")
	f(PaymentTerms{Name: "x", Period: PeriodMonthly, Day: 1, Weekday: "mon"}, "period")
	f(PaymentTerms{Name: "x", Period: PeriodWeekly, Weekday: "monday"}, "weekday")
	f(PaymentTerms{Name: "x", Period: PeriodWeekly, Weekday: "fri"}, "")
	f(PaymentTerms{Name: "x", Period: PeriodDays, Every: 14}, "anchor")
	f(PaymentTerms{Name: "x", Period: PeriodDays, Every: 0, Anchor: date("2024-01-01")}, "every")
	f(PaymentTerms{Name: "x", Period: "semimonthly"}, "period")
	f(PaymentTerms{Name: "x", Period: PeriodMonthly, Day: 1, DueDays: -1}, "due_days")
}

func TestTaxProfileValidate(t *testing.T) {
	f := func(p TaxProfile, field string) {
		t.Helper()
		err := p.Validate()
		fe, ok := err.(*FieldError)
		if field == "" {
			if err != nil {
				t.Errorf("%+v: %v", p, err)
			}
			return
		}
		if !ok || fe.Field != field {
			t.Errorf("%+v: %v, want an error on %s", p, err, field)
		}
	}
	vat := []Tax{{Name: "VAT", Percent: dec("21")}}
	f(TaxProfile{Name: "eu", Mode: PercentOfTotal, Taxes: vat}, "")
	f(TaxProfile{Name: "none", Mode: SumOfItems}, "")
	f(TaxProfile{Name: "eu", Mode: "per_line", Taxes: vat}, "mode")
	f(TaxProfile{Name: "eu", Mode: PercentOfTotal, Taxes: []Tax{{Name: "VAT", Percent: dec("101")}}}, "taxes[0].percent")
	f(TaxProfile{Name: "eu", Mode: PercentOfTotal, Taxes: []Tax{{Name: "VAT", Percent: dec("-1")}}}, "taxes[0].percent")
	f(TaxProfile{Name: "eu", Mode: PercentOfTotal, Taxes: []Tax{{Name: "VAT", Percent: dec("9.99999")}}}, "taxes[0].percent")
	f(TaxProfile{Name: "eu", Mode: PercentOfTotal, Taxes: []Tax{{Name: "", Percent: dec("1")}}}, "taxes[0].name")
	f(TaxProfile{Name: "eu", Mode: PercentOfTotal, Taxes: []Tax{{Name: "A", Percent: dec("1")}, {Name: "A", Percent: dec("2")}}}, "taxes[1].name")
}

func TestNumberTemplate(t *testing.T) {
	issued := time.Date(2024, 4, 2, 10, 0, 0, 0, time.UTC)
	f := func(tpl string, n int64, want string) {
		t.Helper()
		if err := NumberTemplate(tpl).Validate(); err != nil {
			t.Fatalf("%s: %v", tpl, err)
		}
		if got := NumberTemplate(tpl).Format(n, issued); got != want {
			t.Errorf("%s #%d: %s, want %s", tpl, n, got, want)
		}
	}
	f("{n}", 7, "7")
	f("ACME-{yyyy}-{n:5}", 41, "ACME-2024-00041")
	f("{yyyy}{mm}/{n:3}", 1234, "202404/1234") // wider than the pad: whole
	f("INV {n:1}", 0, "INV 0")
	bad := func(tpl, want string) {
		t.Helper()
		err := NumberTemplate(tpl).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", tpl, err, want)
		}
	}
	bad("", "required")
	bad("INV-{yyyy}", "exactly once")
	bad("{n}-{n}", "exactly once")
	bad("{n:0}", "width")
	bad("{n:x}", "width")
	bad("{dd}-{n}", "unknown placeholder")
	bad("{n", "without its }")
	bad("n}", "without its {")
}
