package ingest

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// MaxDuration is the longest call duration Decode accepts (one year); a
// longer one is a contract violation rather than a call.
const MaxDuration = 366 * 24 * time.Hour

// MaxTextLen bounds every string field of a CDR in bytes. An id or switch
// name is part of the dedupe key and of ClickHouse's sort key; nothing a
// switch sends in these fields comes near it, and a 100 KB id is an attack
// or a bug, not a call.
const MaxTextLen = 256

// MaxNumberLen is the most digits a dialed number may have once '+' and a
// matched tech prefix are stripped (E.164 allows 15; codes are at most 32).
const MaxNumberLen = 32

// durationSlack is how much a CDR's duration may exceed disconnect − setup:
// switches round durations up to the second.
const durationSlack = time.Second

// CDR is one decoded switch CDR (DESIGN.md "CDR message"). Times are UTC;
// ConnectTime.IsZero() means the call was not answered.
type CDR struct {
	ID, Switch                             string
	SetupTime, ConnectTime, DisconnectTime time.Time
	// Duration is the `duration` field, parsed exactly from the JSON number
	// text (fractions finer than a nanosecond round up), or disconnect −
	// connect when the field is absent; 0 when the call was not answered,
	// whatever the field says.
	Duration                                   time.Duration
	SrcIP, SrcUser, ANI, Dst, TermIP, TermUser string
	SIPCode, Cause                             int

	scratch []byte    // decoded string bytes of this message
	spans   [9][2]int // [start, end) in scratch per string field
	whole   bool      // the JSON object was read to its end
}

// MalformedError is a CDR that breaks the message contract; Detail is a
// short human reason such as "missing id".
type MalformedError struct {
	Detail string
}

func (e *MalformedError) Error() string { return "malformed cdr: " + e.Detail }

// string fields, in the order of CDR.spans
const (
	fID = iota
	fSwitch
	fSrcIP
	fSrcUser
	fANI
	fDst
	fTermIP
	fTermUser
	fConnect // raw connect_time text, to tell "" from absent
	nStrings
)

// seen bits
const (
	hasID = 1 << iota
	hasDst
	hasSetup
	hasDisconnect
	hasConnect
	hasDuration
)

// Decode parses one JSON CDR message into c, reusing c's storage (all the
// strings of one message share one allocation). It validates the contract:
// id present, setup_time and disconnect_time present and RFC 3339,
// disconnect ≥ setup, connect_time (absent, null or "" = not answered)
// within [setup, disconnect], duration a non-negative number of at most
// MaxDuration, dst present, sip_code and cause integers. Unknown fields are
// skipped, whatever they hold; a repeated field keeps its last value. It
// does not check that dst is digits (a tech prefix may precede the number):
// see NormalizeNumber.
//
// Every string field must be valid UTF-8 of at most MaxTextLen bytes
// without control characters (a NUL inside an id would let two different
// CDRs share a dedupe key), and a duration may exceed disconnect − setup
// by at most a second of rounding.
//
// On a contract violation it returns a *MalformedError, and c.ID holds the
// id when one was read; Identified says whether what was read still names
// the call. Decode is safe for concurrent use on distinct CDRs.
func Decode(b []byte, c *CDR) error {
	scratch := c.scratch[:0]
	*c = CDR{}
	d := decoder{b: b, scratch: scratch}
	detail := d.object(c)
	c.scratch = d.scratch
	c.whole = d.whole
	c.materialize()
	if detail != "" {
		return &MalformedError{Detail: detail}
	}
	return c.validate(&d)
}

// Identified reports whether a CDR that Decode found malformed still names
// its call: the message was read whole, its id and switch are valid text
// and its setup time lies within MinTime … MaxTime. Such a CDR keeps its id,
// so that a corrected re-send replaces its row.
func (c *CDR) Identified() bool {
	return c.whole && c.ID != "" && CheckText(c.ID) == "" && CheckText(c.Switch) == "" &&
		!c.SetupTime.Before(MinTime) && !c.SetupTime.After(MaxTime)
}

// materialize turns the decoded string spans into the CDR's string fields,
// with a single allocation.
func (c *CDR) materialize() {
	if len(c.scratch) == 0 {
		return
	}
	all := string(c.scratch)
	get := func(f int) string { return all[c.spans[f][0]:c.spans[f][1]] }
	c.ID, c.Switch = get(fID), get(fSwitch)
	c.SrcIP, c.SrcUser, c.ANI, c.Dst = get(fSrcIP), get(fSrcUser), get(fANI), get(fDst)
	c.TermIP, c.TermUser = get(fTermIP), get(fTermUser)
}

