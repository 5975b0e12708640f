package raft

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// MemNetwork is an in-memory network of Transports for tests. Messages are
// marshaled on Send and unmarshaled on delivery, as on a wire, so nodes never
// share memory. A seeded random source decides every fault, so a test names
// its faults by a seed:
//
//   - Faults: drop, duplicate and delay (hence reorder) a share of messages;
//   - Partition, Isolate, Cut: links that carry nothing until Heal.
//
// Each link (ordered pair of nodes) has its own bounded queue and goroutine,
// so a peer that is slow or gone never delays messages to others.
type MemNetwork struct {
	mu     sync.Mutex // protects the fields below
	rng    *rand.Rand
	eps    map[uint64]*memEndpoint
	cut    map[[2]uint64]bool
	faults Faults
}

// Faults are the random faults a MemNetwork injects into every link that is
// not cut.
type Faults struct {
	Drop      float64       // share of messages dropped, 0..1
	Duplicate float64       // share of messages delivered twice, 0..1
	MaxDelay  time.Duration // each message delayed uniformly in [0, MaxDelay]
	// SnapshotFail is the share of snapshot streams cut half way.
	SnapshotFail float64
}

// memQueueLen bounds each link's queue.
const memQueueLen = 512

// NewMemNetwork returns an empty network whose faults are drawn from seed.
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		eps: map[uint64]*memEndpoint{},
		cut: map[[2]uint64]bool{},
	}
}

// Transport returns the Transport of node id, replacing any earlier one (a
// restarted node gets a new Transport).
func (net *MemNetwork) Transport(id uint64) Transport {
	return &memEndpoint{net: net, id: id, links: map[uint64]*memLink{}, stopc: make(chan struct{})}
}

// SetFaults replaces the random faults.
func (net *MemNetwork) SetFaults(f Faults) {
	net.mu.Lock()
	net.faults = f
	net.mu.Unlock()
}

// Partition cuts every link between nodes of different groups. Nodes named
// in no group keep their links.
func (net *MemNetwork) Partition(groups ...[]uint64) {
	net.mu.Lock()
	defer net.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					net.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
}

// Isolate cuts every link to and from id.
func (net *MemNetwork) Isolate(id uint64, all []uint64) {
	net.mu.Lock()
	defer net.mu.Unlock()
	for _, o := range all {
		if o != id {
			net.cut[[2]uint64{id, o}] = true
			net.cut[[2]uint64{o, id}] = true
		}
	}
}

// Cut cuts the one-way link from -> to.
func (net *MemNetwork) Cut(from, to uint64) {
	net.mu.Lock()
	net.cut[[2]uint64{from, to}] = true
	net.mu.Unlock()
}

// Heal restores every link (faults stay).
func (net *MemNetwork) Heal() {
	net.mu.Lock()
	net.cut = map[[2]uint64]bool{}
	net.mu.Unlock()
}

// fate decides what happens to one message on from -> to: the endpoint to
// deliver to (nil: unreachable), and the delays of its copies (none: dropped).
func (net *MemNetwork) fate(from, to uint64) (*memEndpoint, []time.Duration) {
	net.mu.Lock()
	defer net.mu.Unlock()
	ep := net.eps[to]
	if ep == nil || net.cut[[2]uint64{from, to}] {
		return nil, nil
	}
	f := net.faults
	if f.Drop > 0 && net.rng.Float64() < f.Drop {
		return ep, nil
	}
	n := 1
	if f.Duplicate > 0 && net.rng.Float64() < f.Duplicate {
		n = 2
	}
	delays := make([]time.Duration, n)
	for i := range delays {
		if f.MaxDelay > 0 {
			delays[i] = time.Duration(net.rng.Int64N(int64(f.MaxDelay) + 1))
		}
	}
	return ep, delays
}

func (net *MemNetwork) linkUp(from, to uint64) bool {
	net.mu.Lock()
	defer net.mu.Unlock()
	return net.eps[to] != nil && !net.cut[[2]uint64{from, to}]
}

func (net *MemNetwork) snapshotFails() bool {
	net.mu.Lock()
	defer net.mu.Unlock()
	return net.faults.SnapshotFail > 0 && net.rng.Float64() < net.faults.SnapshotFail
}

// memEndpoint is one node's Transport on a MemNetwork.
type memEndpoint struct {
	net   *MemNetwork
	id    uint64
	stopc chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex // protects the fields below
	h      Handler
	links  map[uint64]*memLink
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
}

type memLink struct {
	q chan []byte
}

var _ Transport = (*memEndpoint)(nil)

