package rater

import (
	"errors"
	"fmt"
	"time"

	"github.com/tarifa/tarifa/ingest"
)

// batchRater decodes and rates messages into XDRs; it is owned by one
// partition goroutine and reuses its hashing state.
type batchRater struct {
	keys *keyer
}

func newBatchRater() *batchRater { return &batchRater{keys: newKeyer()} }

// rate fills x from message m rated against cat. No input may stop the
// worker (DESIGN.md invariant 3): a panic while rating one message turns
// that message into a malformed xDR instead.
func (r *batchRater) rate(cat *Catalog, m *ingest.Message, x *XDR, version uint64) {
	*x = XDR{CDR: x.CDR} // Decode resets the CDR but keeps its decode buffer
	x.Raw, x.Partition, x.Offset, x.Received, x.Version = m.Value, m.Partition, m.Offset, receivedAt(m.Time), version
	defer func() {
		if p := recover(); p != nil {
			MarkMalformed(x, fmt.Errorf("internal error rating this message: %v", p))
		}
	}()
	err := ingest.Decode(m.Value, &x.CDR)
	if err != nil {
		MarkMalformed(x, err)
		return
	}
	x.ID = x.CDR.ID
	r.keys.key(x.CDR.Switch, x.CDR.ID, &x.Key)
	cat.Rate(&x.CDR, &x.Rating)
}

// receivedAt is the record's timestamp, or a fixed stand-in when the
// producer set none or one ClickHouse's DateTime cannot hold (before 1970,
// after 2105) — fixed, so that a replayed message lands on the same row.
func receivedAt(t time.Time) time.Time {
	if t.Year() < 1971 || t.Year() > 2105 {
		return noTimestamp
	}
	return t.UTC()
}

var noTimestamp = time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)

// MarkMalformed turns x into the xDR of a message that is not a valid CDR:
// a synthetic id from its bytes, the detail of the decoder's complaint, and
// the record's timestamp for any time it lacks, so a replay lands on the
// same row.
func MarkMalformed(x *XDR, err error) {
	x.Malformed = true
	x.ID = MalformedID(x.Raw, x.Partition, x.Offset)
	var me *ingest.MalformedError
	if errors.As(err, &me) {
		x.Detail = me.Detail
	} else {
		x.Detail = err.Error()
	}
	x.Rating = Rating{Status: "mismatch", Reason: ReasonMalformed}
	if x.CDR.SetupTime.IsZero() {
		x.CDR.SetupTime = x.Received
	}
	if x.CDR.DisconnectTime.IsZero() || x.CDR.DisconnectTime.Before(x.CDR.SetupTime) {
		x.CDR.DisconnectTime = x.CDR.SetupTime
	}
	x.Key = [16]byte{}
}
