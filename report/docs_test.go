package report_test

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestQueryingXDRsDoc runs every sql block of docs/querying-xdrs.md, as
// written, against the fixed data set (names synced as a worker would),
// and checks each returns rows.
func TestQueryingXDRsDoc(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.reports.SyncNames(ctx, 0); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/querying-xdrs.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```sql\n")[1:]
	if len(blocks) < 10 {
		t.Fatalf("found %d sql blocks", len(blocks))
	}
	for _, b := range blocks {
		query := strings.TrimSpace(b[:strings.Index(b, "```")])
		rows, err := f.db.CH.Query(ctx, query)
		if err != nil {
			t.Errorf("%s\n: %v", query, err)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s\n: %v", query, err)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("%s\n: no rows", query)
		}
	}
}
