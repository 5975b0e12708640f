package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// TLSTransport is the Transport between the nodes of a real cluster: raft
// messages over mutual TLS 1.3 on the cluster port (not the API port).
//
// Each node dials one long-lived connection to each peer it sends to and
// writes length-prefixed raftpb.Message frames on it, in order; each
// direction between two nodes has its own connection. A snapshot gets a
// connection of its own for its lifetime, ending with the receiver's
// verdict, so it never delays the messages behind it, and ReportSnapshot
// says what the receiver said. The wire format is in tlswire.go.
//
// Why not HTTP/2 (as etcd's rafthttp uses HTTP/1.1 streams): raft needs
// only one-way ordered streams, which TLS over TCP already is; a few
// hundred lines of framing with explicit deadlines and size limits are
// easier to make robust than net/http's timeouts, body limits and
// connection pooling, and one TCP connection per stream means a snapshot
// never shares a congestion window (or HTTP/2 flow control) with
// heartbeats.
//
// Robustness:
//   - Send never blocks: each peer has a bounded queue and one writer
//     goroutine; a full queue drops the message and reports the peer
//     unreachable, as does a message that cannot be delivered.
//   - Every write has a deadline (WriteTimeout), so a peer that stops
//     reading costs its own writer a reconnect, never anyone else a delay.
//   - A broken connection is dialed again with exponential backoff and
//     jitter; messages queued meanwhile are dropped and reported.
//   - A reader allocates no more than a frame's bytes actually received,
//     frames are bounded by MaxFrameSize, snapshot chunks by 1 MiB, and
//     unauthenticated connections by HandshakeTimeout and a cap on how many
//     may be in the handshake at once.
//   - A newer stream from the same peer (same kind) replaces the older one,
//     so a peer that restarted does not leave a half-open connection behind.
//   - Close closes every connection under every goroutine (not with a TLS
//     close alert, which could wait on a stalled peer) and waits for them.
//
// Authentication: the dialer presents its node certificate and checks the
// listener's names the node it meant to reach; the listener checks the
// dialer's certificate names the node its preface claims, and then every
// message on the stream is from that node to itself (see ClusterTLS).
// Inbound connections are accepted from any node of the cluster, known
// peer or not (a new leader may reach a joining node first).
type TLSTransport struct {
	cfg    TLSTransportConfig
	id     uint64
	ln     net.Listener
	tlsc   atomic.Pointer[ClusterTLS]
	hsSem  chan struct{} // connections in the handshake
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  tlsStats

	mu      sync.RWMutex // protects the fields below
	h       Handler
	started bool
	closed  bool
	peers   map[uint64]*tlsPeer
	inbound map[inboundKey]*inboundStream
}

// TLSTransportConfig configures NewTLSTransport. TLS and one of Listener
// and ListenAddr are required; every other field has a default.
type TLSTransportConfig struct {
	// TLS is the node's identity: its node ID is the transport's, and must
	// be the raft node's ID (Config.ID).
	TLS *ClusterTLS
	// ListenAddr is the cluster port to listen on (host:port), unless
	// Listener, a plain TCP listener, is given: the transport runs TLS on
	// it and closes it on Close.
	ListenAddr string
	Listener   net.Listener
	// Peers are the addresses (host:port) of the other nodes by raft ID;
	// SetPeer and RemovePeer change them later.
	Peers map[uint64]string

	// QueueLen bounds each peer's queue of messages (default 1024).
	QueueLen int
	// MaxFrameSize bounds one message on the wire, both ways (default
	// 32 MiB). It must exceed raft's MaxSizePerMsg plus the largest
	// entry, and the largest batch of proposals a follower forwards.
	MaxFrameSize int
	// DialTimeout bounds a dial, its TLS handshake and the preface
	// exchange (default 5s); HandshakeTimeout the same on the listener's
	// side (default 5s).
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write, and the arrival of a frame once its
	// first bytes came (default 5s).
	WriteTimeout time.Duration
	// SnapshotTimeout bounds each pause in a snapshot stream and the wait
	// for the receiver's verdict after it (default 30s).
	SnapshotTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before dialing a peer again
	// (defaults 50ms and 2s).
	MinBackoff, MaxBackoff time.Duration
	// MaxHandshakes bounds connections in the TLS handshake at once
	// (default 64); more are closed at once.
	MaxHandshakes int
	// Logger receives connection failures and refusals; nil keeps errors.
	Logger raft.Logger
}

