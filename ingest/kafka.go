package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers []string // required
	Topic   string   // required
	Group   string   // required: the consumer group workers share
	// Partitions is the partition count used when the topic has to be
	// created (default 8).
	Partitions int
	// SessionTimeout is how long the group waits for a silent member before
	// reassigning its partitions (default 6 s, the least a Kafka broker
	// accepts by default). It bounds how long partitions stay with a
	// crashed worker: after any sequence of crashes, every partition is
	// served again within about twice the session timeout (see Run).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the group waits for members to rejoin
	// after a rebalance starts; keep it above the worker's shutdown timeout,
	// so a member flushing its last batch is not expelled (default 60 s).
	RebalanceTimeout time.Duration
	// Prefetch bounds the messages read ahead per partition (default 16384).
	Prefetch int
	// LagInterval is how often the log-end offsets of the assigned
	// partitions are read from the brokers, for Partition.OnLag (default 2 s).
	LagInterval time.Duration
}

// Validate fills defaults and checks the required fields.
func (c *ConsumerConfig) Validate() error {
	if len(c.Brokers) == 0 || c.Brokers[0] == "" {
		return errors.New("kafka brokers: none given")
	}
	if c.Topic == "" {
		return errors.New("kafka topic: empty")
	}
	if c.Group == "" {
		return errors.New("kafka group: empty")
	}
	if c.Partitions <= 0 {
		c.Partitions = 8
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 2 * time.Second
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 16384
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 60 * time.Second
	}
	return nil
}

// Message is one Kafka record of the CDR topic.
type Message struct {
	Partition int
	Offset    int64
	Time      time.Time // the record's timestamp (producer or broker time)
	Value     []byte
}

// Partition is one partition assigned to this worker for one consumer group
// generation. Fetch is called by the one goroutine that handles it; OnLag is
// safe for concurrent use.
type Partition struct {
	Topic string
	ID    int

	reader *kafka.Reader
	msgs   chan Message
	errc   chan error
	timer  *time.Timer

	// committed is the next offset the store holds (-1: nothing stored, the
	// partition starts at logStart); logStart and logEnd are the offsets
	// last read from the brokers (-1: not known yet).
	committed, logStart, logEnd atomic.Int64
	lagMu                       sync.Mutex
	onLag                       func(lag int64)
}

// Fetch waits for at least one message, then gathers more until max
// messages or wait has passed since the first one, appending to buf. It
// returns early with what it has when ctx ends; an error only when ctx ended
// before any message or the reader failed.
func (p *Partition) Fetch(ctx context.Context, buf []Message, max int, wait time.Duration) ([]Message, error) {
	select {
	case m := <-p.msgs:
		buf = append(buf, m)
	case err := <-p.errc:
		return buf, err
	case <-ctx.Done():
		return buf, ctx.Err()
	}
	if !p.timer.Stop() {
		select {
		case <-p.timer.C:
		default:
		}
	}
	p.timer.Reset(wait)
	for len(buf) < max {
		// What is already waiting is taken without a select on the timer
		// and ctx (each such select costs as much as the receive, per
		// message), looking at them only every so often and when the
		// channel runs dry.
		select {
		case m := <-p.msgs:
			buf = append(buf, m)
			if len(buf)%256 != 0 {
				continue
			}
			select {
			case <-p.timer.C:
				return buf, nil
			default:
			}
			if ctx.Err() != nil {
				return buf, nil
			}
			continue
		default:
		}
		select {
		case m := <-p.msgs:
			buf = append(buf, m)
		case <-p.timer.C:
			return buf, nil
		case <-ctx.Done():
			return buf, nil
		}
	}
	return buf, nil
}

