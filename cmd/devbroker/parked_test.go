package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	testTopic      = "cdrs"
	testPartitions = 8
	sessionTimeout = 6 * time.Second // the least a broker accepts by default
	// rebalanceTimeout is long, so that a member the coordinator keeps
	// until a rebalance timeout is told apart from one it drops after a
	// session timeout.
	rebalanceTimeout = 30 * time.Second
)

func startBroker(t *testing.T) (*kfake.Cluster, string) {
	t.Helper()
	c, err := newCluster(kfake.Ports(0), kfake.SeedTopics(testPartitions, testTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// groupMember is a kafka-go consumer group member, as tarifa worker runs
// one: each generation lasts until the coordinator ends it.
type groupMember struct {
	gens chan *kafka.Generation
}

func startGroupMember(t *testing.T, addr, group string) *groupMember {
	t.Helper()
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: group, Brokers: []string{addr}, Topics: []string{testTopic},
		SessionTimeout: sessionTimeout, RebalanceTimeout: rebalanceTimeout, HeartbeatInterval: time.Second,
		JoinGroupBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{gens: make(chan *kafka.Generation)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			gen, err := cg.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			gen.Start(func(gctx context.Context) { <-gctx.Done() })
			select {
			case m.gens <- gen:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cg.Close()
	})
	return m
}

// next waits for the member's next generation and returns its partitions.
func (m *groupMember) next(t *testing.T, within time.Duration, what string) []int {
	t.Helper()
	select {
	case gen := <-m.gens:
		var ps []int
		for _, a := range gen.Assignments[testTopic] {
			ps = append(ps, a.ID)
		}
		sort.Ints(ps)
		return ps
	case <-time.After(within):
		t.Fatalf("%s: no new generation within %v", what, within)
		return nil
	}
}

// rawMember speaks the group protocol by hand on one connection, so a test
// can leave a request unanswered, or die in the middle of one.
type rawMember struct {
	t    *testing.T
	conn net.Conn
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawMember {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawMember{t: t, conn: c}
}

func (m *rawMember) send(req kmsg.Request) {
	m.t.Helper()
	m.corr++
	if _, err := m.conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, m.corr)); err != nil {
		m.t.Fatal(err)
	}
}

// recv reads the response to req, sent last; it must not be flexible.
func (m *rawMember) recv(req kmsg.Request) kmsg.Response {
	var size [4]byte
	if _, err := io.ReadFull(m.conn, size[:]); err != nil {
		m.t.Errorf("read response: %v", err)
		return nil
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(m.conn, body); err != nil {
		m.t.Errorf("read response: %v", err)
		return nil
	}
	resp := req.ResponseKind()
	if err := resp.ReadFrom(body[4:]); err != nil {
		m.t.Errorf("parse response: %v", err)
		return nil
	}
	return resp
}

// joinRequest is the JoinGroup (v1, as kafka-go sends) of a member that
// subscribes to the test topic with kafka-go's protocols.
func joinRequest(group, memberID string) *kmsg.JoinGroupRequest {
	var meta []byte
	meta = kbin.AppendInt16(meta, 0)
	meta = kbin.AppendArrayLen(meta, 1)
	meta = kbin.AppendString(meta, testTopic)
	meta = kbin.AppendBytes(meta, []byte{})
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 1
	req.Group, req.MemberID, req.ProtocolType = group, memberID, "consumer"
	req.SessionTimeoutMillis = int32(sessionTimeout / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(rebalanceTimeout / time.Millisecond)
	for _, name := range []string{"range", "roundrobin"} {
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: name, Metadata: meta})
	}
	return req
}

func waitMembers(t *testing.T, c *kfake.Cluster, group string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.WaitGroupInfo(ctx, group, func(g *kfake.GroupInfo) bool { return len(g.Members) == n }); err != nil {
		t.Fatalf("group %s never had %d members: %v", group, n, err)
	}
}

// TestDeadMembersInJoinLeaveWithinSessionTimeout: members that die while
// their JoinGroup waits for the rebalance are in the generation it
// completes (the coordinator cannot tell them from slow ones), and they
// must be gone one session timeout later, as on Kafka — not a rebalance
// timeout later, as kfake alone does when it finds their connection closed.
func TestDeadMembersInJoinLeaveWithinSessionTimeout(t *testing.T) {
	t.Parallel()
	c, addr := startBroker(t)
	const group = "dead-joiners"
	s := startGroupMember(t, addr, group)
	if ps := s.next(t, 10*time.Second, "first join"); len(ps) != testPartitions {
		t.Fatalf("the only member holds partitions %v, want all %d", ps, testPartitions)
	}
	// Each dead member is a coin toss for kfake alone; six of them make
	// the test fail without the fix 63 times in 64.
	var dead []*rawMember
	for i := 0; i < 6; i++ {
		m := dialRaw(t, addr)
		m.send(joinRequest(group, ""))
		dead = append(dead, m)
	}
	waitMembers(t, c, group, 7)
	for _, m := range dead {
		m.conn.Close()
	}
	if ps := s.next(t, 15*time.Second, "rebalance with the dead members"); len(ps) == testPartitions {
		t.Fatalf("the live member holds every partition (%v) in the generation the dead members joined", ps)
	}
	ps := s.next(t, sessionTimeout+4*time.Second, "the dead members leaving")
	if len(ps) != testPartitions {
		t.Fatalf("after the dead members left, the live member holds %v, want all %d", ps, testPartitions)
	}
}

// TestMemberWaitingInJoinStaysInGroup: a member that rejoined at once waits
// in JoinGroup while another member (alive, heartbeating) takes longer than
// a session timeout to rejoin. Kafka keeps the waiting member: it is in the
// generation that completes when the slow one rejoins. kfake alone expires
// it and never answers its JoinGroup.
func TestMemberWaitingInJoinStaysInGroup(t *testing.T) {
	t.Parallel()
	c, addr := startBroker(t)
	const group = "slow-rejoin"
	s := startGroupMember(t, addr, group)
	s.next(t, 10*time.Second, "first join")

	// slow joins (the live member rejoins for it) and syncs.
	slow := dialRaw(t, addr)
	join := joinRequest(group, "")
	slow.send(join)
	s.next(t, 15*time.Second, "second member joining")
	joined, ok := slow.recv(join).(*kmsg.JoinGroupResponse)
	if !ok || joined.ErrorCode != 0 {
		t.Fatalf("join: %+v", joined)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version = 1
	sync.Group, sync.MemberID, sync.Generation = group, joined.MemberID, joined.Generation
	slow.send(sync)
	if r, ok := slow.recv(sync).(*kmsg.SyncGroupResponse); !ok || r.ErrorCode != 0 {
		t.Fatalf("sync: %+v", r)
	}
	heartbeat := func() int16 {
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version = 1
		hb.Group, hb.MemberID, hb.Generation = group, joined.MemberID, joined.Generation
		slow.send(hb)
		r, ok := slow.recv(hb).(*kmsg.HeartbeatResponse)
		if !ok {
			t.Fatal("no heartbeat response")
		}
		return r.ErrorCode
	}

	// A third member joins: a rebalance. The kafka-go member rejoins at
	// once; slow keeps heartbeating and rejoins 1.5 session timeouts later.
	third := dialRaw(t, addr)
	third.send(joinRequest(group, ""))
	waitMembers(t, c, group, 3)
	rejoinAt := time.Now().Add(sessionTimeout * 3 / 2)
	for time.Now().Before(rejoinAt) {
		if code := heartbeat(); code != 0 && code != 27 { // 27: REBALANCE_IN_PROGRESS
			t.Fatalf("heartbeat of the slow member: error code %d", code)
		}
		time.Sleep(time.Second)
	}
	slow.send(joinRequest(group, joined.MemberID))
	s.next(t, 5*time.Second, "the rebalance the slow member completes")
}

// TestFrameReader splits a byte stream of requests at many positions and
// checks that each request is seen once, that acks-0 produce requests
// expect no response, and that JoinGroup and SyncGroup are the parked ones.
func TestFrameReader(t *testing.T) {
	k := &keeper{}
	type want struct{ answered, parked bool }
	var stream []byte
	var wants []want
	add := func(r kmsg.Request, w want) {
		stream = append(stream, kmsg.NewRequestFormatter(kmsg.FormatterClientID("c")).AppendRequest(nil, r, int32(len(wants)))...)
		wants = append(wants, w)
	}
	for _, v := range []int16{2, 3, 7, 9} {
		p := kmsg.NewPtrProduceRequest()
		p.Version, p.Acks = v, 0
		add(p, want{answered: false})
		p = kmsg.NewPtrProduceRequest()
		p.Version, p.Acks = v, -1
		add(p, want{answered: true})
	}
	add(joinRequest("g", "m"), want{answered: true, parked: true})
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 1, "g", "m", 3
	add(sync, want{answered: true, parked: true})
	big := kmsg.NewPtrProduceRequest()
	big.Version, big.Acks = 7, 1
	big.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: make([]byte, 2*keepBody)}}}}
	add(big, want{answered: true})
	add(kmsg.NewPtrMetadataRequest(), want{answered: true})

	for _, chunk := range []int{1, 2, 3, 4, 5, 7, 64, 1 << 20, len(stream)} {
		var f frameReader
		var got []want
		for b := stream; len(b) > 0; {
			n := min(chunk, len(b))
			f.feed(b[:n], func(body []byte) {
				r, answered := k.parse(body)
				got = append(got, want{answered: answered, parked: r.parked})
			})
			b = b[n:]
		}
		if len(got) != len(wants) {
			t.Fatalf("chunks of %d: %d frames, want %d", chunk, len(got), len(wants))
		}
		for i := range wants {
			if got[i] != wants[i] {
				t.Errorf("chunks of %d: frame %d: %+v, want %+v", chunk, i, got[i], wants[i])
			}
		}
	}
	if s := k.seen("g", "m", -1, 0); s.gen != 3 || s.sessionMillis != int32(sessionTimeout/time.Millisecond) {
		t.Errorf("member g/m seen as %+v, want generation 3 from its SyncGroup and the session timeout of its JoinGroup", s)
	}
}
