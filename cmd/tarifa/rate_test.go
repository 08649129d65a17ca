package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
