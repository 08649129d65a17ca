package sinks

import (
	"context"
	"errors"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tarifa/tarifa/rater"
)

// insertTimeout bounds one coalesced insert.
const insertTimeout = 2 * time.Minute

// XDRWriter is the one writer of rated xDRs to ClickHouse: the worker's
// commits write xDRs with their raw CDRs, a rerating job writes new xDR
// versions alone (the raw CDRs do not change). One goroutine inserts, and
// every write that arrives while it is busy goes out with the next insert:
// fewer, larger inserts cost ClickHouse less per row (part creation, then
// merging) than one insert per partition batch. It is safe for concurrent
// use; Write blocks until its rows are written or failed.
type XDRWriter struct {
	ch   driver.Conn
	xc   xdrCols // blocks of the insert in flight, reused by the next
	rc   rawCols
	ro   rowOrder
	loc  *time.Location // the server's timezone, whose months partition the tables
	reqs chan *chRequest
	quit chan struct{}
	done chan struct{}
}

type chRequest struct {
	part writePart
	err  chan error
}

// writePart is the xDRs of one write and whether their raw CDRs go too.
type writePart struct {
	xs  []rater.XDR
	raw bool
}

// maxCoalesce bounds how many writes share one insert.
const maxCoalesce = 32

// NewXDRWriter starts a writer on ch; Close stops it.
func NewXDRWriter(ch driver.Conn) *XDRWriter {
	loc := time.UTC
	if v, err := ch.ServerVersion(); err == nil && v.Timezone != nil {
		loc = v.Timezone
	}
	w := &XDRWriter{ch: ch, loc: loc, reqs: make(chan *chRequest), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Write inserts the xDRs of xs that are not duplicates into xdrs, and their
// raw CDRs into cdrs_raw when raw is set, together with whatever other
// writes are waiting, and returns once they are written or failed. Rows
// replace earlier versions of the same CDR (ReplacingMergeTree by version).
// It waits for the insert even when ctx ends, because the insert reads xs;
// the insert has its own timeout. An error that refuses the data rather
// than the moment wraps rater.ErrRefused.
func (w *XDRWriter) Write(ctx context.Context, xs []rater.XDR, raw bool) error {
	req := &chRequest{part: writePart{xs: xs, raw: raw}, err: make(chan error, 1)}
	select {
	case w.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.quit:
		return errClosed
	}
	return <-req.err
}

// Conn is the ClickHouse connection the writer inserts through.
func (w *XDRWriter) Conn() driver.Conn { return w.ch }

func (w *XDRWriter) run() {
	defer close(w.done)
	for {
		var first *chRequest
		select {
		case first = <-w.reqs:
		case <-w.quit:
			return
		}
		batch := []*chRequest{first}
	gather:
		for len(batch) < maxCoalesce {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		parts := make([]writePart, len(batch))
		for i, r := range batch {
			parts[i] = r.part
		}
		ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
		err := writeClickHouse(ctx, w.ch, w.loc, parts, &w.xc, &w.rc, &w.ro)
		if err != nil && len(batch) > 1 && errors.Is(err, rater.ErrRefused) {
			// One write's data spoiled a shared insert: insert each on its
			// own, so that only the write at fault is refused (and split
			// by its worker) while the others commit.
			for _, r := range batch {
				r.err <- writeClickHouse(ctx, w.ch, w.loc, []writePart{r.part}, &w.xc, &w.rc, &w.ro)
			}
			cancel()
			continue
		}
		cancel()
		for _, r := range batch {
			r.err <- err
		}
	}
}

// Close stops the writer after the insert in flight; call it after the last
// Write returned.
func (w *XDRWriter) Close() {
	close(w.quit)
	<-w.done
}
