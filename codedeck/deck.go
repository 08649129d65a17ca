package codedeck

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shopspring/decimal"
)

// Rate is one rate row as the deck stores it: the Row's fields, and fields
// Build derives for the rater's fast path (which must not be set by hand).
// The fields the rater reads on every call come first, in one cache line.
type Rate struct {
	// EffectiveKey and EndKey are TimeKey(EffectiveFrom) and TimeKey(EndDate),
	// EndKey math.MaxInt64 when there is no end.
	EffectiveKey int64
	EndKey       int64
	// RateNano and SetupNano are Rate and SetupFee in billionths when
	// NanoExact: exact and at most 1000 each, which keeps a charge inside
	// int64. When NanoExact is false the charge takes the decimal path.
	RateNano    int64
	SetupNano   int64
	MinVolume   int
	Interval    int
	GraceVolume int
	// ProfileID is the index of Profile in the deck's profiles; 0 is "all".
	ProfileID uint16
	NanoExact bool

	Line          int // CSV line, 0 when unknown
	Code          string
	CodeName      string
	Rate          decimal.Decimal // per minute
	EffectiveFrom time.Time
	EndDate       time.Time // zero = no end
	SetupFee      decimal.Decimal
	Profile       string

	rateText string
}

// RateString returns the rate per minute as a decimal string without
// trailing zeros ("0.1"), computed once at Build.
func (r *Rate) RateString() string { return r.rateText }

// Specific reports whether the rate has a time profile other than "all".
func (r *Rate) Specific() bool { return r.ProfileID != 0 }

// Code is one dialing code of a deck with its rates, grouped by ProfileID
// ascending and, within a profile, sorted by EffectiveFrom ascending.
type Code struct {
	Code  string
	Rates []Rate
}

// node is one trie node. Children are stored contiguously: child digit c is
// at nodes[base+popcount(mask & (1<<c - 1))].
type node struct {
	mask uint16
	base int32
	code int32 // index into Deck.codes, -1 when no code ends here
}

// Deck is an immutable trie of dialing codes and their rates. It is safe for
// concurrent use; nothing blocks.
type Deck struct {
	nodes    []node
	codes    []Code
	rates    []Rate
	profiles []profileSpans // by ProfileID
	names    []string       // profile names by ProfileID
}

type profileSpans []span

// Len returns the number of codes in the deck.
func (d *Deck) Len() int { return len(d.codes) }

// Rates returns the number of rate rows in the deck.
func (d *Deck) Rates() int { return len(d.rates) }

// Lookup appends to dst the codes of the deck that are prefixes of number,
// longest first, and returns the extended slice. It allocates nothing when
// dst has room for MaxCodeLen codes (a stack array in the caller does).
// number should be digits; the walk stops at the first non-digit.
func (d *Deck) Lookup(number string, dst []*Code) []*Code {
	start := len(dst)
	if len(d.nodes) == 0 {
		return dst
	}
	n := &d.nodes[0]
	if n.code >= 0 {
		dst = append(dst, &d.codes[n.code]) // the empty code: a catch-all
	}
	for i := 0; i < len(number); i++ {
		c := number[i] - '0'
		if c > 9 {
			break
		}
		bit := uint16(1) << c
		if n.mask&bit == 0 {
			break
		}
		n = &d.nodes[n.base+int32(bits.OnesCount16(n.mask&(bit-1)))]
		if n.code >= 0 {
			dst = append(dst, &d.codes[n.code])
		}
	}
	slices.Reverse(dst[start:])
	return dst
}

// Longest returns the longest code of the deck that is a prefix of number,
// or nil.
func (d *Deck) Longest(number string) *Code {
	var buf [MaxCodeLen + 1]*Code
	if m := d.Lookup(number, buf[:0]); len(m) > 0 {
		return m[0]
	}
	return nil
}

// InProfile reports whether the clock lies in the profile with that ID;
// ID 0 ("all") contains every clock.
func (d *Deck) InProfile(id uint16, c Clock) bool {
	if id == 0 {
		return true
	}
	return containsClock(d.profiles[id], c)
}

