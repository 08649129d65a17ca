package main

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRateProcess measures the whole `tarifa rate` process, the figure
// the issue asks for ("`tarifa rate` whole process ≥ 300k CDRs/s on a
// 20k-code deck"): one iteration execs the real binary as
//
//	tarifa rate --deck deck.csv --in cdrs.jsonl --out out.jsonl
//
// on a synthetic international deck of 20,000 codes and TARIFA_BENCH_RATE_CDRS
// (default 1,000,000) CDR JSON lines, so process start, deck load, decoding,
// rating and writing are all timed. Building the binary and generating the
// files (fixed seed) happen outside the timed region. It reports cdrs/s.
// Run it with
//
//	go test -run '^$' -bench RateProcess -benchtime 3x ./cmd/tarifa
func BenchmarkRateProcess(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TARIFA_BENCH_RATE_CDRS")); err == nil && v > 0 {
		n = v
	}
	bin := buildTarifa(b)
	dir := b.TempDir()
	deckPath := filepath.Join(dir, "deck.csv")
	cdrsPath := filepath.Join(dir, "cdrs.jsonl")
	outPath := filepath.Join(dir, "out.jsonl")
	rng := rand.New(rand.NewPCG(20_000, 1_000_000))
	codes := writeBenchDeck(b, deckPath, rng, 20_000)
	writeBenchCDRs(b, cdrsPath, rng, codes, n)

	var stderr bytes.Buffer
	start := time.Now()
	for b.Loop() { // b.Loop keeps the setup above out of the timing and runs it once
		stderr.Reset()
		cmd := exec.Command(bin, "rate", "--deck", deckPath, "--in", cdrsPath, "--out", outPath)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("tarifa rate: %v\n%s", err, stderr.Bytes())
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "cdrs/s")

	if got := countLines(b, outPath); got != n {
		b.Fatalf("out.jsonl has %d lines, want %d", got, n)
	}
}

// benchCountries are country-like prefixes of an international deck; no
// prefix starts with 999, which the unmatched numbers use.
var benchCountries = []struct{ cc, name string }{
	{"1", "USA"}, {"7", "Russia"}, {"20", "Egypt"}, {"27", "South Africa"},
	{"30", "Greece"}, {"31", "Netherlands"}, {"32", "Belgium"}, {"33", "France"},
	{"34", "Spain"}, {"39", "Italy"}, {"40", "Romania"}, {"41", "Switzerland"},
	{"44", "UK"}, {"46", "Sweden"}, {"48", "Poland"}, {"49", "Germany"},
	{"52", "Mexico"}, {"55", "Brazil"}, {"61", "Australia"}, {"62", "Indonesia"},
	{"63", "Philippines"}, {"81", "Japan"}, {"84", "Vietnam"}, {"86", "China"},
	{"90", "Turkey"}, {"91", "India"}, {"92", "Pakistan"}, {"234", "Nigeria"},
	{"254", "Kenya"}, {"351", "Portugal"}, {"380", "Ukraine"}, {"420", "Czechia"},
	{"880", "Bangladesh"}, {"966", "Saudi Arabia"}, {"971", "UAE"}, {"972", "Israel"},
}

var benchKinds = []string{"Fixed", "Mobile", "Mobile Premium", "Special Services"}

