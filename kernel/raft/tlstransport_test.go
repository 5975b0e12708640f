package raft

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// recHandler records what a transport delivers.
type recHandler struct {
	msgs  chan *pb.Message
	snaps chan snapStatus
	// recv, when set, is ReceiveSnapshot; nil reads the body and accepts.
	recv func(ctx context.Context, m *pb.Message, body io.Reader) error

	mu      sync.Mutex // protects unreach
	unreach map[uint64]int
}

func newRecHandler() *recHandler {
	return &recHandler{msgs: make(chan *pb.Message, 1<<14), snaps: make(chan snapStatus, 16), unreach: map[uint64]int{}}
}

func (h *recHandler) Step(_ context.Context, m *pb.Message) error {
	select {
	case h.msgs <- m:
		return nil
	default:
		return errors.New("full")
	}
}

func (h *recHandler) ReceiveSnapshot(ctx context.Context, m *pb.Message, body io.Reader) error {
	if h.recv != nil {
		return h.recv(ctx, m, body)
	}
	_, err := io.Copy(io.Discard, body)
	return err
}

func (h *recHandler) ReportUnreachable(id uint64) {
	h.mu.Lock()
	h.unreach[id]++
	h.mu.Unlock()
}

func (h *recHandler) ReportSnapshot(id uint64, s raft.SnapshotStatus) { h.snaps <- snapStatus{id, s} }

func (h *recHandler) unreachable(id uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unreach[id]
}

// expectMsgs waits for n messages and returns them.
func (h *recHandler) expectMsgs(t *testing.T, n int, within time.Duration) []*pb.Message {
	t.Helper()
	timeout := time.After(within)
	var out []*pb.Message
	for len(out) < n {
		select {
		case m := <-h.msgs:
			out = append(out, m)
		case <-timeout:
			t.Fatalf("got %d messages of %d within %v", len(out), n, within)
		}
	}
	return out
}

// expectNoMsgs fails if a message arrives within d.
func (h *recHandler) expectNoMsgs(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-h.msgs:
		t.Fatalf("unexpected message %v from %x", m.GetType(), m.GetFrom())
	case <-time.After(d):
	}
}

