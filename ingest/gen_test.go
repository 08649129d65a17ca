package ingest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func genFixture() ([]GenOrig, []GenTerm) {
	origs := []GenOrig{
		{SrcIP: "203.0.113.10", Codes: []string{"44", "447", "4420"}},
		{SrcIP: "203.0.113.11", TechPrefix: "7788#", Codes: []string{"1201", "1202"}},
		{SrcUser: "acme-trunk", Codes: []string{"33", "336"}},
		{ANI: "15551234567", Codes: []string{"49"}},
	}
	terms := []GenTerm{{TermIP: "198.51.100.7"}, {TermUser: "beta-term"}}
	return origs, terms
}

func genConfig(seed uint64, n int) GenConfig {
	return GenConfig{Seed: seed, Count: n, Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Span: time.Hour,
		Dup: 0.01, Malformed: 0.002, Unknown: 0.01}
}

func generate(t *testing.T, cfg GenConfig) (lines [][]byte, kinds []GenKind, keys []string) {
	t.Helper()
	origs, terms := genFixture()
	g, err := NewGenerator(cfg, origs, terms)
	if err != nil {
		t.Fatal(err)
	}
	for range cfg.Count {
		line, key, kind := g.Next()
		lines = append(lines, bytes.Clone(line))
		kinds = append(kinds, kind)
		keys = append(keys, string(key))
	}
	return lines, kinds, keys
}

func TestGeneratorDeterministic(t *testing.T) {
	t.Parallel()
	a, _, _ := generate(t, genConfig(7, 2000))
	b, _, _ := generate(t, genConfig(7, 2000))
	c, _, _ := generate(t, genConfig(8, 2000))
	if !bytes.Equal(bytes.Join(a, nil), bytes.Join(b, nil)) {
		t.Error("the same seed generated different CDRs")
	}
	if bytes.Equal(bytes.Join(a, nil), bytes.Join(c, nil)) {
		t.Error("different seeds generated the same CDRs")
	}
}

func TestGeneratorTraffic(t *testing.T) {
	t.Parallel()
	const n = 40000
	cfg := genConfig(42, n)
	lines, kinds, keys := generate(t, cfg)

	ids := map[string]bool{}
	seen := map[string]bool{}
	var calls, dups, malformed, answered, short, techPrefixed, unknownDst, noTerm int
	var answeredDur time.Duration
	var c CDR
	for i, line := range lines {
		switch kinds[i] {
		case GenDuplicate:
			dups++
			if !seen[string(line)] {
				t.Fatalf("duplicate %s is not an earlier line", line)
			}
			continue
		case GenMalformed:
			malformed++
			err := Decode(line, &c)
			if _, digits := NormalizeNumber(c.Dst); err == nil && digits {
				t.Errorf("malformed line decodes cleanly: %s", line)
			}
			continue
		}
		calls++
		seen[string(line)] = true
		if err := Decode(line, &c); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		if c.ID != keys[i] || ids[c.ID] {
			t.Fatalf("line %d: id %q, key %q, seen before %v", i, c.ID, keys[i], ids[c.ID])
		}
		ids[c.ID] = true
		if c.Switch != "sw1" || c.SetupTime.Before(cfg.Start) || c.SetupTime.After(cfg.Start.Add(cfg.Span+time.Second)) {
			t.Fatalf("line %d: switch %q setup %s", i, c.Switch, c.SetupTime)
		}
		if c.ConnectTime.IsZero() {
			if c.SIPCode < 400 || c.Duration != 0 {
				t.Errorf("failed call with sip %d duration %s: %s", c.SIPCode, c.Duration, line)
			}
		} else {
			answered++
			answeredDur += c.Duration
			if c.Duration < time.Second {
				short++
			}
			if c.SIPCode != 200 {
				t.Errorf("answered call with sip %d", c.SIPCode)
			}
		}
		if strings.HasPrefix(c.Dst, "7788#") {
			techPrefixed++
			if c.SrcIP != "203.0.113.11" {
				t.Errorf("tech prefix from %s", c.SrcIP)
			}
		}
		if strings.HasPrefix(c.Dst, "000") {
			unknownDst++
		}
		if c.TermIP == "" && c.TermUser == "" {
			noTerm++
		}
	}
	share := func(k, of int) float64 { return float64(k) / float64(of) }
	check := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.4f, want between %v and %v", name, got, lo, hi)
		}
	}
	check("duplicate share", share(dups, n), 0.007, 0.013)
	check("malformed share", share(malformed, n), 0.001, 0.0035)
	check("ASR", share(answered, calls), 0.53, 0.57)
	check("short answered calls share", share(short, answered), 0.02, 0.05)
	check("tech-prefixed share", share(techPrefixed, calls), 0.2, 0.3)
	check("unknown destination share", share(unknownDst, calls), 0.003, 0.008)
	check("no term side share", share(noTerm, calls), 0.01, 0.03)
	acd := answeredDur / time.Duration(answered)
	if acd < 150*time.Second || acd > 210*time.Second {
		t.Errorf("mean answered duration %s, want about 3 minutes", acd)
	}
}

func TestGeneratorAllocs(t *testing.T) {
	origs, terms := genFixture()
	g, err := NewGenerator(genConfig(1, 1_000_000), origs, terms)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 * dupRing {
		g.Next()
	}
	if a := testing.AllocsPerRun(2000, func() { g.Next() }); a != 0 {
		t.Errorf("Next allocates %v times per CDR", a)
	}
}

func BenchmarkGenerator(b *testing.B) {
	origs, terms := genFixture()
	g, err := NewGenerator(genConfig(1, b.N), origs, terms)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		line, _, _ := g.Next()
		n += len(line)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}
