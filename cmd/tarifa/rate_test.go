package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tarifa/tarifa/catalog"
	"github.com/tarifa/tarifa/codedeck"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// buildTarifa builds the real binary into a temporary directory.
func buildTarifa(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tarifa")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("%s differs (run with -update to accept):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestRateEndToEnd(t *testing.T) {
	bin := buildTarifa(t)
	out, stderr, code := runBin(t, bin, "rate", "--deck", "testdata/deck.csv", "--profiles", "testdata/profiles.json",
		"--timezone", "Europe/London", "--in", "testdata/cdrs.jsonl")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "cdrs.golden.jsonl", out)

	// --out and --bill-by setup: c3 was set up in February.
	outPath := filepath.Join(t.TempDir(), "out.jsonl")
	if _, stderr, code := runBin(t, bin, "rate", "--deck", "testdata/deck.csv", "--profiles", "testdata/profiles.json",
		"--bill-by", "setup", "--in", "testdata/cdrs.jsonl", "--out", outPath); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(outPath)
	golden(t, "cdrs.setup.golden.jsonl", string(b))
}

func TestRateBadDeck(t *testing.T) {
	bin := buildTarifa(t)
	out, stderr, code := runBin(t, bin, "rate", "--deck", "testdata/bad.csv", "--in", "testdata/cdrs.jsonl")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, output %q", code, out)
	}
	for _, want := range []string{"line 3: min_volume must be at least 1", `line 4: code: "4x" is not digits`} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("stderr %q lacks %q", stderr, want)
		}
	}
	if _, _, code := runBin(t, bin, "rate", "--in", "testdata/cdrs.jsonl"); code != 2 {
		t.Fatalf("no --deck: exit %d", code)
	}
}

func TestQuoteEndToEnd(t *testing.T) {
	bin := buildTarifa(t)
	out, stderr, code := runBin(t, bin, "quote", "--deck", "testdata/deck.csv", "--profiles", "testdata/profiles.json",
		"--number", "+447700900123", "--duration", "61", "--at", "2024-02-15T09:30:00Z", "--timezone", "Europe/London")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "quote.golden.txt", out)
	if _, _, code := runBin(t, bin, "quote", "--deck", "testdata/deck.csv", "--number", "33", "--duration", "1m"); code != 1 {
		t.Fatalf("unknown destination: exit %d", code)
	}
}

// TestRateStream rates many lines through the pipeline with several workers
// and checks order and the blank-line rule.
func TestRateStream(t *testing.T) {
	deck, err := loadDeck("testdata/deck.csv", "testdata/profiles.json")
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for i := 0; i < 10000; i++ {
		in.WriteString(`{"id":"` + string(rune('a'+i%26)) + `","setup_time":"2024-02-15T10:00:00Z","disconnect_time":"2024-02-15T10:00:02Z","dst":"44"}` + "\n\n")
	}
	in.WriteString(strings.Repeat("x", maxLineBytes+10) + "\n")
	var out bytes.Buffer
	o := &offlineRater{deck: deck}
	if err := o.stream(t.Context(), &in, &out, 3); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 10001 {
		t.Fatalf("got %d lines", len(lines))
	}
	for i := 0; i < 10000; i++ {
		if !strings.HasPrefix(lines[i], `{"id":"`+string(rune('a'+i%26))+`","status":"rated"`) {
			t.Fatalf("line %d: %s", i, lines[i])
		}
	}
	if !strings.Contains(lines[10000], "line longer than") {
		t.Fatalf("last line: %s", lines[10000])
	}
}

// TestRateSkipsByteOrderMark: a file saved with a UTF-8 byte-order mark
// rates its first CDR like the others (the mark is no part of it).
func TestRateSkipsByteOrderMark(t *testing.T) {
	deck, err := loadDeck("testdata/deck.csv", "testdata/profiles.json")
	if err != nil {
		t.Fatal(err)
	}
	line := `{"id":"c1","setup_time":"2024-02-15T10:00:00Z","disconnect_time":"2024-02-15T10:00:02Z","dst":"44"}` + "\n"
	var out bytes.Buffer
	if err := (&offlineRater{deck: deck}).stream(t.Context(), strings.NewReader("\uFEFF"+line+line), &out, 1); err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, `{"id":"c1","status":"rated"`) {
			t.Errorf("line %d: %s", i+1, l)
		}
	}
}

// TestDemoProfilesShipped: every demo deck loads with the shipped
// deploy/demo/profiles.json, which holds exactly the demo catalog's time
// profiles (so `tarifa rate` and `quote` price them as the worker does).
func TestDemoProfilesShipped(t *testing.T) {
	const profiles = "../../deploy/demo/profiles.json"
	decks, _ := filepath.Glob("../../deploy/demo/decks/*.csv")
	if len(decks) != 5 {
		t.Fatalf("%d demo decks", len(decks))
	}
	for _, d := range decks {
		if _, err := loadDeck(d, profiles); err != nil {
			t.Errorf("%v", err)
		}
	}
	f, err := catalog.Load("../../deploy/demo/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(profiles)
	if err != nil {
		t.Fatal(err)
	}
	var shipped map[string][]codedeck.Window
	if err := json.Unmarshal(b, &shipped); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shipped, f.TimeProfiles) {
		t.Errorf("%s = %v, the demo catalog's time_profiles = %v", profiles, shipped, f.TimeProfiles)
	}
}