func (ep *memEndpoint) Start(h Handler) error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return errors.New("raft: transport closed")
	}
	ep.h = h
	ep.ctx, ep.cancel = context.WithCancel(context.Background())
	ep.net.mu.Lock()
	ep.net.eps[ep.id] = ep
	ep.net.mu.Unlock()
	return nil
}

func (ep *memEndpoint) Send(msgs []*pb.Message) {
	for _, m := range msgs {
		to := m.GetTo()
		b, err := proto.Marshal(m)
		if err != nil {
			continue
		}
		ep.mu.Lock()
		if ep.closed || ep.h == nil {
			ep.mu.Unlock()
			return
		}
		l := ep.links[to]
		if l == nil {
			l = &memLink{q: make(chan []byte, memQueueLen)}
			ep.links[to] = l
			ep.wg.Add(1)
			go ep.runLink(to, l)
		}
		h := ep.h
		ep.mu.Unlock()
		select {
		case l.q <- b:
		default: // queue full: drop, as a congested connection would
			h.ReportUnreachable(to)
		}
	}
}

// runLink delivers the messages queued for one peer, in order unless the
// network delays them.
func (ep *memEndpoint) runLink(to uint64, l *memLink) {
	defer ep.wg.Done()
	for {
		select {
		case <-ep.stopc:
			return
		case b := <-l.q:
			dst, delays := ep.net.fate(ep.id, to)
			if dst == nil {
				ep.h.ReportUnreachable(to)
				continue
			}
			for _, d := range delays {
				if d == 0 {
					ep.deliver(dst, b)
					continue
				}
				ep.wg.Add(1)
				time.AfterFunc(d, func() {
					defer ep.wg.Done()
					select {
					case <-ep.stopc:
					default:
						ep.deliver(dst, b)
					}
				})
			}
		}
	}
}

func (ep *memEndpoint) deliver(dst *memEndpoint, b []byte) {
	m := &pb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return
	}
	dst.mu.Lock()
	h, ctx, closed := dst.h, dst.ctx, dst.closed
	dst.mu.Unlock()
	if closed || h == nil {
		return
	}
	_ = h.Step(ctx, m)
}

func (ep *memEndpoint) SendSnapshot(msg *pb.Message, body io.ReadCloser) {
	ep.mu.Lock()
	if ep.closed || ep.h == nil {
		ep.mu.Unlock()
		body.Close()
		return
	}
	h, ctx := ep.h, ep.ctx
	ep.wg.Add(1)
	ep.mu.Unlock()
	b, err := proto.Marshal(msg)
	go func() {
		defer ep.wg.Done()
		defer body.Close()
		to := msg.GetTo()
		status := raft.SnapshotFailure
		defer func() { h.ReportSnapshot(to, status) }()
		if err != nil || !ep.net.linkUp(ep.id, to) {
			return
		}
		ep.net.mu.Lock()
		dst := ep.net.eps[to]
		ep.net.mu.Unlock()
		dst.mu.Lock()
		dh, dctx, closed := dst.h, dst.ctx, dst.closed
		dst.mu.Unlock()
		if closed || dh == nil {
			return
		}
		m := &pb.Message{}
		if proto.Unmarshal(b, m) != nil {
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(dctx, cancel)
		defer stop()
		r := &memSnapReader{ep: ep, to: to, ctx: ctx, r: body, failAt: -1}
		if ep.net.snapshotFails() {
			r.failAt = 4096
		}
		if dh.ReceiveSnapshot(ctx, m, r) == nil {
			status = raft.SnapshotFinish
		}
	}()
}

// memSnapReader fails a snapshot stream when its link is cut, either
// endpoint closes, or the network decides to fail it.
type memSnapReader struct {
	ep     *memEndpoint
	to     uint64
	ctx    context.Context
	r      io.Reader
	n      int
	failAt int
}

var errLinkDown = errors.New("raft: link down")

func (r *memSnapReader) Read(p []byte) (int, error) {
	if r.ctx.Err() != nil {
		return 0, r.ctx.Err()
	}
	if !r.ep.net.linkUp(r.ep.id, r.to) || (r.failAt >= 0 && r.n >= r.failAt) {
		return 0, errLinkDown
	}
	n, err := r.r.Read(p)
	r.n += n
	return n, err
}

func (ep *memEndpoint) Close() error {
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return nil
	}
	ep.closed = true
	if ep.cancel != nil {
		ep.cancel()
	}
	ep.mu.Unlock()
	ep.net.mu.Lock()
	if ep.net.eps[ep.id] == ep {
		delete(ep.net.eps, ep.id)
	}
	ep.net.mu.Unlock()
	close(ep.stopc)
	ep.wg.Wait()
	return nil
}
