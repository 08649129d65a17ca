package report_test

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/tarifa/tarifa/report"
)

// TestCSVDefusesFormulas: a name or number that a spreadsheet would run
// as a formula (a client, a code name or an ANI anyone placing a call can
// set) is written behind a quote; numbers, negative amounts and the "-" of
// calls without a vendor are written as they are.
func TestCSVDefusesFormulas(t *testing.T) {
	tab := &report.Table{
		Columns: []report.Column{{Name: "name"}, {Name: "amount", Kind: report.Decimal}},
		Rows: [][]string{
			{`=HYPERLINK("http://evil.example","Pay here")`, "-0.330000"},
			{"+cmd|' /C calc'!A0", "+12"},
			{"@SUM(A1:A2)", "0.5"},
			{"-2+3", "-7"},
			{"\t=1+1", ""},
			{"-", "1"},
			{"UK Mobile", "-1.25"},
		},
	}
	var b bytes.Buffer
	if err := tab.Render(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	got, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"name", "amount"},
		{`'=HYPERLINK("http://evil.example","Pay here")`, "-0.330000"},
		{"'+cmd|' /C calc'!A0", "+12"},
		{"'@SUM(A1:A2)", "0.5"},
		{"'-2+3", "-7"},
		{"'\t=1+1", ""},
		{"-", "1"},
		{"UK Mobile", "-1.25"},
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Errorf("row %d column %d: %q, want %q", i, j, got[i][j], want[i][j])
			}
		}
	}
}
