// Command gendeck writes the demo rate decks of deploy/demo/decks: an A–Z
// retail deck of more than 20,000 codes shaped like a real international
// wholesale deck (about 200 countries, fixed and mobile sub-codes, city and
// operator prefixes, per-minute rates with 4 to 6 decimals, 1/1, 30/6 and
// 60/60 billing increments, a few future-dated rate changes), a premium
// deck, and three vendor decks that cost less than retail.
//
// It is deterministic: running it again writes the same files, which are
// committed. Usage: go run ./deploy/demo/gendeck [-out deploy/demo/decks]
//
// Rates are computed in integer millionths; no float touches money.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// code is one destination code of the A–Z deck.
type code struct {
	code, name string
	country    int   // index into countries
	tier       int   // 1 cheap … 5 dear
	level      int   // 0 country/mobile/city level, 1 operator or area split
	micro      int64 // retail rate per minute, millionths
	dp         int   // decimals the rate is quoted with
	min, inc   int   // billing increment
}

// row is one deck CSV row.
type row struct {
	code, name, rate, from, profile string
	min, inc                        int
}

const (
	baseFrom   = "2025-01-01"
	futureFrom = "2027-01-01"
)

func main() {
	out := flag.String("out", "deploy/demo/decks", "directory to write the decks to")
	flag.Parse()
	rng := rand.New(rand.NewPCG(20250101, 7))
	codes := build(rng)

	var retail, premium, alpha, beta, gamma []row
	for i, c := range codes {
		r := row{code: c.code, name: c.name, rate: fmtMicro(c.micro, c.dp), from: baseFrom, min: c.min, inc: c.inc}
		retail = append(retail, r)
		if i%331 == 17 { // a few announced increases
			up := r
			up.from, up.rate = futureFrom, fmtMicro(c.micro*int64(105+rng.IntN(11))/100, c.dp)
			retail = append(retail, up)
		}
		if c.level == 0 {
			p := r
			p.rate = fmtMicro(c.micro*135/100, c.dp)
			premium = append(premium, p)
			if c.tier == 1 && !strings.Contains(c.name, "Mobile") && !strings.Contains(c.name, " - Fixed ") {
				w := p
				w.profile, w.rate = "weekend", fmtMicro(c.micro*110/100, c.dp)
				premium = append(premium, w)
			}
		}
		a := r
		a.rate = fmtMicro(c.micro*int64(60+rng.IntN(21))/100, 6)
		alpha = append(alpha, a)
		if i%397 == 5 {
			up := a
			up.from, up.rate = futureFrom, fmtMicro(c.micro*int64(70+rng.IntN(11))/100, 6)
			alpha = append(alpha, up)
		}
		if c.level == 0 {
			b := r
			b.rate = fmtMicro(c.micro*int64(65+rng.IntN(21))/100, 5)
			beta = append(beta, b)
		}
		if c.tier >= 3 {
			g := r
			g.rate = fmtMicro(c.micro*int64(55+rng.IntN(21))/100, 4)
			gamma = append(gamma, g)
		}
	}
	for _, d := range []struct {
		name string
		rows []row
	}{{"retail-usd.csv", retail}, {"premium-usd.csv", premium}, {"vendor-alpha.csv", alpha}, {"vendor-beta.csv", beta}, {"vendor-gamma.csv", gamma}} {
		if err := write(filepath.Join(*out, d.name), d.rows); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-18s %6d rows\n", d.name, len(d.rows))
	}
}