// textFields names the string fields in the order of CDR.spans.
var textFields = [...]string{fID: "id", fSwitch: "switch", fSrcIP: "src_ip", fSrcUser: "src_user", fANI: "ani",
	fDst: "dst", fTermIP: "term_ip", fTermUser: "term_user"}

// CheckText says what is wrong with the value of a CDR's string field —
// longer than MaxTextLen bytes, a control character, invalid UTF-8 — or ""
// when nothing is.
func CheckText(s string) string {
	if len(s) > MaxTextLen {
		return "longer than " + strconv.Itoa(MaxTextLen) + " bytes"
	}
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b < 0x20 || b == 0x7f {
				return "contains a control character"
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return "not valid UTF-8"
		}
		if unicode.IsControl(r) {
			return "contains a control character"
		}
		i += size
	}
	return ""
}

func (c *CDR) validate(d *decoder) error {
	for f := fID; f < fConnect; f++ {
		sp := c.spans[f]
		if p := CheckText(unsafeString(c.scratch[sp[0]:sp[1]])); p != "" {
			return &MalformedError{Detail: textFields[f] + ": " + p}
		}
	}
	switch {
	case d.seen&hasID == 0 || c.ID == "":
		return &MalformedError{Detail: "missing id"}
	case d.seen&hasSetup == 0:
		return &MalformedError{Detail: "missing setup_time"}
	case d.seen&hasDisconnect == 0:
		return &MalformedError{Detail: "missing disconnect_time"}
	case c.DisconnectTime.Before(c.SetupTime):
		return &MalformedError{Detail: "disconnect_time before setup_time"}
	case !c.ConnectTime.IsZero() && c.ConnectTime.Before(c.SetupTime):
		return &MalformedError{Detail: "connect_time before setup_time"}
	case !c.ConnectTime.IsZero() && c.ConnectTime.After(c.DisconnectTime):
		return &MalformedError{Detail: "connect_time after disconnect_time"}
	case d.seen&hasDst == 0 || c.Dst == "":
		return &MalformedError{Detail: "missing dst"}
	case c.SetupTime.Before(MinTime) || c.DisconnectTime.After(MaxTime):
		return &MalformedError{Detail: "times outside 1970-01-01 .. 2105-12-31"}
	}
	switch {
	case c.ConnectTime.IsZero():
		c.Duration = 0
	case d.seen&hasDuration == 0:
		c.Duration = c.DisconnectTime.Sub(c.ConnectTime)
		if c.Duration > MaxDuration {
			return &MalformedError{Detail: "connect_time to disconnect_time longer than a year"}
		}
	default:
		if span := c.DisconnectTime.Sub(c.SetupTime); c.Duration > span+durationSlack {
			return &MalformedError{Detail: "duration " + seconds(c.Duration) + " s is longer than setup_time to disconnect_time (" +
				seconds(span) + " s)"}
		}
	}
	return nil
}

// seconds formats d in seconds, exactly ("60", "30.25").
func seconds(d time.Duration) string {
	s := strconv.FormatInt(int64(d/time.Second), 10)
	if frac := d % time.Second; frac != 0 {
		f := strconv.FormatInt(int64(frac)+int64(time.Second), 10)[1:] // nine digits, leading zeros kept
		s += "." + strings.TrimRight(f, "0")
	}
	return s
}

// unsafeString views b as a string without copying; b must not change
// while the string is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// MinTime and MaxTime bound the times a CDR may carry: what every store of
// rated calls (ClickHouse DateTime) can hold.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

// NormalizeNumber strips a leading '+' from a dialed number and reports
// whether the rest is a non-empty string of at most MaxNumberLen digits. It
// does not allocate.
func NormalizeNumber(dst string) (string, bool) {
	n, problem := CheckNumber(dst)
	return n, problem == ""
}

// CheckNumber strips a leading '+' from a dialed number and returns it with
// what is wrong with it as the detail of a malformed CDR ("" when it is a
// non-empty string of at most MaxNumberLen digits). The worker and the
// offline rater report the same detail. It does not allocate.
func CheckNumber(dst string) (number, problem string) {
	if len(dst) > 0 && dst[0] == '+' {
		dst = dst[1:]
	}
	if dst == "" {
		return "", "dst: no digits"
	}
	for i := 0; i < len(dst); i++ {
		if dst[i] < '0' || dst[i] > '9' {
			return dst, "dst: not a number (digits only, after any tech prefix)"
		}
	}
	if len(dst) > MaxNumberLen {
		return dst, "dst: more than " + strconv.Itoa(MaxNumberLen) + " digits"
	}
	return dst, ""
}

