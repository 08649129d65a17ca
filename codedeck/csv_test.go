package codedeck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func TestParseCSVCodes(t *testing.T) {
	f := func(cell string, want ...string) {
		t.Helper()
		rows, err := ParseCSV(strings.NewReader("rate,code\n0.1,\"" + cell + "\"\n"))
		if err != nil {
			t.Fatalf("%q: %v", cell, err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Code)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %v, want %v", cell, got, want)
		}
	}
	f("447", "447")
	f(" 447 ", "447")
	f("44301,44303", "44301", "44303")
	f("44301-44303", "44301", "44302", "44303")
	f("443(0-2)1", "44301", "44311", "44321")
	f("44(1,3)", "441", "443")
	f("4(1-2)(7-8)", "417", "418", "427", "428")
	f("0098-0101", "0098", "0099", "0100", "0101")
	f("1,20-21,3(4-5)", "1", "20", "21", "34", "35")
}

func TestParseCSVDefaultsAndFields(t *testing.T) {
	in := "Time_Profile,code,code_name,rate,effective_from,end_date,min_volume,interval,grace_volume,setup_fee,notes\n" +
		"business,447,UK Mobile,0.10,2024-01-01,2024-03-01T12:00:00+01:00,30,6,2,0.05,hi\n" +
		",44,UK,.02,,,,,,,\n"
	rows, err := ParseCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Line: 2, Code: "447", CodeName: "UK Mobile", Rate: decimal.RequireFromString("0.10"),
			EffectiveFrom: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2024, 3, 1, 11, 0, 0, 0, time.UTC),
			MinVolume: 30, Interval: 6, GraceVolume: 2, SetupFee: decimal.RequireFromString("0.05"), Profile: "business"},
		{Line: 3, Code: "44", CodeName: "UK", Rate: decimal.RequireFromString(".02"),
			EffectiveFrom: time.Unix(0, 0).UTC(), MinVolume: 1, Interval: 1, Profile: "all"},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows", len(rows))
	}
	for i := range want {
		g, w := rows[i], want[i]
		if !g.Rate.Equal(w.Rate) || !g.SetupFee.Equal(w.SetupFee) || !g.EffectiveFrom.Equal(w.EffectiveFrom) || !g.EndDate.Equal(w.EndDate) {
			t.Fatalf("row %d: got %+v, want %+v", i, g, w)
		}
		g.Rate, w.Rate, g.SetupFee, w.SetupFee = decimal.Zero, decimal.Zero, decimal.Zero, decimal.Zero
		g.EffectiveFrom, w.EffectiveFrom, g.EndDate, w.EndDate = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("row %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestParseCSVRejects checks every rejected row is reported with its line
// and reason while the good rows are still returned.
func TestParseCSVRejects(t *testing.T) {
	f := func(body, wantReason string) {
		t.Helper()
		in := "code,rate,effective_from,min_volume,interval,grace_volume,setup_fee,end_date,time_profile\n" +
			"1,0.1,,,,,,,\n" + body + "\n2,0.2,,,,,,,\n"
		rows, err := ParseCSV(strings.NewReader(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("%q: got %v, want a *ParseError", body, err)
		}
		if len(pe.Rows) != 1 || pe.Rows[0].Line != 3 || !strings.Contains(pe.Rows[0].Reason, wantReason) {
			t.Fatalf("%q: got %v, want line 3: …%s…", body, pe.Rows, wantReason)
		}
		if len(rows) < 2 || rows[0].Code != "1" || rows[len(rows)-1].Code != "2" {
			t.Fatalf("%q: good rows lost: %+v", body, rows)
		}
	}
	f("3,0.1,,0,,,,,", "min_volume must be at least 1")
	f("3,0.1,,,0,,,,", "interval must be at least 1")
	f("3,0.1,,,,-1,,,", "grace_volume must be at least 0")
	f("3,0.1,,x,,,,,", "min_volume")
	f("3a,0.1,,,,,,,", "not digits")
	f("3-2,0.1,,,,,,,", "runs backwards")
	f("3(1-2,0.1,,,,,,,", "parentheses")
	f("3,abc,,,,,,,", "rate")
	f("3,1e3,,,,,,,", "rate")
	f("3,0.1,,,,,-0.1,,", "setup_fee: may not be negative, got -0.1")
	f("3,1000000000,,,,,,,", "rate: must be between -999999999 and 999999999, got 1000000000")
	f("3,0.1,,,,,1000000000,,", "setup_fee: at most 999999999, got 1000000000")
	f("3,0,05,,,,,,,", "10 fields, the header has 9 (a decimal comma?")
	f("3,,,,,,,,", "rate: missing")
	f(",0.1,,,,,,,", "code: missing")
	f("3,0.1,2024-13-01,,,,,,", "effective_from")
	f("3,0.1,,,,,,yesterday,", "end_date")
	f("3,0.1,2024-02-01,,,,,2024-01-01,", "end_date must be after effective_from")
	f("3,0.1,,,,,x,,", "setup_fee")
	f("1,0.3,,,,,,,", "duplicate code 1")
}

// TestParseCSVNegativeRate: a negative rate is valid (a table that pays the
// client), down to −999,999,999.
func TestParseCSVNegativeRate(t *testing.T) {
	rows, err := ParseCSV(strings.NewReader("code,rate\n44,-0.05\n45,-999999999\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || !rows[0].Rate.Equal(decimal.RequireFromString("-0.05")) || !rows[1].Rate.Equal(decimal.NewFromInt(-999_999_999)) {
		t.Fatalf("got %+v", rows)
	}
	if _, err := Build(rows, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseCSVDuplicates(t *testing.T) {
	in := "code,rate,effective_from,time_profile\n" +
		"44,0.1,2024-01-01,\n" +
		"44,0.2,2024-01-01T00:00:00Z,all\n" + // same key: rejected
		"44,0.2,2024-01-01,business\n" + // other profile: fine
		"44,0.2,2024-02-01,\n" + // other date: fine
		"\"43,44\",0.3,2024-01-01,\n" // 44 again
	rows, err := ParseCSV(strings.NewReader(in))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	got := fmt.Sprint(pe.Rows)
	want := "[line 3: duplicate code 44 effective_from 2024-01-01T00:00:00Z time_profile all (first on line 2) " +
		"line 6: duplicate code 44 effective_from 2024-01-01T00:00:00Z time_profile all (first on line 2)]"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if len(rows) != 4 {
		t.Fatalf("got %d good rows, want 4", len(rows))
	}
}

func TestParseCSVFileErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, err := ParseCSV(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%q: got %v, want …%s…", in, err, want)
		}
	}
	f("", "line 1: empty deck")
	f("code,name\n1,x\n", "line 1: header lacks required column \"rate\"")
	f("code,rate,code\n", "twice")
	f("code,rate\n1,0.1\n\"2,0.1\n", "line 3: bad csv")
}

// TestTestdata parses testdata/*.good.csv without error and each
// *.bad.csv with exactly the error in its *.bad.err file.
func TestTestdata(t *testing.T) {
	goods, _ := filepath.Glob("testdata/*.good.csv")
	for _, name := range goods {
		b, _ := os.ReadFile(name)
		rows, err := ParseCSV(strings.NewReader(string(b)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := Build(rows, testProfiles(t)); err != nil {
			t.Errorf("%s: build: %v", name, err)
		}
	}
	bads, _ := filepath.Glob("testdata/*.bad.csv")
	for _, name := range bads {
		b, _ := os.ReadFile(name)
		want, err := os.ReadFile(strings.TrimSuffix(name, ".csv") + ".err")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ParseCSV(strings.NewReader(string(b)))
		if err == nil {
			_, err = Build(rows, testProfiles(t))
		}
		if err == nil || err.Error() != strings.TrimSpace(string(want)) {
			t.Errorf("%s: got %v\nwant %s", name, err, want)
		}
	}
	if len(goods) == 0 || len(bads) == 0 {
		t.Fatal("no testdata")
	}
}

func testProfiles(t testing.TB) *Profiles {
	p, err := ParseProfiles(strings.NewReader(`{"business": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}],
		"weekend": [{"days": "sat,sun"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzParseCSV(f *testing.F) {
	f.Add("code,rate\n44,0.1\n")
	f.Add("code,code_name,rate,effective_from,end_date,min_volume,interval,grace_volume,setup_fee,time_profile\n" +
		"\"443(0-2)1,44301-44303\",UK,0.1,2024-01-01,2024-02-01T00:00:00Z,30,6,2,0.01,business\n")
	f.Add("rate,code\n1,0-99999\n")
	f.Add("rate,code\n1,(0-9)(0-9)(0-9)(0-9)(0-9)(0-9)\n")
	f.Add("code,rate\n\"1\n2\",0.1\n1,1\n1,1\n")
	p, _ := ParseProfiles(strings.NewReader(`{"business": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}]}`))
	f.Fuzz(func(t *testing.T, in string) {
		rows, err := ParseCSV(strings.NewReader(in))
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("error of type %T", err)
		}
		for _, r := range rows {
			if !isDigits(r.Code) || len(r.Code) > MaxCodeLen || r.MinVolume < 1 || r.Interval < 1 || r.GraceVolume < 0 {
				t.Fatalf("bad row accepted: %+v", r)
			}
		}
		d, err := Build(rows, p)
		if err != nil {
			return // unknown profiles
		}
		for _, r := range rows {
			if c := d.Longest(r.Code); c == nil || c.Code != r.Code {
				t.Fatalf("code %s not found", r.Code)
			}
		}
	})
}