func (h *recHandler) expectSnap(t *testing.T, want raft.SnapshotStatus, within time.Duration) {
	t.Helper()
	select {
	case s := <-h.snaps:
		if s.status != want {
			t.Fatalf("snapshot to %x reported %v, want %v", s.id, s.status, want)
		}
	case <-time.After(within):
		t.Fatalf("no snapshot report within %v", within)
	}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTestTransport returns a started transport on a loopback port; Cleanup
// closes it.
func newTestTransport(t testing.TB, c *ClusterTLS, h Handler, tune func(*TLSTransportConfig)) *TLSTransport {
	t.Helper()
	cfg := TLSTransportConfig{TLS: c, ListenAddr: "127.0.0.1:0", Logger: warnLogger{testLogger{t}}}
	if tune != nil {
		tune(&cfg)
	}
	tr, err := NewTLSTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if h != nil {
		if err := tr.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func testMsg(from, to uint64, typ pb.MessageType, index uint64) *pb.Message {
	return &pb.Message{Type: typ.Enum(), From: new(from), To: new(to), Index: new(index), Term: new(uint64(1))}
}

func bigMsg(from, to uint64, size int) *pb.Message {
	m := testMsg(from, to, pb.MsgApp, 1)
	m.Entries = []*pb.Entry{{Data: make([]byte, size)}}
	return m
}

// pair returns two started transports, nodes 1 and 2, that know each other.
func pair(t *testing.T, tune func(*TLSTransportConfig)) (*TLSTransport, *recHandler, *TLSTransport, *recHandler) {
	pki := newTestPKI(t, "test")
	h1, h2 := newRecHandler(), newRecHandler()
	t1 := newTestTransport(t, pki.node(t, 1), h1, tune)
	t2 := newTestTransport(t, pki.node(t, 2), h2, tune)
	if err := t1.SetPeer(2, t2.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := t2.SetPeer(1, t1.Addr().String()); err != nil {
		t.Fatal(err)
	}
	return t1, h1, t2, h2
}

func TestTLSTransportDelivers(t *testing.T) {
	checkNoLeaks(t)
	t1, h1, t2, h2 := pair(t, nil)
	for i := range 100 {
		t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgApp, uint64(i))})
		t2.Send([]*pb.Message{testMsg(2, 1, pb.MsgAppResp, uint64(i))})
	}
	for i, m := range h2.expectMsgs(t, 100, 5*time.Second) {
		if m.GetIndex() != uint64(i) || m.GetFrom() != 1 || m.GetTo() != 2 || m.GetType() != pb.MsgApp {
			t.Fatalf("message %d at node 2: %v", i, m)
		}
	}
	for i, m := range h1.expectMsgs(t, 100, 5*time.Second) {
		if m.GetIndex() != uint64(i) || m.GetType() != pb.MsgAppResp {
			t.Fatalf("message %d at node 1: %v", i, m)
		}
	}
	// A message to a node without an address is dropped and reported.
	t1.Send([]*pb.Message{testMsg(1, 7, pb.MsgApp, 0)})
	if h1.unreachable(7) != 1 {
		t.Fatal("message to an unknown node not reported unreachable")
	}
	if err := t1.SetPeer(1, "127.0.0.1:1"); err == nil {
		t.Fatal("SetPeer accepted the node itself")
	}
	if err := t1.SetPeer(3, "no port"); err == nil {
		t.Fatal("SetPeer accepted an address without a port")
	}
}

// TestTLSTransportReconnects restarts a node on another port: its peer
// follows SetPeer there; and on the same port: its peer redials on its own.
func TestTLSTransportReconnects(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t, "test")
	h1, h2 := newRecHandler(), newRecHandler()
	fast := func(c *TLSTransportConfig) { c.MinBackoff, c.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond }
	t1 := newTestTransport(t, pki.node(t, 1), h1, fast)
	t2 := newTestTransport(t, pki.node(t, 2), h2, fast)
	_ = t1.SetPeer(2, t2.Addr().String())
	t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgHeartbeat, 0)})
	h2.expectMsgs(t, 1, 5*time.Second)

	t2.Close()
	h2b := newRecHandler()
	t2b := newTestTransport(t, pki.node(t, 2), h2b, fast)
	_ = t1.SetPeer(2, t2b.Addr().String())
	waitFor(t, "delivery at the new address", 5*time.Second, func() bool {
		t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgHeartbeat, 0)})
		time.Sleep(10 * time.Millisecond)
		return len(h2b.msgs) > 0
	})

	addr := t2b.Addr().String()
	t2b.Close()
	h2c := newRecHandler()
	newTestTransport(t, pki.node(t, 2), h2c, func(c *TLSTransportConfig) { fast(c); c.ListenAddr = addr })
	waitFor(t, "delivery after the peer restarted", 5*time.Second, func() bool {
		t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgHeartbeat, 0)})
		time.Sleep(10 * time.Millisecond)
		return len(h2c.msgs) > 0
	})
	if h1.unreachable(2) == 0 {
		t.Error("messages lost while the peer was down were not reported")
	}

	t1.RemovePeer(2)
	before := h1.unreachable(2)
	t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgHeartbeat, 0)})
	if h1.unreachable(2) != before+1 {
		t.Error("message to a removed peer not reported unreachable")
	}
}

// TestTLSTransportForeignCA: a node whose certificate comes from another CA
// (even one naming the same cluster) can neither send nor receive.
func TestTLSTransportForeignCA(t *testing.T) {
	checkNoLeaks(t)
	pki, foreign := newTestPKI(t, "test"), newTestPKI(t, "test")
	h1, h2 := newRecHandler(), newRecHandler()
	t1 := newTestTransport(t, pki.node(t, 1), h1, nil)
	t2 := newTestTransport(t, foreign.node(t, 2), h2, nil)
	_ = t1.SetPeer(2, t2.Addr().String())
	_ = t2.SetPeer(1, t1.Addr().String())
	waitFor(t, "refusals on both sides", 5*time.Second, func() bool {
		t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgHeartbeat, 0)})
		t2.Send([]*pb.Message{testMsg(2, 1, pb.MsgHeartbeat, 0)})
		time.Sleep(10 * time.Millisecond)
		return t1.stats.refused.Load() > 0 && t2.stats.refused.Load() > 0 &&
			h1.unreachable(2) > 0 && h2.unreachable(1) > 0
	})
	h1.expectNoMsgs(t, 50*time.Millisecond)
	h2.expectNoMsgs(t, 0)
	if t1.stats.accepted.Load() != 0 || t2.stats.accepted.Load() != 0 {
		t.Fatal("a connection was accepted")
	}
	// A raw client with the foreign certificate fails the handshake.
	if _, _, err := rawDial(foreign.node(t, 2), 1, t1.Addr().String(), preface{version: wireVersion, kind: kindMessages, from: 2, to: 1}); err == nil {
		t.Fatal("foreign certificate accepted")
	}
}