func (c TLSTransportConfig) withDefaults() (TLSTransportConfig, error) {
	if c.TLS == nil {
		return c, errors.New("raft: transport: TLS is required")
	}
	if c.Listener == nil && c.ListenAddr == "" {
		return c, errors.New("raft: transport: ListenAddr or Listener is required")
	}
	for id, addr := range c.Peers {
		if err := c.checkPeer(id, addr); err != nil {
			return c, err
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 5*time.Second)
	def(&c.HandshakeTimeout, 5*time.Second)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.SnapshotTimeout, 30*time.Second)
	def(&c.MinBackoff, 50*time.Millisecond)
	def(&c.MaxBackoff, 2*time.Second)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = 32 << 20
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 64
	}
	if c.Logger == nil {
		c.Logger = quietRaftLogger{}
	}
	return c, nil
}

func (c TLSTransportConfig) checkPeer(id uint64, addr string) error {
	if id == 0 || id == c.TLS.NodeID() {
		return fmt.Errorf("raft: transport: bad peer ID %x", id)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("raft: transport: peer %x address %q: %w", id, addr, err)
	}
	return nil
}

var _ Transport = (*TLSTransport)(nil)

// tlsPeer is the sending side towards one node.
type tlsPeer struct {
	id     uint64
	q      chan *pb.Message
	ctx    context.Context // canceled by RemovePeer and Close
	cancel context.CancelFunc

	mu         sync.Mutex // protects the fields below
	addr       string
	connCancel context.CancelFunc // ends the current connection (address change)
}

func (p *tlsPeer) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

type inboundKey struct {
	from uint64
	kind uint8
}

type inboundStream struct{ cancel context.CancelFunc }

type tlsStats struct {
	dials, accepted, refused, protocolErrors, dropped atomic.Int64
}

// NewTLSTransport listens on the cluster port and returns the transport;
// it delivers and sends nothing before Start.
func NewTLSTransport(cfg TLSTransportConfig) (*TLSTransport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("raft: transport: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TLSTransport{
		cfg:     cfg,
		id:      cfg.TLS.NodeID(),
		ln:      ln,
		hsSem:   make(chan struct{}, cfg.MaxHandshakes),
		ctx:     ctx,
		cancel:  cancel,
		peers:   map[uint64]*tlsPeer{},
		inbound: map[inboundKey]*inboundStream{},
	}
	t.tlsc.Store(cfg.TLS)
	for id, addr := range cfg.Peers {
		t.peers[id] = t.newPeer(id, addr)
	}
	t.cfg.Peers = nil
	return t, nil
}

// Addr returns the address the cluster port listens on.
func (t *TLSTransport) Addr() net.Addr { return t.ln.Addr() }

// ID returns the node ID of the transport's certificate.
func (t *TLSTransport) ID() uint64 { return t.id }

// SetTLS replaces the node's certificate and trusted CA (rotation) for
// connections made from now on. The node ID must stay the same.
func (t *TLSTransport) SetTLS(c *ClusterTLS) error {
	if c.NodeID() != t.id {
		return fmt.Errorf("raft: transport: certificate names node %x, transport is node %x", c.NodeID(), t.id)
	}
	t.tlsc.Store(c)
	return nil
}

// SetPeer adds node id at addr (host:port), or moves it there: a
// connection to its old address is closed and the new one dialed.
func (t *TLSTransport) SetPeer(id uint64, addr string) error {
	if err := t.cfg.checkPeer(id, addr); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("raft: transport closed")
	}
	if p := t.peers[id]; p != nil {
		p.mu.Lock()
		if p.addr != addr {
			p.addr = addr
			if p.connCancel != nil {
				p.connCancel()
			}
		}
		p.mu.Unlock()
		return nil
	}
	p := t.newPeer(id, addr)
	t.peers[id] = p
	if t.started {
		t.wg.Add(1)
		go t.runPeer(p)
	}
	return nil
}

// RemovePeer forgets node id: messages to it are dropped (and reported
// unreachable) from now on, its connection and snapshots in flight to it
// are closed. Connections from it are still accepted while its
// certificate is valid: raft ignores a removed node.
func (t *TLSTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// Peers returns the known peers' addresses.
func (t *TLSTransport) Peers() map[uint64]string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[uint64]string, len(t.peers))
	for id, p := range t.peers {
		out[id] = p.address()
	}
	return out
}