// OnLag sets fn to receive the partition's lag — its log-end offset less the
// next offset the store holds, the messages waiting to be committed — each
// time either moves: every LagInterval from the brokers, and at each commit.
// It is called only once the log end is known, so a stuck partition shows its
// backlog growing rather than a stale value. fn runs on other goroutines, one
// call at a time; after OnLag(nil) returns it is not called again.
func (p *Partition) OnLag(fn func(lag int64)) {
	p.lagMu.Lock()
	defer p.lagMu.Unlock()
	p.onLag = fn
	p.reportLocked()
}

// setLogEnd raises the known log-end offset to end and reports the lag.
func (p *Partition) setLogEnd(end int64) {
	for {
		old := p.logEnd.Load()
		if end <= old {
			return
		}
		if p.logEnd.CompareAndSwap(old, end) {
			p.reportLag()
			return
		}
	}
}

// setCommitted records the next offset the store holds and reports the lag.
func (p *Partition) setCommitted(next int64) {
	p.committed.Store(next)
	p.reportLag()
}

func (p *Partition) reportLag() {
	p.lagMu.Lock()
	defer p.lagMu.Unlock()
	p.reportLocked()
}

func (p *Partition) reportLocked() {
	end, next := p.logEnd.Load(), p.committed.Load()
	if next < 0 {
		next = p.logStart.Load()
	}
	if p.onLag == nil || end < 0 || next < 0 {
		return
	}
	p.onLag(max(end-next, 0))
}

// Consumer joins a consumer group and hands each assigned partition to a
// handler goroutine, starting at the offset the caller's store says is next.
// Offsets are owned by that store (PostgreSQL, committed with the effects of
// the messages), not by Kafka: offsets are also committed to the group
// afterwards, only so that standard lag tools see progress.
type Consumer struct {
	cfg ConsumerConfig
	log *slog.Logger

	mu    sync.Mutex
	parts map[int]*Partition // the partitions being served, for the lag poll
}

// NewConsumer returns a consumer; it connects nothing until Run.
func NewConsumer(cfg ConsumerConfig, log *slog.Logger) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, log: log}, nil
}

// EnsureTopic creates the topic with cfg.Partitions partitions when it is
// missing, replicated as the cluster's default.replication.factor says (a
// replication factor of -1 asks the broker for its default; Kafka 2.4+).
func (c *Consumer) EnsureTopic(ctx context.Context) error {
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.cfg.Topic}})
	if err != nil {
		return fmt.Errorf("kafka metadata %v: %w", c.cfg.Brokers, err)
	}
	for _, t := range md.Topics {
		if t.Name == c.cfg.Topic && t.Error == nil && len(t.Partitions) > 0 {
			return nil
		}
	}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: c.cfg.Topic, NumPartitions: c.cfg.Partitions, ReplicationFactor: -1,
	}}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", c.cfg.Topic, err)
	}
	if err := res.Errors[c.cfg.Topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", c.cfg.Topic, err)
	}
	c.log.Info("created topic", "topic", c.cfg.Topic, "partitions", c.cfg.Partitions)
	return nil
}