// writeBenchDeck writes a deck of size distinct 4–8 digit codes and returns
// the codes.
func writeBenchDeck(b *testing.B, path string, rng *rand.Rand, size int) []string {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("code,code_name,rate,effective_from,min_volume,interval\n")
	seen := make(map[string]struct{}, size)
	codes := make([]string, 0, size)
	var line []byte
	for len(codes) < size {
		c := benchCountries[rng.IntN(len(benchCountries))]
		length := 4 + rng.IntN(5)
		code := []byte(c.cc)
		for len(code) < length {
			code = append(code, byte('0'+rng.IntN(10)))
		}
		if _, dup := seen[string(code)]; dup {
			continue
		}
		seen[string(code)] = struct{}{}
		codes = append(codes, string(code))

		line = append(line[:0], code...)
		line = append(line, ',')
		line = append(line, c.name...)
		line = append(line, ' ')
		line = append(line, benchKinds[rng.IntN(len(benchKinds))]...)
		line = append(line, ',')
		// Rate per minute from 0.0002 to 0.4000, with 4 to 6 decimals.
		decimals := 4 + rng.IntN(3)
		units := int64(200+rng.IntN(400_000)) / pow10(6-decimals)
		line = appendDecimal(line, units, decimals)
		line = append(line, ",2024-01-01,"...)
		switch p := rng.IntN(100); {
		case p < 70:
			line = append(line, "1,1\n"...)
		case p < 88:
			line = append(line, "30,6\n"...)
		default:
			line = append(line, "60,60\n"...)
		}
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return codes
}

// writeBenchCDRs writes n CDR JSON lines in February 2024: about 55 %
// answered with a fractional duration, about 95 % dialling a deck code.
func writeBenchCDRs(b *testing.B, path string, rng *rand.Rand, codes []string, n int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).Unix()
	var line []byte
	for i := 0; i < n; i++ {
		setup := base + int64(rng.IntN(28*86400))
		answered := rng.IntN(100) < 55

		line = append(line[:0], `{"id":"c`...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, `","switch":"sw`...)
		line = strconv.AppendInt(line, int64(1+rng.IntN(4)), 10)
		line = append(line, `","setup_time":"`...)
		line = appendTime(line, setup)
		disconnect := setup + 1 + int64(rng.IntN(40))
		var ms int64
		if answered {
			connect := setup + 1 + int64(rng.IntN(15))
			ms = int64(rng.IntN(600_000)) // up to 10 minutes
			disconnect = connect + (ms+999)/1000
			line = append(line, `","connect_time":"`...)
			line = appendTime(line, connect)
		}
		line = append(line, `","disconnect_time":"`...)
		line = appendTime(line, disconnect)
		line = append(line, '"')
		if answered {
			line = append(line, `,"duration":`...)
			line = appendDecimal(line, ms, 3)
		}
		line = append(line, `,"src_ip":"10.`...)
		line = strconv.AppendInt(line, int64(rng.IntN(256)), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, int64(rng.IntN(256)), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, int64(1+rng.IntN(254)), 10)
		line = append(line, `","dst":"`...)
		if rng.IntN(100) < 30 {
			line = append(line, '+')
		}
		var dst int
		if rng.IntN(100) < 95 {
			code := codes[rng.IntN(len(codes))]
			line = append(line, code...)
			dst = len(code)
		} else {
			line = append(line, "999"...) // no deck code starts with 999
			dst = 3
		}
		for total := 11 + rng.IntN(3); dst < total; dst++ {
			line = append(line, byte('0'+rng.IntN(10)))
		}
		line = append(line, `","sip_code":`...)
		if answered {
			line = append(line, `200,"cause":16}`...)
		} else {
			switch rng.IntN(4) {
			case 0:
				line = append(line, `486,"cause":17}`...)
			case 1:
				line = append(line, `487,"cause":16}`...)
			case 2:
				line = append(line, `480,"cause":19}`...)
			default:
				line = append(line, `503,"cause":34}`...)
			}
		}
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// appendDecimal appends units/10^decimals as decimal text, e.g. 1234, 4 → 0.1234.
func appendDecimal(dst []byte, units int64, decimals int) []byte {
	p := pow10(decimals)
	dst = strconv.AppendInt(dst, units/p, 10)
	dst = append(dst, '.')
	frac := strconv.AppendInt(nil, units%p, 10)
	for i := len(frac); i < decimals; i++ {
		dst = append(dst, '0')
	}
	return append(dst, frac...)
}

func appendTime(dst []byte, unix int64) []byte {
	return time.Unix(unix, 0).UTC().AppendFormat(dst, time.RFC3339)
}

func countLines(b *testing.B, path string) int {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	lines := 0
	for {
		k, err := f.Read(buf)
		lines += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return lines
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