// build returns the A–Z codes, sorted, each code once.
func build(rng *rand.Rand) []code {
	seen := map[string]bool{}
	var out []code
	add := func(c code) {
		if seen[c.code] || len(c.code) > 15 {
			return
		}
		seen[c.code] = true
		out = append(out, c)
	}
	for ci, line := range countries {
		f := strings.Split(line, "|")
		name, cc, tier := f[0], f[1], int(f[3][0]-'0')
		fixed := fixedBase(rng, tier)
		mobile := fixed * mobileFactor(rng, tier) / 100
		dp := 4 + rng.IntN(3)
		min, inc := increments(rng, name)
		base := code{country: ci, tier: tier, dp: dp, min: min, inc: inc}
		mk := func(c, n string, level int, micro int64) code {
			x := base
			x.code, x.name, x.level, x.micro = c, n, level, micro
			return x
		}
		jitter := func(m int64) int64 { return m * int64(90+rng.IntN(21)) / 100 }

		if cc == "1" { // USA and Canada share +1: one code per area code
			for _, npa := range nanp(rng, name) {
				add(mk("1"+npa, name, 0, jitter(fixed)))
			}
			continue
		}
		var mobiles []string
		if f[2] != "x" {
			mobiles = strings.Split(f[2], ",")
		}
		ops := operators[name]
		for mi, p := range mobiles {
			m := cc + p
			add(mk(m, name+" - Mobile", 0, mobile))
			for d := 0; d < 10; d++ {
				n := name + " - Mobile"
				if len(ops) > 0 {
					n += " - " + ops[(mi*10+d)%len(ops)]
				}
				add(mk(m+strconv.Itoa(d), n, 1, jitter(mobile)))
			}
		}
		add(mk(cc, name+" - Fixed", 0, fixed))
		if strings.HasPrefix(cc, "1") && len(cc) == 4 { // NANP islands: mobile exchanges
			for i := 0; i < 20; i++ {
				add(mk(cc+strconv.Itoa(200+rng.IntN(800)), name+" - Mobile", 1, mobile))
			}
			continue
		}
		for _, area := range sortedKeys(cities[name]) {
			add(mk(cc+area, name+" - Fixed "+cities[name][area], 0, jitter(fixed)))
		}
	areas:
		for a := 20; a < 100; a++ {
			c := cc + strconv.Itoa(a)
			for _, p := range mobiles {
				if strings.HasPrefix(c, cc+p) || strings.HasPrefix(cc+p, c) {
					continue areas
				}
			}
			add(mk(c, name+" - Fixed", 1, jitter(fixed)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].code < out[j].code })
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fixedBase is a country's fixed-line retail rate in millionths per minute.
func fixedBase(rng *rand.Rand, tier int) int64 {
	lo := []int64{0, 4_000, 10_000, 30_000, 80_000, 200_000}[tier]
	hi := []int64{0, 12_000, 35_000, 90_000, 220_000, 900_000}[tier]
	return lo + rng.Int64N(hi-lo)
}

// mobileFactor is mobile over fixed, in percent: cheap destinations have
// dear mobile termination.
func mobileFactor(rng *rand.Rand, tier int) int64 {
	if tier <= 2 {
		return 200 + rng.Int64N(300)
	}
	return 110 + rng.Int64N(90)
}

// increments picks the billing increment of a country: mostly 1/1, some
// 60/60 and some 30/6, as wholesale decks have them.
func increments(rng *rand.Rand, country string) (min, inc int) {
	switch country {
	case "Mexico", "Cuba", "Iran":
		return 60, 60
	case "United States", "Canada", "United Kingdom", "Germany":
		return 1, 1
	}
	switch n := rng.IntN(100); {
	case n < 70:
		return 1, 1
	case n < 85:
		return 60, 60
	default:
		return 30, 6
	}
}

// canada are Canadian area codes; the rest of the +1 area codes the
// generator uses are American.
var canada = []string{"204", "226", "236", "249", "250", "289", "306", "343", "365", "403", "416", "418", "431", "437", "438", "450", "506", "514", "519", "548", "579", "581", "587", "604", "613", "639", "647", "672", "705", "709", "778", "780", "782", "807", "819", "825", "867", "873", "902", "905"}

func nanp(rng *rand.Rand, country string) []string {
	if country == "Canada" {
		return canada
	}
	ca := map[string]bool{}
	for _, c := range canada {
		ca[c] = true
	}
	var out []string
	for n := 201; n < 990; n++ {
		s := strconv.Itoa(n)
		if s[1] == '1' && s[2] == '1' || s[1] == '9' || ca[s] || rng.IntN(100) >= 45 {
			continue
		}
		out = append(out, s)
	}
	return out
}

// fmtMicro formats millionths with dp decimals (4 to 6), rounding half up;
// never below one unit of the last decimal.
func fmtMicro(m int64, dp int) string {
	unit := int64(1)
	for i := dp; i < 6; i++ {
		unit *= 10
	}
	m = (m + unit/2) / unit * unit
	if m < unit {
		m = unit
	}
	s := fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
	return s[:len(s)-(6-dp)]
}

func write(path string, rows []row) error {
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].code != rows[j].code {
			return rows[i].code < rows[j].code
		}
		return rows[i].from+rows[i].profile < rows[j].from+rows[j].profile
	})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "code,code_name,rate,effective_from,min_volume,interval,time_profile")
	for _, r := range rows {
		name := r.name
		if strings.ContainsAny(name, ",\"") {
			name = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		}
		fmt.Fprintf(w, "%s,%s,%s,%s,%d,%d,%s\n", r.code, name, r.rate, r.from, r.min, r.inc, r.profile)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