// Probe checks that at least one broker answers a request now (a fresh
// connection each time: the client's cached metadata would hide an outage).
func (c *Consumer) Probe(ctx context.Context) error {
	var last error
	for _, addr := range c.cfg.Brokers {
		conn, err := kafka.DialContext(ctx, "tcp", addr)
		if err != nil {
			last = err
			continue
		}
		_, err = conn.ApiVersions()
		conn.Close()
		if err == nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("kafka %v: %w", c.cfg.Brokers, last)
}

// Handler processes one assigned partition until ctx ends (the generation
// ended or the consumer stops), then returns after flushing its work. It
// calls commit(offset) after each durable batch so the group's offset
// follows; a failed commit is harmless.
type Handler func(ctx context.Context, p *Partition, commit func(next int64)) error

// Run joins the group and serves generations until ctx ends. start returns
// the next offset to read of a partition (from the caller's store); a
// negative value means the partition's first offset.
//
// How long partitions stay unserved after a member crashes rests on the
// session timeout s: the coordinator drops a member that stopped
// heartbeating after s, but a member that crashed while its JoinGroup
// waited counts as joined, is given partitions in the generation that
// completes, and is dropped s after that. So after the last of any sequence
// of crashes every partition is served again within about 2s, plus a
// heartbeat interval for the survivors to notice and the time they take to
// finish their batches in flight and rejoin (about 10 s in all with the 6 s
// default on the local stack). This holds on Kafka (which adds its
// group.initial.rebalance.delay.ms, 3 s by default, when the group had
// emptied) and on the dev broker (cmd/devbroker/parked.go).
func (c *Consumer) Run(ctx context.Context, start func(ctx context.Context, partition int) (int64, error), handle Handler) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.Group,
		Brokers:           c.cfg.Brokers,
		Topics:            []string{c.cfg.Topic},
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		HeartbeatInterval: c.cfg.SessionTimeout / 6,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafka.FirstOffset,
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", c.cfg.Group, err)
	}
	defer group.Close()
	// On stop, close the group at once rather than when the handlers have
	// returned: kafka-go then waits for them to flush and leaves the group,
	// instead of rejoining first because the generation ended.
	defer context.AfterFunc(ctx, func() { group.Close() })()
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		c.pollLogEnds(pollCtx)
	}()
	defer func() {
		stopPoll()
		<-polled
	}()
	failing := false
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// kafka-go keeps retrying the join itself, JoinGroupBackoff
			// apart, and hands us each failure (broker down, coordinator
			// moving, a rebalance in progress) before it retries: ask again
			// at once, logging once per outage.
			if !failing {
				c.log.Error("join consumer group; retrying", "group", c.cfg.Group, "err", err)
				failing = true
			}
			continue
		}
		if failing {
			c.log.Info("joined consumer group", "group", c.cfg.Group)
			failing = false
		}
		assigned := gen.Assignments[c.cfg.Topic]
		ids := make([]int, len(assigned))
		for i, a := range assigned {
			ids[i] = a.ID
		}
		c.log.Info("partitions assigned", "group", c.cfg.Group, "generation", gen.ID, "partitions", ids)
		var wg sync.WaitGroup
		for _, a := range assigned {
			wg.Add(1)
			part := a.ID
			gen.Start(func(gctx context.Context) {
				defer wg.Done()
				c.servePartition(ctx, gctx, gen, part, start, handle)
			})
		}
		wg.Wait()
	}
}

// servePartition runs handle for one partition of one generation. gctx ends
// with the generation, ctx with the consumer.
func (c *Consumer) servePartition(ctx, gctx context.Context, gen *kafka.Generation, id int, start func(context.Context, int) (int64, error),
	handle Handler) {
	// The handler's context ends when either ends.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-gctx.Done():
		case <-hctx.Done():
		}
		cancel()
	}()

	var offset int64
	for {
		var err error
		offset, err = start(hctx, id)
		if err == nil {
			break
		}
		if hctx.Err() != nil {
			return
		}
		c.log.Warn("read start offset", "partition", id, "err", err)
		select {
		case <-time.After(2 * time.Second):
		case <-hctx.Done():
			return
		}
	}
	stored := offset
	if offset < 0 {
		offset = kafka.FirstOffset
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       c.cfg.Brokers,
		Topic:         c.cfg.Topic,
		Partition:     id,
		MinBytes:      1,
		MaxBytes:      8 << 20,
		MaxWait:       100 * time.Millisecond,
		QueueCapacity: 1024,
		// The reader retries on its own; its complaints are worth keeping
		// for debugging, not at Info (the worker's health says the state).
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Debug("kafka reader", "partition", id, "msg", fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		c.log.Error("seek partition", "partition", id, "offset", offset, "err", err)
		return
	}
	p := &Partition{Topic: c.cfg.Topic, ID: id, reader: r, msgs: make(chan Message, c.cfg.Prefetch), errc: make(chan error, 1), timer: time.NewTimer(time.Hour)}
	defer p.timer.Stop()
	p.committed.Store(max(stored, -1))
	p.logStart.Store(-1)
	p.logEnd.Store(-1)
	c.serving(p, true)
	defer c.serving(p, false)

	// The pump hands messages to Fetch through a channel of bounded
	// capacity; it stops when the handler's context ends.
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		for {
			m, err := r.FetchMessage(hctx)
			if err != nil {
				if hctx.Err() == nil {
					select {
					case p.errc <- fmt.Errorf("fetch partition %d: %w", id, err):
					default:
					}
				}
				return
			}
			p.setLogEnd(m.HighWaterMark)
			msg := Message{Partition: m.Partition, Offset: m.Offset, Time: m.Time, Value: m.Value}
			select {
			case p.msgs <- msg: // room in the channel: no need to watch hctx
				continue
			default:
			}
			select {
			case p.msgs <- msg:
			case <-hctx.Done():
				return
			}
		}
	}()

	commit := func(next int64) {
		p.setCommitted(next)
		if err := gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: {id: next}}); err != nil {
			c.log.Debug("commit offset to group", "partition", id, "err", err)
		}
	}
	if err := handle(hctx, p, commit); err != nil && hctx.Err() == nil {
		c.log.Error("partition handler", "partition", id, "err", err)
	}
	cancel()
	<-pumpDone
}