// rawDial connects to addr as the node of c, expecting node server there,
// sends pre and returns the connection and the listener's answer.
func rawDial(c *ClusterTLS, server uint64, addr string, pre preface) (*tls.Conn, wireStatus, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, c.ClientConfig(server))
	if err != nil {
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(pre.encode()); err != nil {
		conn.Close()
		return nil, 0, err
	}
	var ans [2]byte
	if _, err := io.ReadFull(conn, ans[:]); err != nil {
		conn.Close()
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, wireStatus(ans[1]), nil
}

func writeFrame(t *testing.T, w io.Writer, m *pb.Message) {
	t.Helper()
	b, err := appendFrame(nil, m, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

// expectClosed waits for the listener to close conn.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection not closed by the listener: %v", err)
	}
	conn.Close()
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestTLSTransportIdentity: the listener refuses a preface whose sender is
// not the certificate's node, or whose receiver is not itself, and closes a
// stream carrying a message not from its sender, not to itself, of a local
// type, or a snapshot; the dialer refuses a listener that is not the node
// it meant to reach.
func TestTLSTransportIdentity(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t, "test")
	h1 := newRecHandler()
	t1 := newTestTransport(t, pki.node(t, 1), h1, nil)
	addr := t1.Addr().String()
	n3 := pki.node(t, 3)

	for _, c := range []struct {
		pre  preface
		want wireStatus
	}{
		{preface{version: wireVersion, kind: kindMessages, from: 2, to: 1}, statusWrongIdentity},
		{preface{version: wireVersion, kind: kindMessages, from: 3, to: 9}, statusWrongNode},
		{preface{version: 9, kind: kindMessages, from: 3, to: 1}, statusBadVersion},
		{preface{version: wireVersion, kind: 7, from: 3, to: 1}, statusBadPreface},
	} {
		conn, got, err := rawDial(n3, 1, addr, c.pre)
		if err != nil {
			t.Fatalf("%+v: %v", c.pre, err)
		}
		if got != c.want {
			t.Errorf("%+v: answer %v, want %v", c.pre, got, c.want)
		}
		expectClosed(t, conn)
	}

	for _, m := range []*pb.Message{
		testMsg(2, 1, pb.MsgApp, 0),  // not from the sender
		testMsg(3, 4, pb.MsgApp, 0),  // not to the receiver
		testMsg(3, 1, pb.MsgHup, 0),  // local to raft
		testMsg(3, 1, pb.MsgSnap, 0), // snapshots have their own streams
		testMsg(3, 1, pb.MsgStorageAppend, 0),
	} {
		conn, st, err := rawDial(n3, 1, addr, preface{version: wireVersion, kind: kindMessages, from: 3, to: 1})
		if err != nil || st != statusOK {
			t.Fatalf("valid preface: %v, %v", st, err)
		}
		writeFrame(t, conn, testMsg(3, 1, pb.MsgHeartbeat, 7))
		writeFrame(t, conn, m)
		expectClosed(t, conn)
		if got := h1.expectMsgs(t, 1, 2*time.Second)[0]; got.GetIndex() != 7 {
			t.Fatalf("delivered %v", got)
		}
	}
	h1.expectNoMsgs(t, 20*time.Millisecond)
	if got := t1.stats.protocolErrors.Load(); got != 5 {
		t.Errorf("protocol errors: %d, want 5", got)
	}

	// Node 1 believes node 2 is where node 3 listens: node 3's certificate
	// is refused and node 3 receives nothing.
	h3 := newRecHandler()
	t3 := newTestTransport(t, n3, h3, nil)
	_ = t1.SetPeer(2, t3.Addr().String())
	waitFor(t, "node 2 unreachable", 5*time.Second, func() bool {
		t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgHeartbeat, 0)})
		time.Sleep(10 * time.Millisecond)
		return h1.unreachable(2) > 0
	})
	h3.expectNoMsgs(t, 20*time.Millisecond)
	if t3.stats.accepted.Load() != 0 {
		t.Fatal("node 3 accepted a stream meant for node 2")
	}
}

