package catalog

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

var update = flag.Bool("update", false, "rewrite the .bad.err files of testdata/check and testdata/apply from what the code answers")

// TestCheckAndApplyAgree: every testdata/check/*.bad.yaml is refused by
// Load (what `tarifa catalog check` runs, without a database) with the
// error of its .bad.err file, and a file with the same problem given to
// Apply without Load's checks is refused by the write path itself with the
// same error: there is one validation, and check runs all of it that needs
// no database. Every *.good.yaml passes both, and applies twice without a
// change the second time.
func TestCheckAndApplyAgree(t *testing.T) {
	t.Parallel()
	db := sinktest.New(t)
	bad, _ := filepath.Glob("testdata/check/*.bad.yaml")
	good, _ := filepath.Glob("testdata/check/*.good.yaml")
	if len(bad) < 20 || len(good) < 3 {
		t.Fatalf("%d bad and %d good fixtures", len(bad), len(good))
	}
	for _, path := range bad {
		want := expected(t, path, func() string { return errText(loadErr(path), path) })
		if got := errText(loadErr(path), path); got != want {
			t.Errorf("check %s:\n got: %s\nwant: %s", path, got, want)
		}
		// The same file, unchecked, into the catalog: a refused apply
		// writes nothing, so every bad file meets an empty one.
		if got := errText(applyUnchecked(t, db, path), path); got != want {
			t.Errorf("apply %s:\n got: %s\nwant: %s", path, got, want)
		}
	}
	for _, path := range good {
		f, err := Load(path)
		if err != nil {
			t.Errorf("check %s: %v", path, err)
			continue
		}
		for i := range 2 {
			rep, err := Apply(context.Background(), db.PG, f, Options{})
			switch {
			case err != nil:
				t.Errorf("apply %s: %v", path, err)
			case i == 1 && rep.Changed():
				var b strings.Builder
				_ = rep.Write(&b)
				t.Errorf("apply %s again changed something:\n%s", path, b.String())
			}
		}
	}
}

// TestApplyNeedsTheDatabase: the testdata/apply/*.bad.yaml files pass
// check (their problem needs the database) and Apply refuses each with the
// error of its .bad.err file.
func TestApplyNeedsTheDatabase(t *testing.T) {
	t.Parallel()
	bad, _ := filepath.Glob("testdata/apply/*.bad.yaml")
	if len(bad) < 4 {
		t.Fatalf("%d fixtures", len(bad))
	}
	for _, path := range bad {
		f, err := Load(path)
		if err != nil {
			t.Errorf("check %s: %v (its problem needs the database)", path, err)
			continue
		}
		db := sinktest.New(t)
		want := expected(t, path, func() string {
			_, err := Apply(context.Background(), db.PG, f, Options{})
			return errText(err, path)
		})
		_, err = Apply(context.Background(), db.PG, f, Options{})
		if got := errText(err, path); got != want {
			t.Errorf("apply %s:\n got: %s\nwant: %s", path, got, want)
		}
	}
}

func loadErr(path string) error {
	_, err := Load(path)
	return err
}

// applyUnchecked parses path without Load's checks and applies it.
func applyUnchecked(t *testing.T, db *sinktest.DB, path string) error {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parse(path, b)
	if err != nil {
		return err
	}
	_, err = Apply(context.Background(), db.PG, f, Options{})
	return err
}

// errText is err's message without the file's path in front.
func errText(err error, path string) string {
	if err == nil {
		return "<nil>"
	}
	return strings.TrimPrefix(err.Error(), path+": ")
}

// expected reads the .bad.err file of path; with -update it writes what
// got returns there first.
func expected(t *testing.T, path string, got func() string) string {
	t.Helper()
	errPath := strings.TrimSuffix(path, ".yaml") + ".err"
	if *update {
		if err := os.WriteFile(errPath, []byte(got()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(errPath)
	if err != nil {
		t.Fatalf("%s: %v (run with -update to write it)", path, err)
	}
	return strings.TrimSuffix(string(b), "\n")
}