// TimeKey maps t to the int64 the deck compares times by: Unix nanoseconds,
// clamped to the int64 range for times before 1678 or after 2261.
func TimeKey(t time.Time) int64 {
	s := t.Unix()
	switch {
	case s >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	case s <= math.MinInt64/int64(time.Second):
		return math.MinInt64
	}
	return t.UnixNano()
}

// Build makes a Deck from rows and the time profiles they name (nil means
// only "all"). A row naming an unknown profile, with a bad code or bad
// volumes, or repeating another row's code + effective_from + profile, is an
// error (*ParseError, with each row's line).
func Build(rows []Row, p *Profiles) (*Deck, error) {
	if p == nil {
		p, _ = NewProfiles(nil)
	}
	profileID := make(map[string]uint16, len(p.names))
	d := &Deck{names: p.names, profiles: make([]profileSpans, len(p.names))}
	for i, name := range p.names {
		profileID[name] = uint16(i)
		d.profiles[i] = p.spans[name]
	}

	var bad []RowError
	ids := make([]uint16, len(rows))
	for i := range rows {
		r := &rows[i]
		id, ok := profileID[r.Profile]
		if r.Profile == "" {
			id, ok = 0, true
		}
		switch {
		case !ok:
			bad = append(bad, RowError{Line: r.Line, Reason: fmt.Sprintf("unknown time_profile %q", r.Profile)})
		case !isDigits(r.Code) && r.Code != "":
			bad = append(bad, RowError{Line: r.Line, Reason: fmt.Sprintf("code %q is not digits", clip(r.Code))})
		case len(r.Code) > MaxCodeLen:
			bad = append(bad, RowError{Line: r.Line, Reason: fmt.Sprintf("code %q is longer than %d digits", clip(r.Code), MaxCodeLen)})
		case r.MinVolume < 1 || r.MinVolume > MaxVolume || r.Interval < 1 || r.Interval > MaxVolume || r.GraceVolume < 0 || r.GraceVolume > MaxVolume:
			bad = append(bad, RowError{Line: r.Line, Reason: fmt.Sprintf("code %s: min_volume and interval must be 1…%d, grace_volume 0…%d", r.Code, MaxVolume, MaxVolume)})
		case CheckAmounts(r) != "":
			bad = append(bad, RowError{Line: r.Line, Reason: "code " + r.Code + ": " + CheckAmounts(r)})
		}
		ids[i] = id
	}
	if len(bad) > 0 {
		slices.SortStableFunc(bad, func(a, b RowError) int { return cmp.Compare(a.Line, b.Line) })
		return nil, &ParseError{Rows: bad}
	}

	order := sortedOrder(rows, ids)
	if dups := duplicates(rows, order, ids); len(dups) > 0 {
		return nil, &ParseError{Rows: dups}
	}

	d.rates = make([]Rate, len(rows))
	adviseHuge(unsafe.Pointer(unsafe.SliceData(d.rates)), len(d.rates)*int(unsafe.Sizeof(Rate{})))
	texts := decimalTexts{}
	nCodes := 0
	for i, ri := range order {
		r := &rows[ri]
		if i == 0 || rows[order[i-1]].Code != r.Code {
			nCodes++
		}
		d.rates[i] = newRate(r, ids[ri], texts)
	}
	d.codes = make([]Code, 0, nCodes)
	adviseHuge(unsafe.Pointer(unsafe.SliceData(d.codes)), nCodes*int(unsafe.Sizeof(Code{})))
	for i := 0; i < len(d.rates); {
		j := i + 1
		for j < len(d.rates) && d.rates[j].Code == d.rates[i].Code {
			j++
		}
		d.codes = append(d.codes, Code{Code: d.rates[i].Code, Rates: d.rates[i:j:j]})
		i = j
	}
	d.buildTrie()
	d.nodes = hugeCopy(d.nodes)
	return d, nil
}

func newRate(r *Row, profile uint16, texts decimalTexts) Rate {
	rt := Rate{
		Line: r.Line, Code: r.Code, CodeName: r.CodeName, Rate: r.Rate,
		EffectiveFrom: r.EffectiveFrom, EndDate: r.EndDate,
		MinVolume: r.MinVolume, Interval: r.Interval, GraceVolume: r.GraceVolume,
		SetupFee: r.SetupFee, Profile: r.Profile, ProfileID: profile,
		EffectiveKey: TimeKey(r.EffectiveFrom), EndKey: math.MaxInt64,
	}
	if rt.Profile == "" {
		rt.Profile = AllProfile
	}
	if !r.EndDate.IsZero() {
		rt.EndKey = TimeKey(r.EndDate)
	}
	rt.rateText = texts.text(r.Rate)
	var ok1, ok2 bool
	rt.RateNano, ok1 = nanoOf(r.Rate)
	rt.SetupNano, ok2 = nanoOf(r.SetupFee)
	rt.NanoExact = ok1 && ok2
	return rt
}

