package ingest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// GenConfig configures a Generator. Shares are fractions of the CDRs
// generated, between 0 and 1.
type GenConfig struct {
	Seed   uint64        // same seed, same catalog → same CDRs
	Count  int           // CDRs to generate, duplicates and malformed lines included
	Start  time.Time     // setup times run from Start …
	Span   time.Duration // … to Start+Span, in order with jitter; default 24h
	Switch string        // the switch field; default "sw1"

	ASR       float64 // share of answered calls among well-formed ones; default 0.55
	Dup       float64 // share re-sent verbatim (an earlier CDR of this run)
	Malformed float64 // share that break the CDR message contract
	Unknown   float64 // share from unknown accounts or to unknown destinations
	NoTerm    float64 // share without a term side; default 0.02
}

// GenOrig is an account that sends traffic: the identification a switch
// puts in the CDR and the codes of its rate table.
type GenOrig struct {
	SrcIP, SrcUser, ANI string
	TechPrefix          string // prefixed to dst
	Codes               []string
}

// GenTerm is a vendor account traffic terminates on. Codes, when not nil,
// are the codes of its rate table: a call goes to a vendor whose table has a
// prefix of the number when one of a few tried at random does, as routing
// would send it.
type GenTerm struct {
	TermIP, TermUser string
	Codes            map[string]struct{}
}

// GenKind is what a generated line is.
type GenKind uint8

// The kinds of generated lines.
const (
	GenCall      GenKind = iota // a well-formed CDR, new in this run
	GenDuplicate                // an earlier line of this run, verbatim
	GenMalformed                // breaks the CDR message contract
)

// Generator produces realistic CDR JSON lines (DESIGN.md "CDR message") for
// load and demo runs: origination accounts and destinations from the
// catalog, an answered/failed mix with SIP codes, heavy-tailed durations,
// and the configured shares of duplicates, malformed lines and unknown
// accounts or destinations. It is deterministic for a seed and allocates
// nothing per CDR once warmed up.
//
// A Generator is not safe for concurrent use.
type Generator struct {
	cfg   GenConfig
	origs []GenOrig
	terms []GenTerm
	rng   *rand.Rand
	idPfx string
	n     int // lines produced
	calls int // new CDR ids issued

	buf          []byte
	keyLo, keyHi int
	ring         [dupRing]genLine
	ringN        int
}

type genLine struct {
	b      []byte
	lo, hi int
}

// dupRing is how many recent CDRs a duplicate may repeat.
const dupRing = 4096

// Lognormal call durations: mean exp(mu + sigma²/2) ≈ 180 s.
const (
	durSigma = 1.2
	durMu    = 4.473 // ln(180) − sigma²/2
)

// NewGenerator returns a generator over the given accounts. origs and
// terms are not copied and must not change while it runs.
func NewGenerator(cfg GenConfig, origs []GenOrig, terms []GenTerm) (*Generator, error) {
	if len(origs) == 0 {
		return nil, errors.New("no origination account to generate traffic from")
	}
	for i, o := range origs {
		if len(o.Codes) == 0 {
			return nil, fmt.Errorf("origination account %d has no destination codes", i)
		}
	}
	if cfg.Span <= 0 {
		cfg.Span = 24 * time.Hour
	}
	if cfg.Switch == "" {
		cfg.Switch = "sw1"
	}
	if cfg.ASR == 0 {
		cfg.ASR = 0.55
	}
	if cfg.NoTerm == 0 {
		cfg.NoTerm = 0.02
	}
	for _, s := range []float64{cfg.ASR, cfg.Dup, cfg.Malformed, cfg.Unknown, cfg.NoTerm} {
		if s < 0 || s > 1 || math.IsNaN(s) {
			return nil, fmt.Errorf("share %v is not between 0 and 1", s)
		}
	}
	if cfg.Count < 0 {
		return nil, fmt.Errorf("count %d is negative", cfg.Count)
	}
	return &Generator{
		cfg: cfg, origs: origs, terms: terms,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x7461726966610000)),
		idPfx: strconv.FormatUint(cfg.Seed&0xffffffff, 36) + "-",
		buf:   make([]byte, 0, 512),
	}, nil
}

