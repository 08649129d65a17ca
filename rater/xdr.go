package rater

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/fnv"
	"time"

	"github.com/tarifa/tarifa/ingest"
)

// XDR is one rated CDR: the decoded call, where it came from and how each side
// was rated. A malformed message is an XDR too (Malformed, with Detail and a
// synthetic ID derived from its bytes), so that nothing a switch sent is lost.
type XDR struct {
	CDR       ingest.CDR
	ID        string // the CDR id, or the synthetic id of a malformed message
	Malformed bool
	Detail    string   // why a malformed message was rejected
	Key       [16]byte // dedupe key: a hash of switch and id; zero for malformed messages
	Rating    Rating
	Raw       []byte // the message as received
	Partition int
	Offset    int64
	Received  time.Time // the Kafka record timestamp
	Version   uint64    // xDR version: later ratings of the same CDR replace earlier ones; the store stamps its database clock at commit
}

// Deduped reports whether the XDR takes part in dedupe (every decodable CDR;
// malformed messages move no balance and are idempotent by their synthetic id).
func (x *XDR) Deduped() bool { return !x.Malformed }

// Deltas calls fn with each balance movement the XDR causes: minus the orig
// cost for the customer, plus the term cost for the vendor.
func (x *XDR) Deltas(fn func(clientID, micro int64)) {
	if x.Malformed || x.Rating.Status != "rated" {
		return
	}
	if x.Rating.Orig.CostMicro != 0 {
		fn(x.Rating.Orig.ClientID, -x.Rating.Orig.CostMicro)
	}
	if x.Rating.Term.Reason == ReasonNone && x.Rating.Term.ClientID != 0 && x.Rating.Term.CostMicro != 0 {
		fn(x.Rating.Term.ClientID, x.Rating.Term.CostMicro)
	}
}

// keyer computes dedupe keys; it is owned by one goroutine.
type keyer struct{ h hash.Hash }

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
