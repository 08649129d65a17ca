package ingest

import (
	"context"
	"testing"
	"time"
)

func testPartition(n int) *Partition {
	p := &Partition{msgs: make(chan Message, n), errc: make(chan error, 1), timer: time.NewTimer(time.Hour)}
	for i := 0; i < n; i++ {
		p.msgs <- Message{Offset: int64(i)}
	}
	return p
}

// TestFetch: a batch takes what is waiting up to max, in order; with less
// waiting it returns what came once the wait has passed; a stop returns
// what it has.
func TestFetch(t *testing.T) {
	ctx := context.Background()
	f := func(waiting, max, want int) {
		t.Helper()
		p := testPartition(waiting)
		got, err := p.Fetch(ctx, nil, max, 10*time.Millisecond)
		if err != nil || len(got) != want {
			t.Fatalf("%d waiting, max %d: got %d messages (%v), want %d", waiting, max, len(got), err, want)
		}
		for i, m := range got {
			if m.Offset != int64(i) {
				t.Fatalf("message %d has offset %d", i, m.Offset)
			}
		}
	}
	f(1, 10, 1)
	f(10, 10, 10)
	f(1000, 300, 300)
	f(1000, 5000, 1000)
	f(600, 5000, 600)

	// More keep arriving than the batch may take: it still ends at max.
	stream := testPartition(0)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case stream.msgs <- Message{Offset: int64(i)}:
			case <-stop:
				return
			}
		}
	}()
	if got, _ := stream.Fetch(ctx, nil, 20000, time.Hour); len(got) != 20000 {
		t.Fatalf("a steady stream: got %d messages, want 20000", len(got))
	}

	// A stop while the batch waits for more returns what it has.
	p := testPartition(3)
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if got, err := p.Fetch(cctx, nil, 10, time.Hour); err != nil || len(got) != 3 {
		t.Fatalf("stopped: got %d messages (%v), want 3", len(got), err)
	}
}
