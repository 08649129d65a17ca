package sinks_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestKafkaGoAgainstDevBroker proves kafka-go produces to and consumes from
// the local stack's broker, with a consumer group and topic auto-creation.
func TestKafkaGoAgainstDevBroker(t *testing.T) {
	t.Parallel()
	brokers := os.Getenv("TARIFA_KAFKA_BROKERS")
	if brokers == "" {
		brokers = "127.0.0.1:19092"
	}
	topic := fmt.Sprintf("t-kafka-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, AllowAutoTopicCreation: true, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := make([]kafka.Message, 10)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"id":"c%d"}`, i))}
	}
	var err error
	for attempt := 0; attempt < 20; attempt++ { // the topic appears on first use
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("produce to %s at %s: %v (is the stack up? make up)", topic, brokers, err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, GroupID: topic + "-g", MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	seen := map[string]bool{}
	for len(seen) < len(msgs) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("consume: %v after %d messages", err, len(seen))
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range msgs {
		if !seen[fmt.Sprintf(`{"id":"c%d"}`, i)] {
			t.Fatalf("message c%d not consumed", i)
		}
	}
}