// TestTLSTransportOversizedFrame: the listener closes a stream announcing a
// frame over MaxFrameSize without allocating it; the sender drops such a
// message itself and goes on with the next.
func TestTLSTransportOversizedFrame(t *testing.T) {
	checkNoLeaks(t)
	small := func(c *TLSTransportConfig) { c.MaxFrameSize = 64 << 10 }
	t1, h1, _, h2 := pair(t, small)
	t1.Send([]*pb.Message{bigMsg(1, 2, 100<<10), testMsg(1, 2, pb.MsgHeartbeat, 5)})
	if got := h2.expectMsgs(t, 1, 5*time.Second)[0]; got.GetIndex() != 5 {
		t.Fatalf("delivered %v", got)
	}
	waitFor(t, "oversized message reported", time.Second, func() bool { return h1.unreachable(2) == 1 })
}

// TestTLSTransportOversizedFrameRefused sends frame headers by hand.
func TestTLSTransportOversizedFrameRefused(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t, "test")
	h1 := newRecHandler()
	t1 := newTestTransport(t, pki.node(t, 1), h1, func(c *TLSTransportConfig) { c.MaxFrameSize = 64 << 10 })
	n2 := pki.node(t, 2)
	for _, n := range []uint32{64<<10 + 1, 1 << 31, 0} {
		conn, st, err := rawDial(n2, 1, t1.Addr().String(), preface{version: wireVersion, kind: kindMessages, from: 2, to: 1})
		if err != nil || st != statusOK {
			t.Fatalf("preface: %v %v", st, err)
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], n)
		_, _ = conn.Write(hdr[:])
		expectClosed(t, conn)
	}
	if got := t1.stats.protocolErrors.Load(); got != 3 {
		t.Fatalf("protocol errors %d, want 3", got)
	}
	// A frame at the limit is fine.
	conn, _, err := rawDial(n2, 1, t1.Addr().String(), preface{version: wireVersion, kind: kindMessages, from: 2, to: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := bigMsg(2, 1, 60<<10)
	writeFrame(t, conn, m)
	h1.expectMsgs(t, 1, 5*time.Second)
}

// stalledPeer accepts connections and never reads from them. With an
// identity it first completes the TLS handshake and accepts the preface, so
// the dialer's writes block once the socket buffers are full; without, it
// never answers the handshake.
type stalledPeer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex // protects conns
	conns    []net.Conn
}

func newStalledPeer(t *testing.T, id *ClusterTLS) *stalledPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stalledPeer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			if id == nil {
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				conn := tls.Server(c, id.ServerConfig())
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, wirePrefaceLen)
				if conn.Handshake() != nil {
					return
				}
				if _, err := io.ReadFull(conn, b); err != nil {
					return
				}
				_, _ = conn.Write([]byte{wireVersion, byte(statusOK)})
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stalledPeer) addr() string { return s.ln.Addr().String() }

func (s *stalledPeer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// TestTLSTransportStalledPeer: a peer that accepts a connection and stops
// reading fills its own queue and socket buffers only: Send never blocks,
// messages to another peer keep flowing, the stalled connection is given
// up after WriteTimeout and dialed again.
func TestTLSTransportStalledPeer(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t, "test")
	h1, h3 := newRecHandler(), newRecHandler()
	tune := func(c *TLSTransportConfig) {
		c.QueueLen = 16
		c.WriteTimeout = 300 * time.Millisecond
		c.MinBackoff, c.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	t1 := newTestTransport(t, pki.node(t, 1), h1, tune)
	t3 := newTestTransport(t, pki.node(t, 3), h3, nil)
	stalled := newStalledPeer(t, pki.node(t, 2))
	silent := newStalledPeer(t, nil) // node 4: never completes a handshake
	_ = t1.SetPeer(2, stalled.addr())
	_ = t1.SetPeer(3, t3.Addr().String())
	_ = t1.SetPeer(4, silent.addr())

	t1.Send([]*pb.Message{testMsg(1, 3, pb.MsgHeartbeat, 0)})
	h3.expectMsgs(t, 1, 5*time.Second)

	// 200 rounds, 2ms apart: longer than WriteTimeout, so node 2's
	// connection stalls, is given up and is dialed again meanwhile.
	const rounds = 200
	var slowest time.Duration
	for i := range rounds {
		start := time.Now()
		t1.Send([]*pb.Message{bigMsg(1, 2, 256<<10), testMsg(1, 3, pb.MsgApp, uint64(i)), testMsg(1, 4, pb.MsgApp, uint64(i))})
		slowest = max(slowest, time.Since(start))
		time.Sleep(2 * time.Millisecond)
	}
	if slowest > 50*time.Millisecond {
		t.Errorf("slowest Send took %v", slowest)
	}
	// Node 3 gets them all, in order (a burst may overflow its small queue
	// on a loaded machine: allow a few losses, never reordering).
	var got []uint64
	timeout := time.After(5 * time.Second)
collect:
	for len(got) < rounds {
		select {
		case m := <-h3.msgs:
			got = append(got, m.GetIndex())
		case <-timeout:
			break collect
		}
	}
	if len(got) < rounds*95/100 {
		t.Fatalf("node 3 got %d messages of %d", len(got), rounds)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("node 3 got index %d after %d", got[i], got[i-1])
		}
	}
	if h1.unreachable(2) == 0 || h1.unreachable(4) == 0 {
		t.Fatalf("stalled peers not reported unreachable: %v", h1.unreach)
	}
	waitFor(t, "stalled connection given up and dialed again", 5*time.Second, func() bool {
		t1.Send([]*pb.Message{bigMsg(1, 2, 256<<10)})
		time.Sleep(10 * time.Millisecond)
		return stalled.accepted.Load() >= 2
	})
}