func (t *TLSTransport) newPeer(id uint64, addr string) *tlsPeer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &tlsPeer{id: id, addr: addr, q: make(chan *pb.Message, t.cfg.QueueLen), ctx: ctx, cancel: cancel}
}

// Start implements Transport: it starts accepting connections and a
// writer per known peer.
func (t *TLSTransport) Start(h Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("raft: transport closed")
	}
	if t.started {
		return errors.New("raft: transport already started")
	}
	t.h, t.started = h, true
	t.wg.Add(1)
	go t.acceptLoop()
	for _, p := range t.peers {
		t.wg.Add(1)
		go t.runPeer(p)
	}
	return nil
}

// Send implements Transport. The messages are the transport's from now on
// (raft does not touch a message once it handed it out).
func (t *TLSTransport) Send(msgs []*pb.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed || !t.started {
		return
	}
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			t.stats.dropped.Add(1)
			t.h.ReportUnreachable(m.GetTo())
			continue
		}
		select {
		case p.q <- m:
		default:
			t.stats.dropped.Add(1)
			t.h.ReportUnreachable(p.id)
		}
	}
}

// runPeer is the writer towards one peer: it keeps a connection up and
// writes the peer's queue to it.
func (t *TLSTransport) runPeer(p *tlsPeer) {
	defer t.wg.Done()
	backoff := t.cfg.MinBackoff
	failing := false
	for p.ctx.Err() == nil {
		connected, err := t.stream(p)
		if p.ctx.Err() != nil {
			return
		}
		if connected {
			backoff = t.cfg.MinBackoff
		}
		if (!failing || connected) && !errors.Is(err, context.Canceled) {
			t.cfg.Logger.Warningf("raft transport: node %x to %x at %s: %v", t.id, p.id, p.address(), err)
		}
		failing = true
		// Wait before dialing again; what is queued meanwhile is lost.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, t.cfg.MaxBackoff)
		timer := time.NewTimer(wait)
	waiting:
		for {
			select {
			case <-p.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				break waiting
			case <-p.q:
				t.stats.dropped.Add(1)
				t.h.ReportUnreachable(p.id)
			}
		}
	}
}

// stream dials p and writes its queue until the connection fails, the
// peer's address changes or the peer is removed. connected reports whether
// the peer accepted the connection.
func (t *TLSTransport) stream(p *tlsPeer) (connected bool, err error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	p.mu.Lock()
	addr := p.addr
	p.connCancel = cancel
	p.mu.Unlock()

	conn, err := t.dial(ctx, addr, kindMessages, p.id)
	if err != nil {
		return false, err
	}
	raw := conn.NetConn()
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	bw := bufio.NewWriterSize(conn, 64<<10)
	var buf []byte
	for {
		var m *pb.Message
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case m = <-p.q:
		}
		// Write what is queued, then flush once.
		for i := 0; ; i++ {
			buf, err = appendFrame(buf[:0], m, t.cfg.MaxFrameSize)
			if err != nil {
				t.cfg.Logger.Errorf("raft transport: node %x to %x: message %v dropped: %v", t.id, p.id, m.GetType(), err)
				t.stats.dropped.Add(1)
				t.h.ReportUnreachable(p.id)
			} else {
				_ = raw.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
				if _, err := bw.Write(buf); err != nil {
					t.h.ReportUnreachable(p.id)
					return true, err
				}
			}
			if i == 255 {
				break
			}
			select {
			case m = <-p.q:
				continue
			default:
			}
			break
		}
		_ = raw.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		if err := bw.Flush(); err != nil {
			t.h.ReportUnreachable(p.id)
			return true, err
		}
		if cap(buf) > 4<<20 {
			buf = nil
		}
	}
}