// maxNano bounds the fast path's amounts: 1000 currency units in
// billionths. With at most 9,000,000 billed seconds every intermediate of
// the charge fits in int64.
const maxNano = 1000 * 1e9

// decimalTexts interns Decimal.String results: a deck has few distinct
// rates, and each rate's text is needed on every rated output line.
type decimalTexts map[smallDecimal]string

type smallDecimal struct {
	coef int64
	exp  int32
}

func (t decimalTexts) text(d decimal.Decimal) string {
	if d.NumDigits() > 18 {
		return d.String()
	}
	k := smallDecimal{d.CoefficientInt64(), d.Exponent()}
	s, ok := t[k]
	if !ok {
		s = d.String()
		t[k] = s
	}
	return s
}

var pow10s = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// nanoOf returns d in billionths when that is exact and at most maxNano.
func nanoOf(d decimal.Decimal) (int64, bool) {
	if d.NumDigits() > 18 { // rare: go through the text
		return toNano(d.String())
	}
	coef, shift := d.CoefficientInt64(), int(d.Exponent())+9
	if coef == 0 {
		return 0, true
	}
	if shift < 0 {
		if -shift > 18 || coef%pow10s[-shift] != 0 {
			return 0, false
		}
		coef /= pow10s[-shift]
	} else {
		if shift > 12 {
			return 0, false
		}
		if coef > maxNano/pow10s[shift] || coef < -maxNano/pow10s[shift] {
			return 0, false
		}
		coef *= pow10s[shift]
	}
	if coef > maxNano || coef < -maxNano {
		return 0, false
	}
	return coef, true
}