// TestTLSTransportCloseWithStuckConnections: Close returns at once although
// every kind of connection is stuck and every timeout is long.
func TestTLSTransportCloseWithStuckConnections(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t, "test")
	h1 := newRecHandler()
	long := func(c *TLSTransportConfig) {
		c.DialTimeout, c.HandshakeTimeout, c.WriteTimeout, c.SnapshotTimeout = time.Minute, time.Minute, time.Minute, time.Minute
	}
	t1 := newTestTransport(t, pki.node(t, 1), h1, long)
	stalled := newStalledPeer(t, pki.node(t, 2))
	silent := newStalledPeer(t, nil)
	_ = t1.SetPeer(2, stalled.addr())
	_ = t1.SetPeer(3, silent.addr())
	// A writer blocked in Write, a dial blocked in the handshake.
	for range 64 {
		t1.Send([]*pb.Message{bigMsg(1, 2, 256<<10), testMsg(1, 3, pb.MsgApp, 0)})
	}
	// A snapshot blocked in Write.
	body := &countingBody{r: bytes.NewReader(make([]byte, 32<<20))}
	t1.SendSnapshot(testSnapMsg(1, 2), body)
	// Inbound: a connection that never handshakes, one stuck mid-frame.
	raw, err := net.Dial("tcp", t1.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, _, err := rawDial(pki.node(t, 4), 1, t1.Addr().String(), preface{version: wireVersion, kind: kindMessages, from: 4, to: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte{0, 0, 1, 0, 1, 2, 3})
	waitFor(t, "writers stuck", 5*time.Second, func() bool { return body.n.Load() > 0 && silent.accepted.Load() > 0 })
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	if err := t1.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if !body.closed.Load() {
		t.Error("snapshot body not closed")
	}
	h1.expectSnap(t, raft.SnapshotFailure, time.Second)
}

type countingBody struct {
	r      io.Reader
	n      atomic.Int64
	closed atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { b.closed.Store(true); return nil }

func testSnapMsg(from, to uint64) *pb.Message {
	m := testMsg(from, to, pb.MsgSnap, 0)
	m.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(42)), Term: new(uint64(3))}}
	return m
}

// gatedBody yields size bytes and stops after half until gate is closed.
type gatedBody struct {
	data []byte
	off  int
	gate chan struct{}
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if g.off >= len(g.data) {
		return 0, io.EOF
	}
	if g.off >= len(g.data)/2 {
		<-g.gate
	}
	n := copy(p[:min(len(p), 32<<10)], g.data[g.off:])
	g.off += n
	return n, nil
}

func (g *gatedBody) Close() error { return nil }

