package main

// kfake's classic group coordinator differs from Kafka's in two ways that
// stall a consumer group for minutes after crash restarts, where Kafka needs
// a session timeout or two. Both concern a JoinGroup or SyncGroup that the
// coordinator holds ("parks") until the rebalance reaches its next step:
//
//  1. A member whose connection closed while its JoinGroup was parked gets
//     no session timer when the join completes (kfake starts the timer only
//     when the answer can be delivered, a coin toss once the connection is
//     gone). It stays in the generation, holding partitions that nobody
//     consumes, and holds up the next rebalance until a rebalance timeout
//     (60 s for tarifa, restarted at each join) removes it. Kafka cannot see
//     such a close — it does not read a connection while a request on it is
//     parked — and starts every member's session timer when it answers, so a
//     dead member is gone one session timeout later.
//  2. A live member parked in JoinGroup (waiting for a slower member) or in
//     SyncGroup (waiting for a leader that died) expires on its own session
//     timer and is dropped without an answer; the client then waits out its
//     request deadline (in kafka-go the rebalance timeout plus 5 s) before
//     it joins again as a new member. Kafka keeps a member alive while it
//     waits in JoinGroup or SyncGroup.
//
// parkingListener gives the broker Kafka's behaviour at the connection: while
// a JoinGroup or SyncGroup on a connection is unanswered, it keeps the
// connection's end of stream from kfake (so the answer is delivered and the
// member's session timer starts; writing it to the dead socket then ends the
// connection), and it heartbeats on the member's behalf. Nothing else of
// kfake changes.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// maxHold bounds how long a closed connection is kept from kfake while
	// a group request on it is unanswered (Kafka's own bound for a new
	// member parked in JoinGroup is 5 minutes).
	maxHold = 5 * time.Minute
	// keepBody and keepHead are how many bytes of a request body are kept
	// for parse: all of a group request, the head of any other.
	keepBody = 1 << 20
	keepHead = 4 << 10
)

// Request keys parse looks into.
const (
	keyProduce   = 0
	keyJoinGroup = 11
	keyHeartbeat = 12
	keySyncGroup = 14
)

// parkingListener wraps the broker's listener; see the comment at the top
// of this file. It is safe for concurrent use.
type parkingListener struct {
	net.Listener
	keeper *keeper
}

// Accept wraps each accepted connection in a parkingConn.
func (l *parkingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &parkingConn{Conn: c, keeper: l.keeper, release: make(chan struct{}), closed: make(chan struct{})}, nil
}

// pending is one request read from a connection and not yet answered.
type pending struct {
	parked   bool          // a JoinGroup or SyncGroup, which kfake may hold
	answered chan struct{} // closed when answered, for a parked request
}

// parkingConn is one client connection. kfake reads it from one goroutine
// at a time and writes one response per Write, in request order, so the
// n-th Write answers the n-th request that expects an answer.
type parkingConn struct {
	net.Conn
	keeper *keeper
	frames frameReader // used by Read only

	mu       sync.Mutex
	inflight []pending
	parked   int           // parked requests in inflight
	release  chan struct{} // closed when parked drops to 0, then replaced

	closeOnce sync.Once
	closed    chan struct{}
}

// Read passes data through; an error (the client closed) is held back while
// a parked group request on this connection is unanswered.
func (c *parkingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.frames.feed(b[:n], c.request)
	}
	if err != nil {
		c.waitAnswered()
	}
	return n, err
}

// Write writes one response: the answer to the oldest pending request.
func (c *parkingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inflight) == 0 {
		return n, err
	}
	p := c.inflight[0]
	c.inflight = c.inflight[1:]
	if p.parked {
		close(p.answered)
		if c.parked--; c.parked == 0 {
			close(c.release)
			c.release = make(chan struct{})
		}
	}
	return n, err
}

// Close closes the connection and releases a held Read.
func (c *parkingConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *parkingConn) waitAnswered() {
	deadline := time.NewTimer(maxHold)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		parked, release := c.parked, c.release
		c.mu.Unlock()
		if parked == 0 {
			return
		}
		select {
		case <-release:
		case <-c.closed:
			return
		case <-deadline.C:
			return
		}
	}
}