// toNano returns the plain decimal text s ("0.125", as Decimal.String
// writes it) in billionths when that is exact and at most maxNano.
func toNano(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > 9 || len(intPart) > 4 || !isDigits(intPart) || (frac != "" && !isDigits(frac)) {
		return 0, false
	}
	var n int64
	for i := 0; i < len(intPart); i++ {
		n = n*10 + int64(intPart[i]-'0')
	}
	for i := 0; i < 9; i++ {
		n *= 10
		if i < len(frac) {
			n += int64(frac[i] - '0')
		}
	}
	if n > maxNano {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// sortedOrder returns the indexes of rows sorted by code, profile ID,
// effective date and then input order. It sorts compact keys holding the
// first 8 bytes of the code so that most comparisons touch no string.
func sortedOrder(rows []Row, ids []uint16) []int32 {
	type key struct {
		head    uint64 // first 8 bytes of the code, big-endian, zero padded
		at      int64
		idx     int32
		profile uint16
	}
	keys := make([]key, len(rows))
	sorted := true
	for i := range rows {
		var h uint64
		c := rows[i].Code
		for k := 0; k < 8; k++ {
			h <<= 8
			if k < len(c) {
				h |= uint64(c[k])
			}
		}
		keys[i] = key{head: h, at: TimeKey(rows[i].EffectiveFrom), idx: int32(i), profile: ids[i]}
		if sorted && i > 0 {
			a, b := &keys[i-1], &keys[i]
			if a.head > b.head || (a.head == b.head && (len(c) > 8 || rows[i-1].Code != c || a.profile > b.profile ||
				(a.profile == b.profile && a.at > b.at))) {
				sorted = false
			}
		}
	}
	if !sorted {
		slices.SortFunc(keys, func(a, b key) int {
			if a.head != b.head {
				return cmp.Compare(a.head, b.head)
			}
			if c := strings.Compare(rows[a.idx].Code, rows[b.idx].Code); c != 0 {
				return c
			}
			if a.profile != b.profile {
				return cmp.Compare(a.profile, b.profile)
			}
			if a.at != b.at {
				return cmp.Compare(a.at, b.at)
			}
			return cmp.Compare(a.idx, b.idx)
		})
	}
	order := make([]int32, len(rows))
	for i := range keys {
		order[i] = keys[i].idx
	}
	return order
}

// duplicates reports every row that repeats the code + effective_from +
// profile of an earlier row, in line order; order is sortedOrder's result.
func duplicates(rows []Row, order []int32, ids []uint16) []RowError {
	var dups []RowError
	first := 0 // start of the run of equal keys order[i] belongs to
	for i := 1; i < len(order); i++ {
		a, b := &rows[order[i-1]], &rows[order[i]]
		if a.Code != b.Code || ids[order[i-1]] != ids[order[i]] || !a.EffectiveFrom.Equal(b.EffectiveFrom) {
			first = i
			continue
		}
		dups = append(dups, RowError{Line: b.Line, Reason: fmt.Sprintf(
			"duplicate code %s effective_from %s time_profile %s (first on line %d)",
			b.Code, b.EffectiveFrom.UTC().Format(time.RFC3339), b.Profile, rows[order[first]].Line)})
	}
	slices.SortStableFunc(dups, func(x, y RowError) int { return cmp.Compare(x.Line, y.Line) })
	return dups
}

// dropDuplicates removes the rows that repeat an earlier row's code +
// effective_from + profile and reports them. Profiles are compared by name
// here, before they are resolved.
func dropDuplicates(rows []Row) ([]Row, []RowError) {
	names := map[string]uint16{}
	ids := make([]uint16, len(rows))
	for i := range rows {
		id, ok := names[rows[i].Profile]
		if !ok {
			id = uint16(len(names))
			names[rows[i].Profile] = id
		}
		ids[i] = id
	}
	order := sortedOrder(rows, ids)
	drop := make(map[int32]bool)
	for i := 1; i < len(order); i++ {
		a, b := &rows[order[i-1]], &rows[order[i]]
		if a.Code == b.Code && ids[order[i-1]] == ids[order[i]] && a.EffectiveFrom.Equal(b.EffectiveFrom) {
			drop[order[i]] = true
		}
	}
	if len(drop) == 0 {
		return rows, nil
	}
	dups := duplicates(rows, order, ids)
	kept := rows[:0:0]
	for i := range rows {
		if !drop[int32(i)] {
			kept = append(kept, rows[i])
		}
	}
	return kept, dups
}

// buildTrie lays the codes (sorted) out as a trie whose children are
// contiguous, depth first.
func (d *Deck) buildTrie() {
	d.nodes = make([]node, 1, len(d.codes)*2+1)
	d.nodes[0] = node{code: -1}
	d.fill(0, 0, 0, len(d.codes))
}

// fill sets up node ni, which stands for the prefix of length depth shared
// by codes[lo:hi].
func (d *Deck) fill(ni int32, depth, lo, hi int) {
	if lo < hi && len(d.codes[lo].Code) == depth {
		d.nodes[ni].code = int32(lo)
		lo++
	}
	if lo >= hi {
		return
	}
	// group codes[lo:hi] by their digit at depth
	type group struct {
		digit  byte
		lo, hi int
	}
	var groups [10]group
	n := 0
	for i := lo; i < hi; {
		c := d.codes[i].Code[depth]
		j := i + 1
		for j < hi && d.codes[j].Code[depth] == c {
			j++
		}
		groups[n] = group{c - '0', i, j}
		n++
		i = j
	}
	base := int32(len(d.nodes))
	var mask uint16
	for k := 0; k < n; k++ {
		mask |= 1 << groups[k].digit
		d.nodes = append(d.nodes, node{code: -1})
	}
	d.nodes[ni].mask, d.nodes[ni].base = mask, base
	for k := 0; k < n; k++ {
		d.fill(base+int32(k), depth+1, groups[k].lo, groups[k].hi)
	}
}

// Holder publishes the current Deck. Load and Store are safe for concurrent
// use and never block; a stored Deck replaces the previous one whole.
type Holder struct {
	p atomic.Pointer[Deck]
}

// Load returns the current Deck, nil before the first Store.
func (h *Holder) Load() *Deck { return h.p.Load() }

// Store publishes d as the current Deck.
func (h *Holder) Store(d *Deck) { h.p.Store(d) }