// TestTLSTransportSnapshot: a snapshot of a few MB streams on its own
// connection while messages keep flowing (even while the snapshot is stuck
// half way), arrives intact, and is reported as the receiver decided.
func TestTLSTransportSnapshot(t *testing.T) {
	checkNoLeaks(t)
	t1, h1, _, h2 := pair(t, nil)
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var got atomic.Int64
	var sum [32]byte
	var meta *pb.Message
	h2.recv = func(ctx context.Context, m *pb.Message, body io.Reader) error {
		meta = m
		hash := sha256.New()
		_, err := io.Copy(hash, io.TeeReader(body, writerFunc(func(p []byte) { got.Add(int64(len(p))) })))
		copy(sum[:], hash.Sum(nil))
		return err
	}
	gate := make(chan struct{})
	t1.SendSnapshot(testSnapMsg(1, 2), &gatedBody{data: data, gate: gate})
	waitFor(t, "half the snapshot received", 5*time.Second, func() bool { return got.Load() >= int64(len(data)/2-sendChunk) })
	for i := range 50 {
		t1.Send([]*pb.Message{testMsg(1, 2, pb.MsgApp, uint64(i))})
	}
	h2.expectMsgs(t, 50, 5*time.Second)
	close(gate)
	h1.expectSnap(t, raft.SnapshotFinish, 10*time.Second)
	if sum != sha256.Sum256(data) || got.Load() != int64(len(data)) {
		t.Fatalf("snapshot body differs (%d bytes of %d)", got.Load(), len(data))
	}
	if meta.GetSnapshot().GetMetadata().GetIndex() != 42 || meta.GetFrom() != 1 {
		t.Fatalf("snapshot message %v", meta)
	}

	// The receiver refuses it: reported as a failure.
	h2.recv = func(ctx context.Context, m *pb.Message, body io.Reader) error {
		_, _ = io.Copy(io.Discard, body)
		return fmt.Errorf("%w: test says no", ErrBadSnapshot)
	}
	t1.SendSnapshot(testSnapMsg(1, 2), io.NopCloser(bytes.NewReader(data[:1000])))
	h1.expectSnap(t, raft.SnapshotFailure, 5*time.Second)

	// The sender's body fails half way: the receiver sees a truncated
	// stream, the sender reports a failure.
	recvErr := make(chan error, 1)
	h2.recv = func(ctx context.Context, m *pb.Message, body io.Reader) error {
		_, err := io.Copy(io.Discard, body)
		recvErr <- err
		return err
	}
	t1.SendSnapshot(testSnapMsg(1, 2), io.NopCloser(io.MultiReader(bytes.NewReader(data[:200<<10]), iotestErrReader{})))
	h1.expectSnap(t, raft.SnapshotFailure, 5*time.Second)
	if err := <-recvErr; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("receiver read error %v, want unexpected EOF", err)
	}

	// A snapshot to a node with no address fails at once.
	t1.SendSnapshot(testSnapMsg(1, 9), io.NopCloser(bytes.NewReader(nil)))
	h1.expectSnap(t, raft.SnapshotFailure, time.Second)
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// tlsNet hands out TLS transports for a cluster on loopback ports.
type tlsNet struct {
	t    testing.TB
	pki  *testPKI
	tune func(*TLSTransportConfig)

	mu      sync.Mutex // protects the maps below
	addrs   map[uint64]string
	fresh   map[uint64]*TLSTransport // created, not handed to a node yet
	current map[uint64]*TLSTransport
}

func newTLSNet(t testing.TB, ids []uint64, tune func(*TLSTransportConfig)) *tlsNet {
	n := &tlsNet{t: t, pki: newTestPKI(t, "test"), tune: tune, addrs: map[uint64]string{},
		fresh: map[uint64]*TLSTransport{}, current: map[uint64]*TLSTransport{}}
	for _, id := range ids {
		n.add(id)
	}
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, tr := range n.fresh {
			tr.Close()
		}
	})
	return n
}

// add creates node id's transport (at its old address if it had one) and
// tells every other transport where it is.
func (n *tlsNet) add(id uint64) *TLSTransport {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	addr, known := n.addrs[id]
	if !known {
		addr = "127.0.0.1:0"
	}
	peers := map[uint64]string{}
	for p, a := range n.addrs {
		if p != id {
			peers[p] = a
		}
	}
	cfg := TLSTransportConfig{TLS: n.pki.node(n.t, id), ListenAddr: addr, Peers: peers, Logger: quietRaftLogger{}}
	if n.tune != nil {
		n.tune(&cfg)
	}
	tr, err := NewTLSTransport(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.fresh[id], n.current[id] = tr, tr
	if !known {
		n.addrs[id] = tr.Addr().String()
		for p, other := range n.current {
			if p != id {
				_ = other.SetPeer(id, n.addrs[id])
			}
		}
	}
	return tr
}

// transport is for Config.Transport: the fresh transport of id, or a new one.
func (n *tlsNet) transport(id uint64) Transport {
	n.mu.Lock()
	tr := n.fresh[id]
	delete(n.fresh, id)
	n.mu.Unlock()
	if tr != nil {
		return tr
	}
	n.add(id)
	return n.transport(id)
}

func (n *tlsNet) get(id uint64) *TLSTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current[id]
}