// Next returns the next line (no newline) and its Kafka key, the CDR id
// (empty when the line has none). Both live in a buffer that is valid until
// the next call.
func (g *Generator) Next() (line, key []byte, kind GenKind) {
	g.n++
	r := g.rng.Float64()
	switch {
	case r < g.cfg.Dup && g.ringN > 0:
		back := 1 + g.rng.IntN(min(g.ringN, dupRing))
		e := &g.ring[(g.ringN-back)%dupRing]
		g.buf = append(g.buf[:0], e.b...)
		return g.buf, g.buf[e.lo:e.hi], GenDuplicate
	case r < g.cfg.Dup+g.cfg.Malformed:
		g.malformed()
		return g.buf, g.buf[g.keyLo:g.keyHi], GenMalformed
	}
	g.call()
	e := &g.ring[g.ringN%dupRing]
	e.b, e.lo, e.hi = append(e.b[:0], g.buf...), g.keyLo, g.keyHi
	g.ringN++
	return g.buf, g.buf[g.keyLo:g.keyHi], GenCall
}

// setup returns the setup time of the current line: in order over the
// span, with up to a second of jitter.
func (g *Generator) setup() time.Time {
	total := max(g.cfg.Count, 1)
	off := time.Duration(float64(g.cfg.Span) * float64(g.n-1) / float64(total))
	return g.cfg.Start.Add(off + time.Duration(g.rng.IntN(1000))*time.Millisecond).UTC()
}

func (g *Generator) id() {
	g.calls++
	g.buf = append(g.buf, `{"id":"`...)
	g.keyLo = len(g.buf)
	g.buf = append(g.buf, g.idPfx...)
	g.buf = strconv.AppendInt(g.buf, int64(g.calls), 10)
	g.keyHi = len(g.buf)
	g.buf = append(g.buf, `","switch":`...)
	g.buf = strconv.AppendQuote(g.buf, g.cfg.Switch)
}

// failures are SIP final responses of unanswered calls with their Q.850
// causes, weighted by how often switches report them.
var failures = []struct{ sip, cause, weight int }{
	{486, 17, 30}, {487, 16, 25}, {480, 18, 12}, {503, 34, 10}, {404, 1, 8},
	{408, 102, 6}, {603, 21, 5}, {484, 28, 2}, {502, 38, 2},
}

var failureWeight = func() int {
	n := 0
	for _, f := range failures {
		n += f.weight
	}
	return n
}()

func (g *Generator) call() {
	g.buf = g.buf[:0]
	g.id()
	setup := g.setup()
	var connect time.Time
	var dur time.Duration
	sip, cause := 200, 16
	if g.rng.Float64() < g.cfg.ASR {
		connect = setup.Add(time.Duration(1000+g.rng.IntN(7000)) * time.Millisecond) // post-dial delay
		if g.rng.IntN(100) < 3 {
			dur = time.Duration(10+g.rng.IntN(990)) * time.Millisecond // 0.x s: hung up at once
		} else {
			s := math.Exp(durMu + durSigma*g.rng.NormFloat64())
			dur = time.Duration(min(s, 4*3600) * float64(time.Second)).Truncate(time.Millisecond)
		}
	} else {
		w := g.rng.IntN(failureWeight)
		for _, f := range failures {
			if w < f.weight {
				sip, cause = f.sip, f.cause
				break
			}
			w -= f.weight
		}
	}
	disconnect := setup.Add(time.Duration(2000+g.rng.IntN(38000)) * time.Millisecond) // ringing
	if !connect.IsZero() {
		disconnect = connect.Add(dur)
	}
	g.times(setup, connect, disconnect, dur)

	o := &g.origs[g.rng.IntN(len(g.origs))]
	unknown := g.rng.Float64() < g.cfg.Unknown
	unknownAccount := unknown && g.rng.IntN(2) == 0
	if unknownAccount {
		g.buf = append(g.buf, `,"src_ip":"192.0.2.`...)
		g.buf = strconv.AppendInt(g.buf, int64(1+g.rng.IntN(254)), 10)
		g.buf = append(g.buf, '"')
	} else {
		g.str(`,"src_ip":`, o.SrcIP)
		g.str(`,"src_user":`, o.SrcUser)
		g.str(`,"ani":`, o.ANI)
	}
	if o.ANI == "" || unknownAccount {
		g.buf = append(g.buf, `,"ani":"`...) // a caller number, not an account
		g.digits(11)
		g.buf = append(g.buf, '"')
	}
	g.buf = append(g.buf, `,"dst":"`...)
	if !unknownAccount {
		g.buf = append(g.buf, o.TechPrefix...)
	}
	numLo := len(g.buf)
	if unknown && !unknownAccount {
		g.buf = append(g.buf, "000"...) // no deck has codes starting with 0
		g.digits(9)
	} else {
		c := o.Codes[g.rng.IntN(len(o.Codes))]
		g.buf = append(g.buf, c...)
		g.digits(max(11-len(c), 3))
	}
	numHi := len(g.buf)
	g.buf = append(g.buf, '"')
	if len(g.terms) > 0 && g.rng.Float64() >= g.cfg.NoTerm {
		t := g.route(numLo, numHi)
		g.str(`,"term_ip":`, t.TermIP)
		g.str(`,"term_user":`, t.TermUser)
	}
	g.buf = append(g.buf, `,"sip_code":`...)
	g.buf = strconv.AppendInt(g.buf, int64(sip), 10)
	g.buf = append(g.buf, `,"cause":`...)
	g.buf = strconv.AppendInt(g.buf, int64(cause), 10)
	g.buf = append(g.buf, '}')
}