// maxDepth bounds the nesting of skipped values.
const maxDepth = 512

type decoder struct {
	b       []byte
	i       int
	scratch []byte
	seen    uint8
	given   uint16 // the contract's fields read so far (fieldBit)
	whole   bool   // the object was read to its end (its JSON is sound)
	first   string // the first field that broke the contract, read past
	lone    bool   // the last string held an unpaired surrogate escape
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object decodes the top-level object into c and returns a malformed
// detail, or "".
func (d *decoder) object(c *CDR) string {
	d.ws()
	if d.i >= len(d.b) {
		return "invalid json: empty message"
	}
	if d.b[d.i] != '{' {
		return "invalid json: not an object"
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return d.end()
	}
	var key [24]byte
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return "invalid json: expected a field name"
		}
		// Field names of interest are short ASCII; decode the name into key
		// only when it is, anything else is an unknown field.
		start := len(d.scratch)
		if !d.str() {
			return "invalid json: bad string"
		}
		name := d.scratch[start:]
		known := len(name) <= len(key)
		n := copy(key[:], name)
		d.scratch = d.scratch[:start]
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return "invalid json: expected ':'"
		}
		d.i++
		d.ws()
		if d.i >= len(d.b) {
			return "invalid json: unexpected end"
		}
		var detail string
		if known {
			if bit := fieldBit(string(key[:n])); bit != 0 {
				if d.given&bit != 0 && d.first == "" {
					// Readers differ on which of the two counts: the
					// dedupe key, the price and the raw row could each
					// take another.
					d.first = string(key[:n]) + ": given twice"
				}
				d.given |= bit
			}
			detail = d.field(c, string(key[:n])) // no allocation: switch on a converted string
		} else if !d.skip() {
			detail = "invalid json: bad value"
		}
		switch {
		case detail == "":
		case strings.HasPrefix(detail, "invalid json"):
			return detail
		case d.first == "":
			// A field of the wrong type or value: read on, so that the
			// rest of the message (its id, its times) still names the call.
			d.first = detail
		}
		d.ws()
		if d.i >= len(d.b) {
			return "invalid json: unexpected end"
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return d.end()
		default:
			return "invalid json: expected ',' or '}'"
		}
	}
}

func (d *decoder) end() string {
	d.ws()
	if d.i != len(d.b) {
		return "invalid json: data after the object"
	}
	d.whole = true
	return d.first
}

// fieldBit is the bit of a field of the contract in decoder.given, 0 for
// any other name.
func fieldBit(name string) uint16 {
	switch name {
	case "id":
		return 1 << 0
	case "switch":
		return 1 << 1
	case "src_ip":
		return 1 << 2
	case "src_user":
		return 1 << 3
	case "ani":
		return 1 << 4
	case "dst":
		return 1 << 5
	case "term_ip":
		return 1 << 6
	case "term_user":
		return 1 << 7
	case "setup_time":
		return 1 << 8
	case "connect_time":
		return 1 << 9
	case "disconnect_time":
		return 1 << 10
	case "duration":
		return 1 << 11
	case "sip_code":
		return 1 << 12
	case "cause":
		return 1 << 13
	}
	return 0
}

func (d *decoder) field(c *CDR, name string) string {
	switch name {
	case "id":
		return d.strField(c, fID, hasID, name)
	case "switch":
		return d.strField(c, fSwitch, 0, name)
	case "src_ip":
		return d.strField(c, fSrcIP, 0, name)
	case "src_user":
		return d.strField(c, fSrcUser, 0, name)
	case "ani":
		return d.strField(c, fANI, 0, name)
	case "dst":
		return d.strField(c, fDst, hasDst, name)
	case "term_ip":
		return d.strField(c, fTermIP, 0, name)
	case "term_user":
		return d.strField(c, fTermUser, 0, name)
	case "setup_time":
		return d.timeField(&c.SetupTime, hasSetup, name)
	case "connect_time":
		return d.timeField(&c.ConnectTime, hasConnect, name)
	case "disconnect_time":
		return d.timeField(&c.DisconnectTime, hasDisconnect, name)
	case "duration":
		return d.durationField(c)
	case "sip_code":
		return d.intField(&c.SIPCode, name)
	case "cause":
		return d.intField(&c.Cause, name)
	}
	if !d.skip() {
		return "invalid json: bad value"
	}
	return ""
}

