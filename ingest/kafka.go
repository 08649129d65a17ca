package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// reassigning its partitions (default 10 s).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the group waits for members to rejoin
	// after a rebalance starts; keep it above the worker's shutdown timeout,
	// so a member flushing its last batch is not expelled (default 60 s).
	RebalanceTimeout time.Duration
	// Prefetch bounds the messages read ahead per partition (default 16384).
	Prefetch int
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
		c.SessionTimeout = 10 * time.Second
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
// generation. Its methods are called by the one goroutine that handles it.
type Partition struct {
	Topic string
	ID    int

	reader *kafka.Reader
	msgs   chan Message
	errc   chan error
	timer  *time.Timer
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

// Lag returns how many messages of the partition are not yet fetched, as
// last reported by the broker.
func (p *Partition) Lag() int64 { return p.reader.Stats().Lag }

// Consumer joins a consumer group and hands each assigned partition to a
// handler goroutine, starting at the offset the caller's store says is next.
// Offsets are owned by that store (PostgreSQL, committed with the effects of
// the messages), not by Kafka: offsets are also committed to the group
// afterwards, only so that standard lag tools see progress.
type Consumer struct {
	cfg ConsumerConfig
	log *slog.Logger
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
func (c *Consumer) Run(ctx context.Context, start func(ctx context.Context, partition int) (int64, error), handle Handler) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.Group,
		Brokers:           c.cfg.Brokers,
		Topics:            []string{c.cfg.Topic},
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		HeartbeatInterval: c.cfg.SessionTimeout / 5,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafka.FirstOffset,
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", c.cfg.Group, err)
	}
	defer group.Close()
	backoff, failing := time.Second, false
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// kafka-go keeps retrying the join itself and hands us each
			// failure (broker down, coordinator moving, a rebalance in
			// progress): wait and ask again, logging once per outage.
			if !failing {
				c.log.Error("join consumer group; retrying", "group", c.cfg.Group, "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		if failing {
			c.log.Info("joined consumer group", "group", c.cfg.Group)
			failing, backoff = false, time.Second
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
			select {
			case p.msgs <- Message{Partition: m.Partition, Offset: m.Offset, Time: m.Time, Value: m.Value}:
			case <-hctx.Done():
				return
			}
		}
	}()

	commit := func(next int64) {
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