// route picks the vendor of the number in g.buf[lo:hi]: the first of up
// to four random vendors whose codes cover it, else the last one tried.
func (g *Generator) route(lo, hi int) *GenTerm {
	var t *GenTerm
	for range 4 {
		t = &g.terms[g.rng.IntN(len(g.terms))]
		if t.Codes == nil {
			return t
		}
		for n := min(hi-lo, 10); n > 0; n-- {
			if _, ok := t.Codes[string(g.buf[lo:lo+n])]; ok {
				return t
			}
		}
	}
	return t
}

const genTime = "2006-01-02T15:04:05.000Z07:00"

func (g *Generator) times(setup, connect, disconnect time.Time, dur time.Duration) {
	g.buf = append(g.buf, `,"setup_time":"`...)
	g.buf = setup.AppendFormat(g.buf, genTime)
	if !connect.IsZero() {
		g.buf = append(g.buf, `","connect_time":"`...)
		g.buf = connect.AppendFormat(g.buf, genTime)
	}
	g.buf = append(g.buf, `","disconnect_time":"`...)
	g.buf = disconnect.AppendFormat(g.buf, genTime)
	g.buf = append(g.buf, `","duration":`...)
	ms := dur.Milliseconds()
	g.buf = strconv.AppendInt(g.buf, ms/1000, 10)
	if ms%1000 != 0 {
		g.buf = append(g.buf, '.', byte('0'+ms%1000/100), byte('0'+ms%100/10), byte('0'+ms%10))
	}
}

func (g *Generator) str(field, v string) {
	if v == "" {
		return
	}
	g.buf = append(g.buf, field...)
	g.buf = strconv.AppendQuote(g.buf, v) // idents are plain ASCII; AppendQuote is valid JSON for them
}

func (g *Generator) digits(n int) {
	for range n {
		g.buf = append(g.buf, byte('0'+g.rng.IntN(10)))
	}
}

// malformed writes a line that breaks the contract in one of several ways a
// broken switch or a truncated write produces.
func (g *Generator) malformed() {
	g.call()
	switch g.rng.IntN(5) {
	case 0: // truncated JSON
		g.buf = g.buf[:len(g.buf)/2]
		if g.keyHi > len(g.buf) {
			g.keyLo, g.keyHi = 0, 0
		}
	case 1: // no id
		g.calls--
		n := copy(g.buf[1:], g.buf[g.keyHi+2:]) // `{` + everything after `"id":"…",`
		g.buf = g.buf[:1+n]
		g.keyLo, g.keyHi = 0, 0
	case 2: // disconnect before setup
		setup := g.setup()
		g.buf = append(g.buf[:g.keyHi], `","switch":`...)
		g.buf = strconv.AppendQuote(g.buf, g.cfg.Switch)
		g.times(setup, time.Time{}, setup.Add(-5*time.Second), 0)
		g.buf = append(g.buf, `,"dst":"4420712345678","sip_code":487,"cause":16}`...)
	case 3: // letters in dst
		g.buf = append(g.buf[:g.keyHi], `","switch":`...)
		g.buf = strconv.AppendQuote(g.buf, g.cfg.Switch)
		g.times(g.setup(), time.Time{}, g.setup().Add(3*time.Second), 0)
		g.buf = append(g.buf, `,"dst":"44207ABC5678","sip_code":486,"cause":17}`...)
	default: // not JSON at all
		g.buf = append(g.buf[:0], "CDR,"...)
		g.buf = append(g.buf, g.idPfx...)
		g.buf = strconv.AppendInt(g.buf, int64(g.calls), 10)
		g.buf = append(g.buf, ",503,garbage"...)
		g.keyLo, g.keyHi = 0, 0
	}
}
