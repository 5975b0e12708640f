package raft

import (
	"context"
	"errors"
	"io"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Transport carries raft messages between the nodes of one cluster. The node
// owns the Transport it is given: it calls Start once, then Send and
// SendSnapshot from its raft goroutine, and Close when it closes.
//
// A Transport must never block the raft goroutine: Send only queues, in a
// bounded queue per peer, so a slow or dead peer cannot delay heartbeats to
// the others. Snapshots travel on their own path, so a large one does not
// hold up ordinary messages behind it (no head-of-line blocking).
type Transport interface {
	// Start begins delivering messages addressed to this node to h.
	Start(h Handler) error
	// Send queues msgs for delivery and returns at once. A message that
	// cannot be queued or delivered is dropped (raft retransmits) and its
	// peer reported with Handler.ReportUnreachable.
	Send(msgs []*pb.Message)
	// SendSnapshot streams a snapshot to msg.To in the background: msg is the
	// MsgSnap (its metadata), body the state stream. The transport closes
	// body when done and reports the outcome with Handler.ReportSnapshot.
	SendSnapshot(msg *pb.Message, body io.ReadCloser)
	// Close stops every goroutine the transport started, closing the bodies
	// of snapshots still in flight, and waits for them. Afterwards it never
	// calls the Handler again.
	Close() error
}

// Handler is what a Transport delivers to: the local node.
type Handler interface {
	// Step hands an inbound message to the node. It does not block; a node
	// that is too busy drops the message (raft retransmits).
	Step(ctx context.Context, m *pb.Message) error
	// ReceiveSnapshot reads an inbound snapshot stream to its end, stores it
	// and hands m to raft. An error means the snapshot was not accepted.
	ReceiveSnapshot(ctx context.Context, m *pb.Message, body io.Reader) error
	// ReportUnreachable tells raft a message to peer id was lost.
	ReportUnreachable(id uint64)
	// ReportSnapshot tells raft how sending a snapshot to peer id ended.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// LocalTransport is the Transport of a node that has no peers: a one-voter
// cluster (a dev server, or a first node before anyone joins). Raft never
// addresses a message to anyone then; if it did, the message would be
// dropped and its peer reported unreachable, as by any Transport.
func LocalTransport() Transport { return &localTransport{} }

type localTransport struct{ h Handler }

func (t *localTransport) Start(h Handler) error { t.h = h; return nil }

func (t *localTransport) Send(msgs []*pb.Message) {
	for _, m := range msgs {
		t.h.ReportUnreachable(m.GetTo())
	}
}

func (t *localTransport) SendSnapshot(msg *pb.Message, body io.ReadCloser) {
	body.Close()
	t.h.ReportSnapshot(msg.GetTo(), raft.SnapshotFailure)
}

func (t *localTransport) Close() error { return nil }

// SwitchTransport is the Transport of a node whose real transport comes
// later: a server's raft node opens before the cluster's certificates
// exist (they are made when the node first becomes active, or when it
// joins). Until Install it behaves as LocalTransport; afterwards every
// call goes to the installed Transport.
type SwitchTransport struct {
	mu     sync.RWMutex // protects the fields below
	h      Handler
	inner  Transport
	closed bool
}

// Start implements Transport.
func (t *SwitchTransport) Start(h Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.h = h
	if t.inner != nil {
		return t.inner.Start(h)
	}
	return nil
}

// Install makes inner carry the node's messages from now on, starting it
// if the node has started. It can be done once.
func (t *SwitchTransport) Install(inner Transport) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return errors.New("raft: transport closed")
	case t.inner != nil:
		return errors.New("raft: a transport is already installed")
	}
	if t.h != nil {
		if err := inner.Start(t.h); err != nil {
			return err
		}
	}
	t.inner = inner
	return nil
}

// Installed returns the installed Transport, nil before Install.
func (t *SwitchTransport) Installed() Transport {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.inner
}

// Send implements Transport.
func (t *SwitchTransport) Send(msgs []*pb.Message) {
	t.mu.RLock()
	inner, h := t.inner, t.h
	t.mu.RUnlock()
	if inner != nil {
		inner.Send(msgs)
		return
	}
	for _, m := range msgs {
		h.ReportUnreachable(m.GetTo())
	}
}

// SendSnapshot implements Transport.
func (t *SwitchTransport) SendSnapshot(msg *pb.Message, body io.ReadCloser) {
	t.mu.RLock()
	inner, h := t.inner, t.h
	t.mu.RUnlock()
	if inner != nil {
		inner.SendSnapshot(msg, body)
		return
	}
	body.Close()
	h.ReportSnapshot(msg.GetTo(), raft.SnapshotFailure)
}

// Close implements Transport.
func (t *SwitchTransport) Close() error {
	t.mu.Lock()
	inner := t.inner
	t.closed = true
	t.mu.Unlock()
	if inner != nil {
		return inner.Close()
	}
	return nil
}
