// Command devbroker is the Kafka-protocol broker of Tarifa's local stack: one
// in-process kfake broker on loopback that creates topics on first use and,
// with --data-dir, keeps its log across restarts. Its connections keep
// Kafka's semantics for the group requests the coordinator holds, where
// kfake's differ (parked.go), so that a consumer group recovers from crashed
// members within its session timeouts, as on Kafka.
//
// It is a development and test tool only. Production runs a real Kafka (or
// Redpanda) cluster; nothing in Tarifa depends on this program.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 19092, "port to listen on at 127.0.0.1")
	dataDir := flag.String("data-dir", "", "directory that keeps topics, offsets and groups across restarts (empty: memory only)")
	partitions := flag.Int("partitions", 4, "partitions of an auto-created topic")
	seed := flag.String("seed-topic", "", "topic to create at start, if any")
	flag.Parse()

	opts := []kfake.Opt{
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *seed != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), *seed))
	}
	c, err := newCluster(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devbroker: start on 127.0.0.1:%d: %v\n", *port, err)
		os.Exit(1)
	}
	for _, addr := range c.ListenAddrs() {
		fmt.Printf("devbroker listening on %s\n", addr)
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-sigs:
		fmt.Fprintln(os.Stderr, "devbroker: forced shutdown")
		os.Exit(1)
	}
}

// newCluster starts the one-broker kfake cluster with its connections
// wrapped by a parkingListener.
func newCluster(opts ...kfake.Opt) (*kfake.Cluster, error) {
	k := &keeper{}
	return kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			k.setAddr(ln.Addr().String())
			return &parkingListener{Listener: ln, keeper: k}, nil
		}),
	}, opts...)...)
}
