package rater

import (
	"errors"
	"fmt"
	"time"

	"github.com/tarifa/tarifa/ingest"
)

// Rater decodes and rates messages into XDRs: the one path from the bytes a
// switch sent to a rated xDR, used by the worker for live traffic and by
// rerating jobs for the raw CDRs of the past. A Rater is owned by one
// goroutine (it reuses its hashing state); make one per goroutine.
type Rater struct {
	keys *keyer
}

// NewRater returns a Rater.
func NewRater() *Rater { return &Rater{keys: newKeyer()} }

// Rate fills x from message m rated against cat: the decoded CDR, its
// dedupe key and content hash, both legs' rating, or a malformed xDR with
// its detail. version is the xDR version until a store stamps its own. No
// input may stop the worker (DESIGN.md invariant 3): a panic while rating
// one message turns that message into a malformed xDR instead. x keeps its
// decode buffer from a previous use.
func (r *Rater) Rate(cat *Catalog, m *ingest.Message, x *XDR, version uint64) {
	*x = XDR{CDR: x.CDR} // Decode resets the CDR but keeps its decode buffer
	x.Raw, x.Partition, x.Offset, x.Received, x.Version = m.Value, m.Partition, m.Offset, receivedAt(m.Time), version
	defer func() {
		if p := recover(); p != nil {
			r.malformed(x, fmt.Errorf("internal error rating this message: %v", p))
		}
	}()
	if err := ingest.Decode(m.Value, &x.CDR); err != nil {
		r.malformed(x, err)
		return
	}
	x.ID = x.CDR.ID
	r.keys.key(x.CDR.Switch, x.CDR.ID, &x.Key)
	x.Content = r.keys.content(&x.CDR, nil, false)
	cat.Rate(&x.CDR, &x.Rating)
	if x.Rating.Reason == ReasonMalformed {
		x.Malformed, x.Detail = true, x.Rating.Detail
	}
}

// malformed marks x malformed (see MarkMalformed) and, when it keeps its
// id, gives it the dedupe key and content hash that let the store keep it
// off the row of a billed CDR with the same id.
func (r *Rater) malformed(x *XDR, err error) {
	MarkMalformed(x, err)
	if x.ID == x.CDR.ID && x.ID != "" {
		r.keys.key(x.CDR.Switch, x.CDR.ID, &x.Key)
		x.Content = r.keys.content(&x.CDR, x.Raw, true)
	}
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

// MarkMalformed turns x into the xDR of a message that is not a valid CDR,
// with the decoder's complaint as its detail (never empty). It keeps the
// CDR's id when the CDR still names its call (ingest.CDR.Identified), so a
// corrected re-send replaces its row; otherwise it gets a synthetic id from
// its bytes and place in the log, so a replay lands on the same row. Every
// time it carries is made one that every store can hold: a setup time
// outside 1970–2105 becomes the record's timestamp, a disconnect time
// outside the range or before the setup becomes the setup time, a connect
// time outside [setup, disconnect] is dropped. The bytes as received stay
// in Raw (cdrs_raw.raw). x.Key is left zero: the caller that keeps the id
// computes it.
func MarkMalformed(x *XDR, err error) {
	c := &x.CDR
	identified := c.Identified()
	x.Malformed = true
	var me *ingest.MalformedError
	if errors.As(err, &me) {
		x.Detail = me.Detail
	} else {
		x.Detail = err.Error()
	}
	if x.Detail == "" {
		x.Detail = "malformed"
	}
	x.Rating = Rating{Status: "mismatch", Reason: ReasonMalformed, Detail: x.Detail}
	x.Key, x.Content = [16]byte{}, 0
	if identified {
		x.ID = c.ID
	} else {
		x.ID = MalformedID(x.Raw, x.Partition, x.Offset)
		c.ID = ""
	}
	if !inRange(c.SetupTime) {
		c.SetupTime = x.Received
	}
	if !inRange(c.DisconnectTime) || c.DisconnectTime.Before(c.SetupTime) {
		c.DisconnectTime = c.SetupTime
	}
	if !c.ConnectTime.IsZero() && (c.ConnectTime.Before(c.SetupTime) || c.ConnectTime.After(c.DisconnectTime)) {
		c.ConnectTime = time.Time{}
	}
	c.Duration = 0
	if !identified {
		// The switch name is part of the row's key; one that cannot be
		// stored as text stays only in Raw.
		if ingest.CheckText(c.Switch) != "" {
			c.Switch = ""
		}
	}
	clearBadText(c)
}

// MarkQuarantined turns x into a malformed xDR because a sink refused to
// store it (err says why), after every check before the sinks passed: the
// safety net that keeps one bad message from stopping its partition. The
// CDR keeps its id, switch and setup time (validated already, so its row
// replaces whatever an attempt that failed wrote there); its other fields
// stay only in Raw. It moves no balance.
func MarkQuarantined(x *XDR, err error) {
	const maxDetail = 512
	detail := "quarantined: a sink refused it: " + err.Error()
	if len(detail) > maxDetail {
		detail = detail[:maxDetail]
	}
	x.Malformed, x.Quarantined, x.Detail = true, true, detail
	x.Rating = Rating{Status: "mismatch", Reason: ReasonMalformed, Detail: detail}
	c := &x.CDR
	c.SrcIP, c.SrcUser, c.ANI, c.Dst, c.TermIP, c.TermUser = "", "", "", "", "", ""
	c.Duration = 0
}

// clearBadText empties the text fields of a malformed CDR that no store
// should take as they are (too long, control characters, invalid UTF-8);
// they stay in Raw.
func clearBadText(c *ingest.CDR) {
	for _, s := range [...]*string{&c.SrcIP, &c.SrcUser, &c.ANI, &c.Dst, &c.TermIP, &c.TermUser} {
		if ingest.CheckText(*s) != "" {
			*s = ""
		}
	}
}

func inRange(t time.Time) bool { return !t.Before(ingest.MinTime) && !t.After(ingest.MaxTime) }