func newTLSCluster(t testing.TB, size int, o clusterOpts) (*cluster, *tlsNet) {
	var ids []uint64
	for i := 1; i <= size; i++ {
		ids = append(ids, uint64(i))
	}
	tn := newTLSNet(t, ids, nil)
	tune := o.tune
	o.tune = func(cfg *Config) {
		if tune != nil {
			tune(cfg)
		}
		cfg.Transport = tn.transport(cfg.ID)
	}
	return newCluster(t, size, o), tn
}

// TestTLSCluster runs three nodes over loopback TLS: a leader is elected,
// writes replicate, follower reads are linearizable, a restarted node
// catches up, and a node that joins later catches up by snapshot (a few MB)
// while writes keep flowing.
func TestTLSCluster(t *testing.T) {
	checkNoLeaks(t)
	c, tn := newTLSCluster(t, 3, clusterOpts{seed: 21, tune: snapshotTune})
	lead := c.leader()
	for i := range 20 {
		mustPut(t, lead, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	f := c.follower()
	if got := mustGet(t, f, "k19"); got != "19" {
		t.Fatalf("follower read %q", got)
	}
	mustPut(t, f, "via-follower", "x")
	if got := mustGet(t, c.leader(), "via-follower"); got != "x" {
		t.Fatalf("leader read %q", got)
	}

	// Restart a follower: the others dial it again at the same address.
	c.stop(f.ID())
	mustPut(t, c.leader(), "while-down", "y")
	f = c.restart(f.ID())
	if got := mustGet(t, f, "while-down"); got != "y" {
		t.Fatalf("restarted follower read %q", got)
	}

	// A few MB of state, then node 4 joins and is sent a snapshot.
	val := bytes.Repeat([]byte("v"), 64<<10)
	for i := range 48 {
		if err := c.leader().Backend().Put(ctxT(t, 10*time.Second), fmt.Sprintf("big/%02d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	lead = c.leader()
	tn.add(4)
	c.mu.Lock()
	c.fs[4], c.dirs[4] = vfs.NewCrashableMem(), "data"
	c.mu.Unlock()
	fresh := c.start(4, nil)
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := lead.Backend().Put(context.Background(), fmt.Sprintf("during/%d", i), []byte("z")); err != nil {
				t.Errorf("write during snapshot: %v", err)
				return
			}
			writes.Add(1)
		}
	}()
	ctx := ctxT(t, 10*time.Second)
	if err := lead.AddLearner(ctx, 4); err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	waitFor(t, "snapshot installed on node 4", 10*time.Second, func() bool { return fresh.stats.snapshotsInstalled.Load() > 0 })
	close(stop)
	wg.Wait()
	if writes.Load() == 0 {
		t.Fatal("no write completed while the snapshot was sent")
	}
	if err := lead.AddVoter(ctx, 4); err != nil {
		t.Fatalf("promote: %v", err)
	}
	c.waitApplied(c.leader().Status().Applied)
	for _, k := range []string{"k00", "big/47", "via-follower"} {
		if got := mustGet(t, fresh, k); got == "" {
			t.Fatalf("node 4 misses %s", k)
		}
	}
	if tn.get(4).stats.accepted.Load() == 0 {
		t.Fatal("node 4's transport accepted nothing")
	}
}

// TestTLSClusterStalledPeer: node 3's address leads to a process that
// accepts TCP connections and never reads. Nodes 1 and 2 elect a leader,
// write, read, and the leadership holds: the raft loop never waits on the
// stalled peer, and heartbeats keep flowing to the other node.
func TestTLSClusterStalledPeer(t *testing.T) {
	checkNoLeaks(t)
	c, tn := newTLSCluster(t, 3, clusterOpts{seed: 22, tune: func(cfg *Config) { cfg.ElectionTicks = 30 }})
	c.stop(3)
	stalled := newStalledPeer(t, nil)
	_ = tn.get(1).SetPeer(3, stalled.addr())
	_ = tn.get(2).SetPeer(3, stalled.addr())
	lead := c.leader()
	term := lead.Status().Term
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		mustPut(t, lead, fmt.Sprintf("k%d", i), "v")
		if i%10 == 0 {
			mustGet(t, c.follower(), fmt.Sprintf("k%d", i))
		}
	}
	if s := lead.Status(); s.Role != raft.StateLeader || s.Term != term {
		t.Fatalf("leadership lost: %+v (term was %d)", s, term)
	}
	if stalled.accepted.Load() == 0 {
		t.Fatal("the stalled peer was never dialed")
	}
}

// FuzzTLSFrames feeds arbitrary bytes to the listener's parsers: they
// return an error or a message that passed the checks, never panic, never
// allocate more than they received.
func FuzzTLSFrames(f *testing.F) {
	good, _ := appendFrame(nil, testMsg(2, 1, pb.MsgApp, 3), 1<<20)
	f.Add(append(preface{version: wireVersion, kind: kindMessages, from: 2, to: 1}.encode(), good...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= wirePrefaceLen {
			_, _ = decodePreface(b[:wirePrefaceLen])
			b = b[wirePrefaceLen:]
		}
		r := &frameReader{br: bufioReader(b), max: 1 << 16}
		for {
			m, err := r.nextMessage(2, 1, kindMessages)
			if err != nil {
				break
			}
			if m.GetFrom() != 2 || m.GetTo() != 1 || !proto.Equal(m, m) {
				t.Fatalf("bad message passed: %v", m)
			}
			if r.buf.Cap() > 2*len(b)+4096 {
				t.Fatalf("buffer of %d bytes for %d of input", r.buf.Cap(), len(b))
			}
		}
		cr := &chunkReader{br: bufioReader(b)}
		_, _ = io.Copy(io.Discard, cr)
	})
}

// warnLogger logs warnings too.
type warnLogger struct{ testLogger }

func (l warnLogger) Warningf(f string, v ...any) { l.t.Logf("warning: "+f, v...) }

// TestTLSTransportHammer sends, moves and removes peers, streams snapshots
// and closes, all at once: no race, no leak, no Handler call after Close.
func TestTLSTransportHammer(t *testing.T) {
	checkNoLeaks(t)
	pki := newTestPKI(t, "test")
	fast := func(c *TLSTransportConfig) {
		c.MinBackoff, c.MaxBackoff = time.Millisecond, 10*time.Millisecond
		c.Logger = quietRaftLogger{}
	}
	h1 := &closeCheckHandler{recHandler: newRecHandler()}
	h1.snaps = make(chan snapStatus, 1<<10)
	t1 := newTestTransport(t, pki.node(t, 1), h1, fast)
	var addrs []string
	for id := uint64(2); id <= 4; id++ {
		tr := newTestTransport(t, pki.node(t, id), newRecHandler(), fast)
		addrs = append(addrs, tr.Addr().String())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uint64(2 + (g+i)%3)
				switch i % 50 {
				case 0:
					_ = t1.SetPeer(id, addrs[(g+i)%len(addrs)])
				case 1:
					t1.RemovePeer(id)
				case 2:
					t1.SendSnapshot(testSnapMsg(1, id), io.NopCloser(bytes.NewReader(make([]byte, 100<<10))))
				default:
					t1.Send([]*pb.Message{testMsg(1, id, pb.MsgApp, uint64(i))})
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := t1.Close(); err != nil {
		t.Fatal(err)
	}
	h1.closed.Store(true)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if h1.late.Load() != 0 {
		t.Fatalf("%d Handler calls after Close", h1.late.Load())
	}
}

type closeCheckHandler struct {
	*recHandler
	closed atomic.Bool
	late   atomic.Int64
}

func (h *closeCheckHandler) ReportUnreachable(id uint64) {
	if h.closed.Load() {
		h.late.Add(1)
	}
	h.recHandler.ReportUnreachable(id)
}

func (h *closeCheckHandler) ReportSnapshot(id uint64, s raft.SnapshotStatus) {
	if h.closed.Load() {
		h.late.Add(1)
	}
	select {
	case h.snaps <- snapStatus{id, s}:
	default:
	}
}

// TestFollowerProposalsFitFrames: many concurrent writes on a follower are
// forwarded to the leader in messages of at most MaxSizePerMsg, each within
// the transport's frame limit, instead of one message that the transport
// would drop every time.
func TestFollowerProposalsFitFrames(t *testing.T) {
	checkNoLeaks(t)
	var ids = []uint64{1, 2, 3}
	tn := newTLSNet(t, ids, func(c *TLSTransportConfig) { c.MaxFrameSize = 256 << 10 })
	c := newCluster(t, 3, clusterOpts{seed: 23, tune: func(cfg *Config) {
		cfg.MaxSizePerMsg = 64 << 10
		cfg.RequestTimeout = 10 * time.Second
		cfg.Transport = tn.transport(cfg.ID)
	}})
	c.leader()
	f := c.follower()
	val := bytes.Repeat([]byte("x"), 16<<10)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 { // 1 MiB in all, queued together
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.Backend().Put(ctxT(t, 15*time.Second), fmt.Sprintf("w/%02d", i), val)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a write through the follower failed: %v", err)
		}
	}
}
