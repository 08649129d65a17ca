package rater

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/tarifa/tarifa/ingest"
)

// XDR is one rated CDR: the decoded call, where it came from and how each side
// was rated. A malformed message is an XDR too (Malformed, with Detail), so
// that nothing a switch sent is lost: it keeps its id when what was read
// still names the call (ingest.CDR.Identified), else it gets a synthetic ID
// derived from its bytes and place in the log.
type XDR struct {
	CDR       ingest.CDR
	ID        string // the CDR id, or the synthetic id of a malformed message or a conflicting re-send
	Malformed bool
	// Quarantined marks a malformed xDR that a sink refused to store as it
	// was (MarkQuarantined): its row must replace whatever a failed attempt
	// wrote for it.
	Quarantined bool
	Detail      string   // why the CDR is malformed or conflicts; never empty for those
	Key         [16]byte // dedupe key: a hash of switch and id; zero when the XDR takes no part in dedupe
	Content     uint64   // a hash of what the switch said about the call, to tell a re-send from a conflicting one
	// ConflictOf is the id of the billed CDR this one shares its switch and
	// id with, when it is a conflicting re-send (reason duplicate_conflict).
	ConflictOf string
	Rating     Rating
	Raw        []byte // the message as received
	Partition  int
	Offset     int64
	Received   time.Time // the Kafka record timestamp
	Version    uint64    // xDR version: later ratings of the same CDR replace earlier ones; the store stamps its database clock at commit
}

// Deduped reports whether the XDR takes part in dedupe: every CDR with a
// usable switch and id, malformed ones included (they move no balance, but
// must not replace the row of a billed CDR). Messages with a synthetic id
// are idempotent by it.
func (x *XDR) Deduped() bool { return x.Key != [16]byte{} && !x.Duplicate() }

// MarkConflict turns x, a CDR whose switch and id are those of a billed CDR
// (the message at partition and offset) but whose content differs, into an
// xDR of its own: reason duplicate_conflict, a synthetic id
// made of its id and content (a re-send of the same conflicting message
// lands on the same row), moving no balance. It is kept, never dropped.
func (x *XDR) MarkConflict(partition int, offset int64) {
	x.ConflictOf = x.ID
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], x.Content)
	x.ID = x.ID + "#conflict-" + hex.EncodeToString(h[:])
	x.Detail = "same switch and id as the CDR at partition " + strconv.Itoa(partition) + " offset " +
		strconv.FormatInt(offset, 10) + ", with other content"
	x.Rating = Rating{Status: "mismatch", Reason: ReasonDuplicateConflict}
	x.Key = [16]byte{}
}

// Conflict reports whether x is a conflicting re-send (see MarkConflict).
func (x *XDR) Conflict() bool { return x.ConflictOf != "" }

// Deltas calls fn with each balance movement the XDR causes: minus the orig
// cost for the customer, plus the term cost for the vendor.
func (x *XDR) Deltas(fn func(clientID, micro int64)) {
	if d := x.origDelta(); d != 0 {
		fn(x.Rating.Orig.ClientID, d)
	}
	if d := x.termDelta(); d != 0 {
		fn(x.Rating.Term.ClientID, d)
	}
}

// Moves reports whether the XDR changes a balance: whether Deltas would
// call its function at all. The commit path asks it of every XDR several
// times, so it is a plain test rather than a call of Deltas.
func (x *XDR) Moves() bool { return x.origDelta() != 0 || x.termDelta() != 0 }

// origDelta is the customer's balance movement, termDelta the vendor's.
func (x *XDR) origDelta() int64 {
	if x.Malformed || x.Rating.Status != "rated" {
		return 0
	}
	return -x.Rating.Orig.CostMicro
}

func (x *XDR) termDelta() int64 {
	if x.Malformed || x.Rating.Status != "rated" || x.Rating.Term.Reason != ReasonNone || x.Rating.Term.ClientID == 0 {
		return 0
	}
	return x.Rating.Term.CostMicro
}

// keyer computes dedupe keys and content hashes; it is owned by one
// goroutine.
type keyer struct {
	h   hash.Hash
	buf []byte
}

func newKeyer() *keyer { return &keyer{h: fnv.New128a()} }

// key is FNV-128a of switch, a zero byte and id: 128 bits keep collisions
// out of reach for the 48-hour window of any carrier's traffic.
func (k *keyer) key(sw, id string, out *[16]byte) {
	k.h.Reset()
	k.h.Write([]byte(sw))
	k.h.Write([]byte{0})
	k.h.Write([]byte(id))
	k.h.Sum(out[:0])
}

// content hashes what a switch says about a call — its times, duration,
// parties and result — so that a re-send is told from a correction: two
// messages with the same content are the same CDR however their JSON is
// laid out. A malformed message hashes its bytes, under a tag no valid
// CDR's content can take.
func (k *keyer) content(c *ingest.CDR, raw []byte, malformed bool) uint64 {
	if malformed {
		return fnvSum(fnvAdd(fnvAdd(fnvOffset, []byte{0xff}), raw))
	}
	b := k.buf[:0]
	for _, t := range [...]time.Time{c.SetupTime, c.ConnectTime, c.DisconnectTime} {
		var ns int64
		if !t.IsZero() {
			ns = t.UnixNano()
		}
		b = binary.BigEndian.AppendUint64(b, uint64(ns))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.Duration))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(c.SIPCode)))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(c.Cause)))
	for _, s := range [...]string{c.SrcIP, c.SrcUser, c.ANI, c.Dst, c.TermIP, c.TermUser} {
		b = append(b, s...)
		b = append(b, 0) // fields hold no NUL (ingest.Decode), so this separates them
	}
	k.buf = b
	return fnvSum(fnvAdd(fnvOffset, b))
}

// ContentOf is the content hash (XDR.Content) of a CDR message as the
// worker would compute it, or 0 when the message is not a valid CDR.
func ContentOf(raw []byte) uint64 {
	var c ingest.CDR
	if ingest.Decode(raw, &c) != nil {
		return 0
	}
	return newKeyer().content(&c, nil, false)
}

// FNV-1a, 64 bits, without the allocation of hash/fnv's interface.
const fnvOffset = uint64(14695981039346656037)

func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// fnvSum keeps 0 free: it means "content unknown" in the store.
func fnvSum(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// MalformedID is the synthetic id of a malformed message: a hash of its
// bytes and its place in the log, so a replayed message replaces its own row
// and two identical garbage messages still count as two.
func MalformedID(raw []byte, partition int, offset int64) string {
	h := sha256.New()
	h.Write(raw)
	var place [12]byte
	binary.BigEndian.PutUint32(place[:4], uint32(partition))
	binary.BigEndian.PutUint64(place[4:], uint64(offset))
	h.Write(place[:])
	return "malformed-" + hex.EncodeToString(h.Sum(nil)[:12])
}