func (d *decoder) null() bool {
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

func (d *decoder) strField(c *CDR, f int, bit uint8, name string) string {
	if d.null() {
		c.spans[f] = [2]int{}
		d.seen &^= bit
		return ""
	}
	if d.b[d.i] != '"' {
		if !d.skip() {
			return "invalid json: bad value"
		}
		return name + ": not a string"
	}
	start := len(d.scratch)
	if !d.str() {
		return "invalid json: bad string"
	}
	if d.lone {
		// Two ids that differ only in their unpaired surrogates would
		// decode to the same text (U+FFFD each) and share a dedupe key.
		d.lone = false
		d.scratch = d.scratch[:start]
		return name + ": an unpaired surrogate escape (\\ud800-\\udfff)"
	}
	c.spans[f] = [2]int{start, len(d.scratch)}
	d.seen |= bit
	return ""
}

func (d *decoder) timeField(t *time.Time, bit uint8, name string) string {
	if d.null() {
		*t = time.Time{}
		d.seen &^= bit
		return ""
	}
	if d.b[d.i] != '"' {
		if !d.skip() {
			return "invalid json: bad value"
		}
		return name + ": not an RFC 3339 time"
	}
	start := len(d.scratch)
	if !d.str() {
		return "invalid json: bad string"
	}
	text := d.scratch[start:]
	d.scratch = d.scratch[:start]
	if len(text) == 0 && bit == hasConnect { // "" = not answered
		*t = time.Time{}
		d.seen &^= bit
		return ""
	}
	v, ok := parseRFC3339(text)
	if !ok {
		return name + ": not an RFC 3339 time"
	}
	*t = v
	d.seen |= bit
	return ""
}

func (d *decoder) durationField(c *CDR) string {
	if d.null() {
		d.seen &^= hasDuration
		c.Duration = 0
		return ""
	}
	start := d.i
	if !d.number() {
		if !d.skip() {
			return "invalid json: bad value"
		}
		return "duration: not a number"
	}
	v, ok := parseSeconds(d.b[start:d.i])
	if !ok {
		if d.b[start] == '-' {
			return "duration: negative"
		}
		return "duration: out of range"
	}
	c.Duration = v
	d.seen |= hasDuration
	return ""
}

func (d *decoder) intField(v *int, name string) string {
	if d.null() {
		*v = 0
		return ""
	}
	start := d.i
	if !d.number() {
		if !d.skip() {
			return "invalid json: bad value"
		}
		return name + ": not an integer"
	}
	n, err := strconv.Atoi(string(d.b[start:d.i]))
	if err != nil {
		return name + ": not an integer"
	}
	*v = n
	return ""
}

// str decodes the JSON string at d.i, appending its bytes to d.scratch; an
// unpaired surrogate escape becomes U+FFFD and sets d.lone.
func (d *decoder) str() bool {
	d.lone = false
	d.i++ // opening quote
	for {
		// copy the run of plain bytes
		j := d.i
		for j < len(d.b) {
			ch := d.b[j]
			if ch == '"' || ch == '\\' || ch < 0x20 {
				break
			}
			j++
		}
		d.scratch = append(d.scratch, d.b[d.i:j]...)
		d.i = j
		if d.i >= len(d.b) {
			return false
		}
		switch ch := d.b[d.i]; {
		case ch == '"':
			d.i++
			return true
		case ch < 0x20:
			return false
		}
		// backslash
		if d.i+1 >= len(d.b) {
			return false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			d.scratch = append(d.scratch, e)
		case 'b':
			d.scratch = append(d.scratch, '\b')
		case 'f':
			d.scratch = append(d.scratch, '\f')
		case 'n':
			d.scratch = append(d.scratch, '\n')
		case 'r':
			d.scratch = append(d.scratch, '\r')
		case 't':
			d.scratch = append(d.scratch, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return false
			}
			if utf16.IsSurrogate(r) {
				d.lone = true // unless a low half follows, below
				r2 := utf8.RuneError
				if len(d.b)-d.i >= 6 && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if lo, ok := d.hex4(); ok && utf16.DecodeRune(r, lo) != utf8.RuneError {
						r2 = utf16.DecodeRune(r, lo)
						d.lone = false
					} else {
						d.i = save
					}
				}
				r = r2
			}
			d.scratch = utf8.AppendRune(d.scratch, r)
		default:
			return false
		}
	}
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for k := 0; k < 4; k++ {
		ch := d.b[d.i+k]
		switch {
		case ch >= '0' && ch <= '9':
			r = r<<4 | rune(ch-'0')
		case ch >= 'a' && ch <= 'f':
			r = r<<4 | rune(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			r = r<<4 | rune(ch-'A'+10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}

// number consumes a JSON number at d.i.
func (d *decoder) number() bool {
	i := d.i
	if i < len(d.b) && d.b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(d.b) && d.b[i] >= '0' && d.b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(d.b) && d.b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(d.b) && d.b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(d.b) && (d.b[i] == 'e' || d.b[i] == 'E') {
		i++
		if i < len(d.b) && (d.b[i] == '+' || d.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	d.i = i
	return true
}

// skip consumes any JSON value at d.i. Nesting is tracked in a bit stack
// (1 = object), bounded by maxDepth, so skipping is linear in the input.
func (d *decoder) skip() bool {
	var stack [maxDepth / 64]uint64
	depth := 0
	for {
		// a value starts here
		d.ws()
		if d.i >= len(d.b) {
			return false
		}
		switch ch := d.b[d.i]; {
		case ch == '{' || ch == '[':
			if depth >= maxDepth {
				return false
			}
			if ch == '{' {
				stack[depth/64] |= 1 << (depth % 64)
			} else {
				stack[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			d.i++
			d.ws()
			if d.i < len(d.b) && (d.b[d.i] == '}' || d.b[d.i] == ']') {
				break // empty container: closed below
			}
			if ch == '{' && !d.skipKey() {
				return false
			}
			continue
		case ch == '"':
			mark := len(d.scratch)
			ok := d.str()
			d.scratch = d.scratch[:mark]
			if !ok {
				return false
			}
		case ch == '-' || (ch >= '0' && ch <= '9'):
			if !d.number() {
				return false
			}
		case ch == 't' && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
			d.i += 4
		case ch == 'f' && len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
			d.i += 5
		case ch == 'n' && d.null():
		default:
			return false
		}
		// a value ended: close containers until one continues with ','
		for {
			if depth == 0 {
				return true
			}
			d.ws()
			if d.i >= len(d.b) {
				return false
			}
			isObj := stack[(depth-1)/64]>>((depth-1)%64)&1 == 1
			ch := d.b[d.i]
			d.i++
			if ch == ',' {
				if isObj {
					d.ws()
					if !d.skipKey() {
						return false
					}
				}
				break
			}
			if (ch == '}' && isObj) || (ch == ']' && !isObj) {
				depth--
				continue
			}
			return false
		}
	}
}

func (d *decoder) skipKey() bool {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return false
	}
	mark := len(d.scratch)
	ok := d.str()
	d.scratch = d.scratch[:mark]
	if !ok {
		return false
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		return false
	}
	d.i++
	return true
}

// parseRFC3339 parses an RFC 3339 timestamp ("2024-02-15T10:01:06Z",
// "2024-02-15T11:01:06.5+01:00") without allocating; the result is UTC.
// Fractions beyond nanoseconds are truncated, as time.Parse does.
func parseRFC3339(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") || b[4] != '-' || b[7] != '-' || b[13] != ':' || b[16] != ':' ||
		(b[10] != 'T' && b[10] != 't') {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if rest[0] == '.' {
		k := 1
		scale := 100_000_000
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			nsec += int(rest[k]-'0') * scale
			scale /= 10
			k++
		}
		if k == 1 {
			return time.Time{}, false
		}
		rest = rest[k:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// parseSeconds converts the text of a JSON number of seconds into a
// Duration exactly, rounding a remainder finer than a nanosecond up. It
// reports false for a negative value (other than -0) or one above
// MaxDuration. b must be a valid JSON number.
func parseSeconds(b []byte) (time.Duration, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	mant, exp := b, 0
	for k, ch := range b {
		if ch == 'e' || ch == 'E' {
			mant = b[:k]
			e := b[k+1:]
			eneg := e[0] == '-'
			if e[0] == '-' || e[0] == '+' {
				e = e[1:]
			}
			for _, ch := range e {
				if exp < 100_000 {
					exp = exp*10 + int(ch-'0')
				}
			}
			if eneg {
				exp = -exp
			}
			break
		}
	}
	intLen := len(mant)
	for k, ch := range mant {
		if ch == '.' {
			intLen = k
			break
		}
	}
	var ns int64
	up, nonzero := false, false
	pos := 0 // digit index, skipping the point
	for _, ch := range mant {
		if ch == '.' {
			continue
		}
		pow := intLen - 1 - pos + exp + 9 // power of ten of this digit, in nanoseconds
		pos++
		if ch == '0' {
			continue
		}
		nonzero = true
		switch {
		case pow < 0:
			up = true
		case pow > 18:
			return 0, false
		default:
			ns += int64(ch-'0') * pow10[pow]
			if ns > int64(MaxDuration) {
				return 0, false
			}
		}
	}
	if neg && nonzero {
		return 0, false
	}
	if up {
		ns++
	}
	if ns > int64(MaxDuration) {
		return 0, false
	}
	return time.Duration(ns), true
}
