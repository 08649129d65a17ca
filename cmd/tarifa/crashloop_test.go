package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tarifa/tarifa/sinks/sinktest"
)

// startDevBroker builds cmd/devbroker of this tree and runs it as a private
// broker of the test on a free port (memory only), so that the test sees
// this tree's broker whatever the shared stack runs.
func startDevBroker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devbroker")
	if out, err := exec.Command("go", "build", "-o", bin, "../devbroker").CombinedOutput(); err != nil {
		t.Fatalf("build devbroker: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("devbroker output:\n%s", out)
		}
	})
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("private broker did not listen on %s\n%s", addr, out)
	return ""
}

// createTopic creates topic with n partitions.
func createTopic(t *testing.T, brokers, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers)}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: n, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// logEnds returns the log-end offset of each partition of topic.
func logEnds(t *testing.T, brokers, topic string, n int) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers)}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := 0; p < n; p++ {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(ctx, req)
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	ends := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("list offsets of %s/%d: %v", topic, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	return ends
}

// storedOffsets returns the next offset PostgreSQL holds per partition.
func storedOffsets(t *testing.T, db *sinktest.DB, topic string) map[int]int64 {
	t.Helper()
	rows, err := db.PG.Query(context.Background(), `SELECT "partition", next_offset FROM consumed_offsets WHERE topic = $1`, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int]int64{}
	for rows.Next() {
		var p int
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			t.Fatal(err)
		}
		got[p] = o
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func offsetsText(ends, stored map[int]int64) string {
	var ps []int
	for p := range ends {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, " p%d=%d/%d", p, stored[p], ends[p])
	}
	return b.String()
}

// TestWorkerCrashLoop SIGKILLs and restarts a worker three times within
// three seconds, as an orchestrator restarting a crashing worker does, each
// time while the group rebalances to take it in: next to a worker that
// stays up, and alone. Within 20 s of the last restart every partition must
// be consumed again — the traffic produced after it reaches PostgreSQL's
// stored offset on each of the 8 partitions — and every CDR is billed
// exactly once.
func TestWorkerCrashLoop(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	for _, tc := range []struct {
		name     string
		survivor bool
	}{{"next to a survivor", true}, {"alone", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers := startDevBroker(t)
			db, topic := setupPipeline(t)
			const partitions = 8
			createTopic(t, brokers, topic, partitions)
			ts := genTraffic(8000, 7)
			first, rest := ts.msgs[:4000], ts.msgs[4000:]
			produce(t, brokers, topic, first)

			extra := []string{"--brokers", brokers, "--batch-size", "100"}
			p := startWorker(t, bin, db, topic, extra...)
			procs, keep := []*workerProc{p}, []*workerProc{}
			waitConsumed(t, db, topic, 1000, 60*time.Second, p)
			if tc.survivor {
				keep = append(keep, p)
				p = startWorker(t, bin, db, topic, extra...)
				procs = append(procs, p)
				time.Sleep(time.Second)
			}
			for i := 0; i < 3; i++ {
				p.kill(t)
				p = startWorker(t, bin, db, topic, extra...)
				procs = append(procs, p)
				if i < 2 {
					time.Sleep(time.Second)
				}
			}
			restarted := time.Now()
			keep = append(keep, p)
			produce(t, brokers, topic, rest)

			ends := logEnds(t, brokers, topic, partitions)
			for p := 0; p < partitions; p++ {
				if ends[p] == 0 {
					t.Fatalf("partition %d got no traffic; the test needs some on every partition", p)
				}
			}
			deadline := restarted.Add(20 * time.Second)
			for {
				stored := storedOffsets(t, db, topic)
				done := true
				for p, end := range ends {
					done = done && stored[p] >= end
				}
				if done {
					t.Logf("every partition consumed %v after the last restart", time.Since(restarted).Round(100*time.Millisecond))
					break
				}
				if time.Now().After(deadline) {
					var logs strings.Builder
					for i, p := range procs {
						fmt.Fprintf(&logs, "--- worker %d\n%s", i, p.stderr)
					}
					t.Fatalf("20 s after the last restart, stored/log-end offsets:%s\n%s", offsetsText(ends, stored), logs.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, p := range keep {
				p.stop(t)
			}
			checkInvariants(t, db, ts, 0)
		})
	}
}

// TestConsumerLagWhileStuck stops the test's private ClickHouse so that
// every commit fails, then produces more traffic: tarifa_consumer_lag must
// show each partition's real backlog (its log-end offset less the offset
// stored in PostgreSQL), not the 0 it showed before, and fall back to 0 once
// ClickHouse is back and the backlog is committed.
func TestConsumerLagWhileStuck(t *testing.T) {
	t.Parallel()
	bin := buildTarifa(t)
	chSrv := sinktest.StartClickHouse(t)
	db := sinktest.Open(t, sinktest.PostgresDSN(t), chSrv.DSN)
	if _, err := db.PG.Exec(context.Background(), pipelineCatalog); err != nil {
		t.Fatal(err)
	}
	topic := "t-lag-" + sinktest.RandomName()
	t.Cleanup(func() { deleteTopic(kafkaBrokers(), topic) })
	const partitions = 4
	createTopic(t, kafkaBrokers(), topic, partitions)
	ts := genTraffic(3000, 8)
	first, rest := ts.msgs[:1000], ts.msgs[1000:]
	produce(t, kafkaBrokers(), topic, first)

	addr := freeAddr(t)
	p := startWorker(t, bin, db, topic, "--metrics-addr", addr, "--max-backoff", "1s", "--batch-size", "200")
	waitConsumed(t, db, topic, len(first), 60*time.Second, p)
	waitLag(t, db, addr, topic, partitions, func(lag map[int]int64) bool { return sum(lag) == 0 }, "0 once all is committed", p)

	chSrv.Stop()
	produce(t, kafkaBrokers(), topic, rest)
	waitLag(t, db, addr, topic, partitions, func(lag map[int]int64) bool { return sum(lag) == int64(len(rest)) },
		fmt.Sprintf("the %d messages produced while ClickHouse is down", len(rest)), p)
	if c := consumed(t, db, topic); c != len(first) {
		t.Fatalf("consumed %d while ClickHouse was down, want %d", c, len(first))
	}

	chSrv.Start(t)
	waitConsumed(t, db, topic, len(ts.msgs), 90*time.Second, p)
	waitLag(t, db, addr, topic, partitions, func(lag map[int]int64) bool { return sum(lag) == 0 }, "0 once the backlog is committed", p)
	p.stop(t)
	checkInvariants(t, db, ts, 0)
}

func sum(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// waitLag polls the worker's tarifa_consumer_lag until ok holds for it, and
// checks on the way that each partition's value is what the broker and
// PostgreSQL say it is whenever neither moved in between.
func waitLag(t *testing.T, db *sinktest.DB, addr, topic string, partitions int, ok func(map[int]int64) bool, what string, p *workerProc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lag map[int]int64
	for time.Now().Before(deadline) {
		lag = consumerLag(t, addr)
		if len(lag) == partitions && ok(lag) {
			ends, stored := logEnds(t, kafkaBrokers(), topic, partitions), storedOffsets(t, db, topic)
			for part, end := range ends {
				if want := end - stored[part]; lag[part] != want {
					t.Fatalf("tarifa_consumer_lag{partition=%q} = %d, but log end %d − stored %d = %d", fmt.Sprint(part), lag[part], end, stored[part], want)
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("tarifa_consumer_lag never showed %s within 30s: %v\n%s", what, lag, p.stderr)
}

// consumerLag reads tarifa_consumer_lag per partition from /metrics.
func consumerLag(t *testing.T, addr string) map[int]int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	lag := map[int]int64{}
	const prefix = `tarifa_consumer_lag{partition="`
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var part int
		var v float64
		if _, err := fmt.Sscanf(line[len(prefix):], `%d"} %g`, &part, &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		lag[part] = int64(v)
	}
	return lag
}
