package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/tarifa/tarifa/ingest"
	"github.com/tarifa/tarifa/sinks"
)

const genSummary = `Generate realistic CDRs (docs/DESIGN.md "CDR message") from the catalog in
PostgreSQL: origination accounts send to destinations of their rate table,
vendor accounts terminate; about 55% answered with heavy-tailed durations,
the rest failed with SIP codes; --dup re-sends earlier CDRs verbatim,
--malformed breaks the contract, --unknown uses unknown accounts or
destinations. Deterministic for a seed and catalog. Writes JSON lines to
--out, or with --kafka produces to the CDR topic keyed by CDR id (so a
duplicate lands on the partition of its original). The final line (on
stderr when the CDRs go to stdout) gives counts, elapsed time and rate.`

// genChunk is how many CDRs go to Kafka per WriteMessages call.
const genChunk = 32768

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gen", "gen [--count N] [--rate N] [--seed N] [--start T] [--span D] [--out FILE|- | --kafka] [flags]", genSummary, stderr)
	count := fs.Int("count", 10000, "CDRs to generate (duplicates and malformed lines included)")
	rate := fs.Int("rate", 0, "CDRs per second at most, 0 for unlimited")
	seed := fs.Uint64("seed", 1, "random seed; also the prefix of the CDR ids")
	startFlag := fs.String("start", "", "first setup time, RFC 3339 or YYYY-MM-DD (UTC) (default: now − span)")
	span := fs.Duration("span", 24*time.Hour, "setup times run over this span after --start")
	sw := fs.String("switch", "sw1", "switch name in the CDRs")
	dup := fs.Float64("dup", 0.01, "share of CDRs re-sent verbatim")
	malformed := fs.Float64("malformed", 0.001, "share of malformed lines")
	unknown := fs.Float64("unknown", 0.01, "share of CDRs from unknown accounts or to unknown destinations")
	asr := fs.Float64("asr", 0.55, "share of answered calls")
	out := fs.String("out", "-", "file to write JSON lines to, - for stdout (ignored with --kafka)")
	toKafka := fs.Bool("kafka", false, "produce to Kafka instead of writing lines")
	brokers := fs.String("brokers", env("TARIFA_KAFKA_BROKERS", defaultKafkaBrokers), "Kafka brokers, comma separated (env TARIFA_KAFKA_BROKERS)")
	topic := fs.String("topic", env("TARIFA_KAFKA_TOPIC", defaultKafkaTopic), "Kafka topic (env TARIFA_KAFKA_TOPIC)")
	partitions := fs.Int("partitions", 8, "partitions of the topic when gen has to create it")
	pgDSN := fs.String("pg-dsn", env("TARIFA_PG_DSN", defaultPGDSN), "PostgreSQL DSN of the catalog (env TARIFA_PG_DSN)")
	progress := fs.Bool("progress", isTerminal(stderr), "show a progress line on stderr; default on when stderr is a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *count < 0 || *rate < 0 {
		fmt.Fprintln(stderr, "--count and --rate must not be negative")
		fs.Usage()
		return errUsage
	}
	start := time.Now().Add(-*span).Truncate(time.Minute)
	if *startFlag != "" {
		t, err := time.Parse(time.RFC3339Nano, *startFlag)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, *startFlag); err != nil {
				fmt.Fprintf(stderr, "--start %q: want RFC 3339 or YYYY-MM-DD\n", *startFlag)
				fs.Usage()
				return errUsage
			}
		}
		start = t
	}

	pool, err := sinks.OpenPostgres(ctx, *pgDSN)
	if err != nil {
		return err
	}
	origs, terms, err := genAccounts(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	g, err := ingest.NewGenerator(ingest.GenConfig{
		Seed: *seed, Count: *count, Start: start, Span: *span, Switch: *sw,
		ASR: *asr, Dup: *dup, Malformed: *malformed, Unknown: *unknown,
	}, origs, terms)
	if err != nil {
		return err
	}

	w, report := stdout, stdout
	if !*toKafka && *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	} else if !*toKafka {
		report = stderr
	}
	var st genStats
	began := time.Now()
	status := newStatusLine(stderr, *progress)
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		status.every(pctx, 250*time.Millisecond, func() string {
			n := st.sent.Load()
			return fmt.Sprintf("generated %s / %s CDRs  %s CDRs/s", thousands(n), thousands(int64(*count)), perSecond(n, time.Since(began)))
		})
	}()
	if *toKafka {
		err = genKafka(ctx, g, *count, *rate, strings.Split(*brokers, ","), *topic, *partitions, &st)
	} else {
		err = genFile(ctx, g, *count, *rate, w, &st)
	}
	if err == nil {
		st.sent.Store(int64(st.n))
	}
	stopProgress()
	<-progressDone
	if err != nil {
		return err
	}
	elapsed := time.Since(began)
	fmt.Fprintf(report, "generated %d CDRs (%d duplicates, %d malformed) in %s: %.0f CDRs/s\n",
		st.n, st.dups, st.malformed, elapsed.Round(time.Millisecond), float64(st.n)/max(elapsed.Seconds(), 1e-9))
	return nil
}

