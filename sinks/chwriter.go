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

// chWriter coalesces the ClickHouse writes of concurrent batch commits: one
// goroutine inserts, and every batch that arrives while it is busy goes out
// with the next insert. Fewer, larger inserts cost ClickHouse less per row
// (part creation, then merging) than one insert per partition batch.
type chWriter struct {
	ch   driver.Conn
	xc   xdrCols // blocks of the insert in flight, reused by the next
	rc   rawCols
	reqs chan *chRequest
	quit chan struct{}
	done chan struct{}
}

type chRequest struct {
	xs  []rater.XDR
	err chan error
}

// maxCoalesce bounds how many batches share one insert.
const maxCoalesce = 32

func newCHWriter(ch driver.Conn) *chWriter {
	w := &chWriter{ch: ch, reqs: make(chan *chRequest), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// write inserts xs, together with whatever other batches are waiting, and
// returns once they are written or failed. It waits for the insert even
// when ctx ends, because the insert reads xs; the insert has its own timeout.
func (w *chWriter) write(ctx context.Context, xs []rater.XDR) error {
	req := &chRequest{xs: xs, err: make(chan error, 1)}
	select {
	case w.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.quit:
		return errClosed
	}
	return <-req.err
}

func (w *chWriter) run() {
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
		parts := make([][]rater.XDR, len(batch))
		for i, r := range batch {
			parts[i] = r.xs
		}
		ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
		err := writeClickHouse(ctx, w.ch, parts, &w.xc, &w.rc)
		if err != nil && len(batch) > 1 && errors.Is(err, rater.ErrRefused) {
			// One batch's data spoiled a shared insert: insert each on its
			// own, so that only the batch at fault is refused (and split
			// by its worker) while the others commit.
			for _, r := range batch {
				r.err <- writeClickHouse(ctx, w.ch, [][]rater.XDR{r.xs}, &w.xc, &w.rc)
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

// close stops the writer after the insert in flight.
func (w *chWriter) close() {
	close(w.quit)
	<-w.done
}