// request is called for each request frame read, with its body (or the
// head of it).
func (c *parkingConn) request(body []byte) {
	r, answered := c.keeper.parse(body)
	if !answered {
		return
	}
	p := pending{parked: r.parked}
	if p.parked {
		p.answered = make(chan struct{})
	}
	c.mu.Lock()
	c.inflight = append(c.inflight, p)
	if p.parked {
		c.parked++
	}
	c.mu.Unlock()
	if r.keepAlive != nil {
		go c.keeper.keepAlive(p.answered, r.keepAlive)
	}
}

// frameReader splits the bytes a connection reads into Kafka request frames
// (a 4-byte big-endian size, then the body), keeping of each body what parse
// needs.
type frameReader struct {
	size  [4]byte
	nsize int
	left  int // body bytes still to come
	body  []byte
}

func (f *frameReader) feed(b []byte, frame func(body []byte)) {
	for len(b) > 0 {
		if f.nsize < 4 {
			n := copy(f.size[f.nsize:], b)
			f.nsize += n
			b = b[n:]
			if f.nsize < 4 {
				return
			}
			f.left = int(int32(binary.BigEndian.Uint32(f.size[:])))
			f.body = f.body[:0]
		}
		for f.left > 0 && len(b) > 0 {
			n := min(f.left, len(b))
			if room := f.limit() - len(f.body); room > 0 {
				n = min(n, room)
				f.body = append(f.body, b[:n]...)
			}
			f.left -= n
			b = b[n:]
		}
		if f.left <= 0 {
			f.nsize = 0
			frame(f.body)
			if cap(f.body) > keepHead {
				f.body = nil
			}
		}
	}
}

// limit is how much of the current body to keep: two bytes until its key is
// known, then all of a group request and the head of any other.
func (f *frameReader) limit() int {
	if len(f.body) < 2 {
		return 2
	}
	switch int16(binary.BigEndian.Uint16(f.body)) {
	case keyJoinGroup, keyHeartbeat, keySyncGroup:
		return keepBody
	}
	return keepHead
}

// keeper remembers each member's generation and heartbeats for parked
// members. It is safe for concurrent use.
type keeper struct {
	mu      sync.Mutex
	addr    string // the broker's own address
	members map[memberKey]seenMember

	hbMu sync.Mutex // serializes heartbeats on conn
	conn net.Conn
	corr int32
}

type memberKey struct{ group, member string }

// seenMember is what the keeper last saw of a member.
type seenMember struct {
	gen           int32 // generation of its last SyncGroup or Heartbeat (-1: none yet)
	sessionMillis int32 // session timeout of its last JoinGroup
	at            time.Time
}

// keepAlive is who to heartbeat for while a request is parked.
type keepAlive struct {
	group, member string
	instance      *string
	gen           int32
	every         time.Duration
}

type parsed struct {
	parked    bool
	keepAlive *keepAlive
}

// parse reads what matters of a request. answered is false for a request
// that gets no response (a produce request with acks 0).
func (k *keeper) parse(body []byte) (r parsed, answered bool) {
	rd := kbin.Reader{Src: body}
	key, version := rd.Int16(), rd.Int16()
	switch key {
	case keyProduce, keyJoinGroup, keyHeartbeat, keySyncGroup:
	default:
		return r, true
	}
	r.parked = key == keyJoinGroup || key == keySyncGroup
	rd.Int32()          // correlation id
	rd.NullableString() // client id
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if req.IsFlexible() {
		kmsg.SkipTags(&rd)
	}
	if rd.Complete() != nil {
		return r, true
	}
	switch req := req.(type) {
	case *kmsg.ProduceRequest:
		if version >= 3 { // transactional id
			if req.IsFlexible() {
				rd.CompactNullableString()
			} else {
				rd.NullableString()
			}
		}
		acks := rd.Int16()
		return r, acks != 0 || rd.Complete() != nil
	case *kmsg.JoinGroupRequest:
		if req.ReadFrom(rd.Src) != nil || req.MemberID == "" {
			return r, true // a new member has no session timer to keep
		}
		// Its generation is the last it synced or heartbeated in: the
		// group's, while the group prepares a rebalance.
		if s := k.seen(req.Group, req.MemberID, -1, req.SessionTimeoutMillis); s.gen >= 0 {
			r.keepAlive = &keepAlive{group: req.Group, member: req.MemberID, instance: req.InstanceID, gen: s.gen,
				every: heartbeatEvery(req.SessionTimeoutMillis)}
		}
	case *kmsg.SyncGroupRequest:
		if req.ReadFrom(rd.Src) != nil {
			return r, true
		}
		s := k.seen(req.Group, req.MemberID, req.Generation, 0)
		r.keepAlive = &keepAlive{group: req.Group, member: req.MemberID, instance: req.InstanceID, gen: req.Generation,
			every: heartbeatEvery(s.sessionMillis)}
	case *kmsg.HeartbeatRequest:
		if req.ReadFrom(rd.Src) == nil {
			k.seen(req.Group, req.MemberID, req.Generation, 0)
		}
	}
	return r, true
}