// firstWriteError shortens kafka-go's one-error-per-message report.
func firstWriteError(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	for _, e := range we {
		if e != nil {
			return fmt.Errorf("%d of %d messages failed, first: %w", we.Count(), len(we), e)
		}
	}
	return err
}

// genStats counts what gen made; sent is n as the progress line reads it
// (updated per chunk).
type genStats struct {
	n, dups, malformed int
	sent               atomic.Int64
}

func (s *genStats) add(k ingest.GenKind) {
	s.n++
	switch k {
	case ingest.GenDuplicate:
		s.dups++
	case ingest.GenMalformed:
		s.malformed++
	}
}

// pacer holds a producer to rate CDRs per second (0: no limit).
type pacer struct {
	rate  int
	start time.Time
}

func (p pacer) wait(ctx context.Context, sent int) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	due := p.start.Add(time.Duration(float64(sent) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return ctx.Err()
}

// chunkSize keeps rate-limited output smooth: about 20 chunks a second.
func chunkSize(rate int) int {
	if rate > 0 {
		return max(1, min(genChunk, rate/20))
	}
	return genChunk
}

func genFile(ctx context.Context, g *ingest.Generator, count, rate int, w io.Writer, st *genStats) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	p := pacer{rate: rate, start: time.Now()}
	chunk := chunkSize(rate)
	for st.n < count {
		line, _, kind := g.Next()
		bw.Write(line)
		bw.WriteByte('\n')
		st.add(kind)
		if st.n%chunk == 0 {
			st.sent.Store(int64(st.n))
			if rate > 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
			}
			if err := p.wait(ctx, st.n); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// kafkaChunk is one batch of messages whose keys and values live in arena.
type kafkaChunk struct {
	arena []byte
	offs  [][4]int // key lo, hi, value lo, hi in arena
	msgs  []kafka.Message
}

// genKafka generates chunks in this goroutine while one writer goroutine
// sends the previous chunk: two chunks in flight, recycled, so memory stays
// bounded and the generator allocates nothing per CDR.
func genKafka(ctx context.Context, g *ingest.Generator, count, rate int, brokers []string, topic string, partitions int, st *genStats) error {
	cons, err := ingest.NewConsumer(ingest.ConsumerConfig{Brokers: brokers, Topic: topic, Group: "tarifa-gen", Partitions: partitions}, newLogger(io.Discard))
	if err != nil {
		return err
	}
	if err := cons.EnsureTopic(ctx); err != nil {
		return err
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		AllowAutoTopicCreation: true,
		RequiredAcks:           kafka.RequireAll,
		Async:                  false,
		BatchSize:              genChunk,
		BatchBytes:             1_000_000, // under the broker's default message.max.bytes
		BatchTimeout:           5 * time.Millisecond,
		WriteTimeout:           30 * time.Second,
	}
	defer w.Close()

	free := make(chan *kafkaChunk, 2)
	full := make(chan *kafkaChunk)
	free <- &kafkaChunk{}
	free <- &kafkaChunk{}
	done := make(chan error, 1)
	go func() {
		var werr error
		for c := range full {
			if werr == nil {
				for i, o := range c.offs {
					c.msgs[i] = kafka.Message{Key: c.arena[o[0]:o[1]], Value: c.arena[o[2]:o[3]]}
				}
				if err := w.WriteMessages(ctx, c.msgs[:len(c.offs)]...); err != nil {
					werr = fmt.Errorf("produce to %s: %w", topic, firstWriteError(err))
				}
			}
			free <- c
		}
		done <- werr
	}()

	p := pacer{rate: rate, start: time.Now()}
	size := chunkSize(rate)
	var genErr error
loop:
	for st.n < count {
		var c *kafkaChunk
		select {
		case c = <-free:
		case <-ctx.Done():
			genErr = ctx.Err()
			break loop
		}
		c.arena, c.offs = c.arena[:0], c.offs[:0]
		for len(c.offs) < size && st.n < count {
			line, key, kind := g.Next()
			k := len(c.arena)
			c.arena = append(c.arena, key...)
			v := len(c.arena)
			c.arena = append(c.arena, line...)
			c.offs = append(c.offs, [4]int{k, v, v, len(c.arena)})
			st.add(kind)
		}
		if cap(c.msgs) < len(c.offs) {
			c.msgs = make([]kafka.Message, len(c.offs))
		}
		c.msgs = c.msgs[:cap(c.msgs)]
		select {
		case full <- c:
		case err := <-done: // the writer failed and stopped
			return err
		}
		st.sent.Store(int64(st.n - len(c.offs))) // what the writer has taken before this chunk
		if err := p.wait(ctx, st.n); err != nil {
			genErr = err
			break
		}
	}
	close(full)
	if err := <-done; err != nil {
		return err
	}
	return genErr
}

// genAccounts reads the accounts traffic comes from and goes to: active
// orig accounts of clients that are not deleted, with the codes of the
// table they are rated with (stopped clients included: their calls become
// inactive_client mismatches), and active term accounts.
func genAccounts(ctx context.Context, pool *pgxpool.Pool) ([]ingest.GenOrig, []ingest.GenTerm, error) {
	rows, err := pool.Query(ctx, `
		SELECT a.kind, a.ident, a.tech_prefix, a.orig, a.term,
		       coalesce(a.orig_rate_table_id, c.orig_rate_table_id, 0),
		       coalesce(a.term_rate_table_id, c.term_rate_table_id, 0)
		FROM accounts a JOIN clients c ON c.id = a.client_id
		WHERE a.status = 'active' AND c.status <> 'deleted'
		ORDER BY a.id`)
	if err != nil {
		return nil, nil, fmt.Errorf("read accounts: %w", err)
	}
	codeSet := map[int64]map[string]struct{}{}
	type acc struct {
		kind, ident, prefix string
		orig, term          bool
		table, termTable    int64
	}
	accs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (acc, error) {
		var a acc
		return a, r.Scan(&a.kind, &a.ident, &a.prefix, &a.orig, &a.term, &a.table, &a.termTable)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read accounts: %w", err)
	}
	codes := map[int64][]string{}
	tableCodes := func(id int64) ([]string, error) {
		if cs, ok := codes[id]; ok {
			return cs, nil
		}
		rows, err := pool.Query(ctx, `SELECT DISTINCT code FROM rates WHERE rate_table_id = $1 AND status = 'active' ORDER BY code`, id)
		if err != nil {
			return nil, fmt.Errorf("read codes: %w", err)
		}
		cs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read codes: %w", err)
		}
		codes[id] = cs
		return cs, nil
	}
	var origs []ingest.GenOrig
	var terms []ingest.GenTerm
	for _, a := range accs {
		if a.term && (a.kind == "ip" || a.kind == "username") {
			t := ingest.GenTerm{}
			if a.kind == "ip" {
				t.TermIP = a.ident
			} else {
				t.TermUser = a.ident
			}
			if a.termTable != 0 {
				if _, ok := codeSet[a.termTable]; !ok {
					cs, err := tableCodes(a.termTable)
					if err != nil {
						return nil, nil, err
					}
					set := make(map[string]struct{}, len(cs))
					for _, c := range cs {
						set[c] = struct{}{}
					}
					codeSet[a.termTable] = set
				}
				t.Codes = codeSet[a.termTable]
			}
			terms = append(terms, t)
		}
		if !a.orig || a.table == 0 {
			continue
		}
		cs, err := tableCodes(a.table)
		if err != nil {
			return nil, nil, err
		}
		if len(cs) == 0 {
			continue
		}
		o := ingest.GenOrig{Codes: cs}
		switch a.kind {
		case "ip":
			o.SrcIP, o.TechPrefix = a.ident, a.prefix
		case "username":
			o.SrcIP, o.SrcUser = "198.18.0.10", a.ident // a proxy address that is no account
		case "ani":
			o.SrcIP, o.ANI = "198.18.0.20", a.ident
		}
		origs = append(origs, o)
	}
	if len(origs) == 0 {
		return nil, nil, errors.New("the catalog has no active orig account with a rate table: apply a catalog first (tarifa catalog apply -f deploy/demo/catalog.yaml)")
	}
	return origs, terms, nil
}