// dial connects to node peer at addr, runs the TLS handshake and the
// preface exchange, all within DialTimeout.
func (t *TLSTransport) dial(ctx context.Context, addr string, kind uint8, peer uint64) (*tls.Conn, error) {
	t.stats.dials.Add(1)
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	d := tls.Dialer{Config: t.tlsc.Load().ClientConfig(peer)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*tls.Conn)
	raw := conn.NetConn()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	err = func() error {
		if conn.ConnectionState().NegotiatedProtocol != alpnProto {
			return fmt.Errorf("%w: no %s ALPN", errRefused, alpnProto)
		}
		if _, err := conn.Write(preface{version: wireVersion, kind: kind, from: t.id, to: peer}.encode()); err != nil {
			return err
		}
		var ans [2]byte
		if _, err := io.ReadFull(conn, ans[:]); err != nil {
			return err
		}
		if s := wireStatus(ans[1]); s != statusOK {
			return fmt.Errorf("%w: %v (peer speaks version %d)", errRefused, s, ans[0])
		}
		return nil
	}()
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// SendSnapshot implements Transport: it streams the snapshot on a
// connection of its own and reports the receiver's verdict.
func (t *TLSTransport) SendSnapshot(msg *pb.Message, body io.ReadCloser) {
	to := msg.GetTo()
	t.mu.Lock()
	if t.closed || !t.started {
		t.mu.Unlock()
		body.Close()
		return
	}
	p, h := t.peers[to], t.h
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		err := errors.New("unknown peer")
		if p != nil {
			err = t.sendSnapshot(p, msg, body)
		}
		body.Close()
		status := raft.SnapshotFinish
		if err != nil {
			status = raft.SnapshotFailure
			t.cfg.Logger.Warningf("raft transport: node %x: snapshot at %d to %x failed: %v",
				t.id, msg.GetSnapshot().GetMetadata().GetIndex(), to, err)
		}
		h.ReportSnapshot(to, status)
	}()
}