// heartbeatEvery is the keep-alive interval for a session timeout: a third
// of it, as Kafka clients heartbeat (one second when unknown, below the 6 s
// a broker accepts at least).
func heartbeatEvery(sessionMillis int32) time.Duration {
	if sessionMillis <= 0 {
		return time.Second
	}
	return max(time.Duration(sessionMillis)*time.Millisecond/3, 100*time.Millisecond)
}

// seen records a member's generation (when gen >= 0) and its session
// timeout (when sessionMillis > 0), and returns what is known of it.
func (k *keeper) seen(group, member string, gen, sessionMillis int32) seenMember {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	if k.members == nil {
		k.members = map[memberKey]seenMember{}
	}
	key := memberKey{group, member}
	s, ok := k.members[key]
	if !ok {
		s.gen = -1
	}
	s.at = now
	if gen >= 0 {
		s.gen = gen
	}
	if sessionMillis > 0 {
		s.sessionMillis = sessionMillis
	}
	k.members[key] = s
	if len(k.members) > 10000 {
		for m, s := range k.members {
			if now.Sub(s.at) > time.Hour {
				delete(k.members, m)
			}
		}
	}
	return s
}

func (k *keeper) setAddr(addr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addr = addr
}

// keepAlive heartbeats for a parked member until its request is answered,
// as Kafka keeps a member alive while it waits in JoinGroup or SyncGroup.
// It stops early when the coordinator no longer knows the member at that
// generation (a heartbeat fails for another reason than the rebalance).
func (k *keeper) keepAlive(answered <-chan struct{}, m *keepAlive) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-answered:
			return
		case <-t.C:
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = 3 // the last before flexible versions; has the instance id
		req.Group, req.MemberID, req.InstanceID, req.Generation = m.group, m.member, m.instance, m.gen
		code, err := k.heartbeat(req)
		if err == nil && code != 0 && code != kerr.RebalanceInProgress.Code {
			return
		}
	}
}

// heartbeat sends one heartbeat to the broker itself over the keeper's own
// connection, dialled on first use and again after an error.
func (k *keeper) heartbeat(req *kmsg.HeartbeatRequest) (int16, error) {
	k.hbMu.Lock()
	defer k.hbMu.Unlock()
	if k.conn == nil {
		k.mu.Lock()
		addr := k.addr
		k.mu.Unlock()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("dial %s: %w", addr, err)
		}
		k.conn = c
	}
	code, err := k.roundTrip(req)
	if err != nil {
		k.conn.Close()
		k.conn = nil
	}
	return code, err
}

func (k *keeper) roundTrip(req *kmsg.HeartbeatRequest) (int16, error) {
	k.corr++
	buf := kmsg.NewRequestFormatter(kmsg.FormatterClientID("devbroker-keepalive")).AppendRequest(nil, req, k.corr)
	if err := k.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, fmt.Errorf("set heartbeat deadline: %w", err)
	}
	if _, err := k.conn.Write(buf); err != nil {
		return 0, fmt.Errorf("write heartbeat: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(k.conn, size[:]); err != nil {
		return 0, fmt.Errorf("read heartbeat response: %w", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(k.conn, body); err != nil {
		return 0, fmt.Errorf("read heartbeat response: %w", err)
	}
	if len(body) < 4 || int32(binary.BigEndian.Uint32(body)) != k.corr {
		return 0, errors.New("heartbeat response out of order")
	}
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if err := resp.ReadFrom(body[4:]); err != nil {
		return 0, fmt.Errorf("parse heartbeat response: %w", err)
	}
	return resp.ErrorCode, nil
}