// serving adds p to the partitions whose log ends are polled, or removes it.
func (c *Consumer) serving(p *Partition, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts == nil {
		c.parts = map[int]*Partition{}
	}
	if on {
		c.parts[p.ID] = p
	} else if c.parts[p.ID] == p {
		delete(c.parts, p.ID)
	}
}

// pollLogEnds reads the log-end offsets of the partitions being served
// every LagInterval, in one ListOffsets request (and their first offsets,
// for those with nothing stored yet), so that a partition whose commits
// fail, and whose reader therefore stopped fetching, still shows how far
// the log ran ahead. A failed read keeps the last values.
func (c *Consumer) pollLogEnds(ctx context.Context) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Timeout: 5 * time.Second, Transport: transport}
	list := func(parts []*Partition, at int64) (map[int]int64, error) {
		req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
		for _, p := range parts {
			req.Topics[c.cfg.Topic] = append(req.Topics[c.cfg.Topic], kafka.OffsetRequest{Partition: p.ID, Timestamp: at})
		}
		res, err := client.ListOffsets(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", c.cfg.Topic, err)
		}
		offsets := map[int]int64{}
		for _, po := range res.Topics[c.cfg.Topic] {
			o := po.LastOffset
			if at == kafka.FirstOffset {
				o = po.FirstOffset
			}
			if po.Error == nil && o >= 0 {
				offsets[po.Partition] = o
			}
		}
		return offsets, nil
	}
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		c.mu.Lock()
		parts := make([]*Partition, 0, len(c.parts))
		var unstored []*Partition
		for _, p := range c.parts {
			parts = append(parts, p)
			if p.committed.Load() < 0 && p.logStart.Load() < 0 {
				unstored = append(unstored, p)
			}
		}
		c.mu.Unlock()
		if len(unstored) > 0 {
			if starts, err := list(unstored, kafka.FirstOffset); err == nil {
				for _, p := range unstored {
					if o, ok := starts[p.ID]; ok {
						p.logStart.Store(o)
					}
				}
			} else if ctx.Err() == nil {
				c.log.Debug("read first offsets", "err", err)
			}
		}
		if len(parts) > 0 {
			if ends, err := list(parts, kafka.LastOffset); err == nil {
				for _, p := range parts {
					if o, ok := ends[p.ID]; ok {
						p.setLogEnd(o)
					}
				}
			} else if ctx.Err() == nil {
				c.log.Debug("read log-end offsets", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