func (t *TLSTransport) sendSnapshot(p *tlsPeer, msg *pb.Message, body io.Reader) error {
	ctx := p.ctx
	frame, err := appendFrame(nil, msg, t.cfg.MaxFrameSize)
	if err != nil {
		return err
	}
	conn, err := t.dial(ctx, p.address(), kindSnapshot, p.id)
	if err != nil {
		return err
	}
	raw := conn.NetConn()
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	// Unbuffered: each chunk goes out at once, however slowly the body
	// yields them.
	write := func(b []byte) error {
		_ = raw.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		_, err := conn.Write(b)
		return err
	}
	if err := write(frame); err != nil {
		return err
	}
	buf := make([]byte, 4+sendChunk)
	for {
		n, rerr := body.Read(buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if err := write(buf[:4+n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read snapshot: %w", rerr)
		}
	}
	if err := write([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	_ = raw.SetReadDeadline(time.Now().Add(t.cfg.SnapshotTimeout))
	var v [3]byte
	if _, err := io.ReadFull(conn, v[:]); err != nil {
		return fmt.Errorf("no verdict: %w", err)
	}
	reason := make([]byte, min(int(binary.BigEndian.Uint16(v[1:])), maxVerdictLen))
	if _, err := io.ReadFull(conn, reason); err != nil {
		return fmt.Errorf("no verdict: %w", err)
	}
	if v[0] != verdictAccepted {
		return fmt.Errorf("%w: %s", errSnapshotRejected, reason)
	}
	return nil
}

// acceptLoop accepts connections on the cluster port until Close.
func (t *TLSTransport) acceptLoop() {
	defer t.wg.Done()
	delay := 5 * time.Millisecond
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: wait, then retry.
			t.cfg.Logger.Warningf("raft transport: node %x: accept: %v", t.id, err)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		select {
		case t.hsSem <- struct{}{}:
		default: // too many handshakes in progress
			t.stats.refused.Add(1)
			c.Close()
			continue
		}
		t.mu.RLock()
		closed := t.closed
		if !closed {
			t.wg.Add(1)
		}
		t.mu.RUnlock()
		if closed {
			c.Close()
			return
		}
		go t.serve(c)
	}
}

// serve authenticates one inbound connection and reads it.
func (t *TLSTransport) serve(raw net.Conn) {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	conn, from, kind, err := t.handshake(ctx, raw)
	<-t.hsSem
	if err != nil {
		if ctx.Err() != nil {
			return // closing
		}
		t.stats.refused.Add(1)
		t.cfg.Logger.Warningf("raft transport: node %x: refused connection from %s: %v", t.id, raw.RemoteAddr(), err)
		return
	}
	t.stats.accepted.Add(1)

	// A newer stream of the same kind from the same peer replaces this one.
	key := inboundKey{from, kind}
	me := &inboundStream{cancel: cancel}
	t.mu.Lock()
	if old := t.inbound[key]; old != nil {
		old.cancel()
	}
	t.inbound[key] = me
	h := t.h
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if t.inbound[key] == me {
			delete(t.inbound, key)
		}
		t.mu.Unlock()
	}()

	r := &frameReader{br: bufio.NewReaderSize(conn, 64<<10), conn: raw, max: t.cfg.MaxFrameSize, timeout: t.cfg.WriteTimeout}
	if kind == kindSnapshot {
		err = t.receiveSnapshot(ctx, h, conn, raw, r, from)
	} else {
		for {
			var m *pb.Message
			if m, err = r.nextMessage(from, t.id, kindMessages); err != nil {
				break
			}
			_ = h.Step(ctx, m) // a busy node drops it; raft retransmits
		}
	}
	if errors.Is(err, errProtocol) || errors.Is(err, errFrameTooLarge) {
		t.stats.protocolErrors.Add(1)
		t.cfg.Logger.Warningf("raft transport: node %x: closed stream from %x: %v", t.id, from, err)
	}
}

// handshake runs the TLS handshake and the preface exchange of an inbound
// connection within HandshakeTimeout; it returns the authenticated peer.
func (t *TLSTransport) handshake(ctx context.Context, raw net.Conn) (*tls.Conn, uint64, uint8, error) {
	_ = raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	tc := t.tlsc.Load()
	conn := tls.Server(raw, tc.ServerConfig())
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, 0, 0, err
	}
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != alpnProto {
		return nil, 0, 0, fmt.Errorf("%w: no %s ALPN", errRefused, alpnProto)
	}
	certID, err := tc.checkIdentity(cs.PeerCertificates, 0)
	if err != nil {
		return nil, 0, 0, err
	}
	b := make([]byte, wirePrefaceLen)
	if _, err := io.ReadFull(conn, b); err != nil {
		return nil, 0, 0, err
	}
	pre, err := decodePreface(b)
	status := statusOK
	switch {
	case err != nil:
		status = statusBadPreface
	case pre.version != wireVersion:
		status = statusBadVersion
	case pre.kind != kindMessages && pre.kind != kindSnapshot:
		status = statusBadPreface
	case pre.to != t.id:
		status = statusWrongNode
	case pre.from != certID:
		status = statusWrongIdentity
	case ctx.Err() != nil:
		status = statusClosing
	}
	if _, werr := conn.Write([]byte{wireVersion, byte(status)}); werr != nil && status == statusOK {
		return nil, 0, 0, werr
	}
	if status != statusOK {
		return nil, 0, 0, fmt.Errorf("%w: %v (preface from %x to %x, certificate of %x)", errRefused, status, pre.from, pre.to, certID)
	}
	_ = raw.SetDeadline(time.Time{})
	return conn, certID, pre.kind, nil
}

// receiveSnapshot reads a snapshot stream into the handler and answers
// with its verdict.
func (t *TLSTransport) receiveSnapshot(ctx context.Context, h Handler, conn *tls.Conn, raw net.Conn, r *frameReader, from uint64) error {
	_ = raw.SetReadDeadline(time.Now().Add(t.cfg.SnapshotTimeout))
	m, err := r.nextMessage(from, t.id, kindSnapshot)
	if err != nil {
		return err
	}
	body := &chunkReader{br: r.br, conn: raw, timeout: t.cfg.SnapshotTimeout}
	err = h.ReceiveSnapshot(ctx, m, body)
	if err == nil {
		err = body.finish()
	}
	verdict := []byte{verdictAccepted, 0, 0}
	if err != nil {
		reason := err.Error()
		if len(reason) > maxVerdictLen {
			reason = reason[:maxVerdictLen]
		}
		verdict = append([]byte{verdictRejected, 0, 0}, reason...)
		binary.BigEndian.PutUint16(verdict[1:], uint16(len(reason)))
	}
	_ = raw.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	if _, werr := conn.Write(verdict); werr != nil && err == nil {
		return werr
	}
	return err
}

// Close implements Transport: it closes the listener and every
// connection, and waits for every goroutine the transport started.
func (t *TLSTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
