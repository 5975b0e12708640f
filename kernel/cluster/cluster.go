// Package cluster is a server's membership of its raft cluster: the raft
// node behind storage "raft", its name, its certificates and its peers,
// reported to the kernel as a kernel.Cluster.
//
// It keeps the cluster's secret (the CA's key) only in the barrier, under
// core/raft/, handed to it by the kernel when the node becomes active; a
// node's own certificate and key live on its disk (<path>/tls/, 0600), so
// that a restarted node talks raft before it is unsealed. Peers' addresses
// come from the replicated member records (raft.MembersPrefix), so every
// node follows membership changes without configuration.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/raft"
)

// Config describes the local node.
type Config struct {
	// Dir is the raft directory (storage "raft" path).
	Dir string
	// Name is node_id; empty means the name kept in <Dir>/node-id, or a
	// new UUID written there.
	Name string
	// ClusterAddr is the address peers reach this node's raft transport at
	// (host:port); ListenAddr the one it binds (default ClusterAddr).
	// Empty: the node has no cluster port and stays a one-node cluster.
	ClusterAddr, ListenAddr string
	// APIAddr is how clients and standbys reach this node's API.
	APIAddr string
	Logger  *slog.Logger
}

// Node is a server's raft node and its place in the cluster. It
// implements kernel.Cluster.
type Node struct {
	cfg  Config
	raft *raft.Node
	tr   *raft.SwitchTransport
	log  *slog.Logger

	peersc chan struct{} // a member record changed: resync peers
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // protects the fields below
	apiAddr string
	tls     *raft.TLSTransport // nil until installed
}

// Open opens the node's raft storage. A node whose directory holds no
// state founds a one-voter cluster of itself, as Vault's first node does.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = cfg.ClusterAddr
	}
	name, err := nodeName(cfg.Dir, cfg.Name)
	if err != nil {
		return nil, err
	}
	cfg.Name = name
	n := &Node{cfg: cfg, tr: &raft.SwitchTransport{}, log: cfg.Logger, peersc: make(chan struct{}, 1), apiAddr: cfg.APIAddr}
	rn, err := raft.Open(raft.Config{Dir: cfg.Dir, Transport: n.tr, BootstrapSelf: true, OnApply: n.applied})
	if err != nil {
		return nil, err
	}
	n.raft = rn
	if err := n.loadTLS(); err != nil {
		rn.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.followPeers(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.autopilot(ctx)
	}()
	return n, nil
}

// Raft returns the raft node (its Backend is the server's storage).
func (n *Node) Raft() *raft.Node { return n.raft }

// Name returns this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// SetAPIAddr sets the API address once the listener is known.
func (n *Node) SetAPIAddr(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.apiAddr = addr
}

// Close stops the node.
func (n *Node) Close() error {
	n.stop()
	n.wg.Wait()
	return n.raft.Close()
}

// applied is raft's OnApply: a member record changed (or a snapshot
// replaced everything): the peers are resynchronised, off the raft loop.
func (n *Node) applied(keys []string) {
	changed := keys == nil
	for _, k := range keys {
		if strings.HasPrefix(k, raft.MembersPrefix) {
			changed = true
			break
		}
	}
	if changed {
		select {
		case n.peersc <- struct{}{}:
		default:
		}
	}
}

// followPeers keeps the transport's peers equal to the member records.
func (n *Node) followPeers(ctx context.Context) {
	for {
		n.syncPeers()
		select {
		case <-ctx.Done():
			return
		case <-n.peersc:
		}
	}
}

func (n *Node) syncPeers() {
	n.mu.Lock()
	tr := n.tls
	n.mu.Unlock()
	if tr == nil {
		return
	}
	members, err := n.raft.LocalMembers()
	if err != nil {
		n.log.Warn("cluster: reading member records", "error", err)
		return
	}
	want := map[uint64]bool{}
	for _, m := range members {
		if m.ID == n.raft.ID() || m.ClusterAddr == "" {
			continue
		}
		want[m.ID] = true
		if tr.Peers()[m.ID] != m.ClusterAddr {
			if err := tr.SetPeer(m.ID, m.ClusterAddr); err != nil {
				n.log.Warn("cluster: peer address refused", "node", m.Name, "address", m.ClusterAddr, "error", err)
			}
		}
	}
	for id := range tr.Peers() {
		if !want[id] {
			tr.RemovePeer(id)
		}
	}
}

// autopilotInterval is how often the leader promotes caught-up learners.
const autopilotInterval = time.Second

// autopilotMaxLag: a learner this close to the leader's commit index votes.
const autopilotMaxLag = 1000

func (n *Node) autopilot(ctx context.Context) {
	t := time.NewTicker(autopilotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids, err := n.raft.PromoteLearners(ctx, autopilotMaxLag)
		for _, id := range ids {
			n.log.Info("cluster: learner caught up, now a voter", "raft_id", id)
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("cluster: promoting learners", "error", err)
		}
	}
}

// ClusterStatus implements kernel.Cluster.
func (n *Node) ClusterStatus() kernel.ClusterStatus {
	st := n.raft.Status()
	members := map[uint64]raft.Member{}
	if ms, err := n.raft.LocalMembers(); err == nil {
		for _, m := range ms {
			members[m.ID] = m
		}
	}
	n.mu.Lock()
	self := raft.Member{ID: st.ID, Name: n.cfg.Name, ClusterAddr: n.cfg.ClusterAddr, APIAddr: n.apiAddr}
	n.mu.Unlock()
	members[st.ID] = self
	name := func(id uint64) string {
		if m, ok := members[id]; ok && m.Name != "" {
			return m.Name
		}
		return strconv.FormatUint(id, 10)
	}
	out := kernel.ClusterStatus{NodeID: self.Name, CommitIndex: st.Commit, AppliedIndex: st.Applied}
	if st.Leader != 0 {
		out.LeaderID = name(st.Leader)
	}
	add := func(id uint64, voter bool) {
		m := members[id]
		out.Servers = append(out.Servers, kernel.ClusterServer{NodeID: name(id), APIAddress: m.APIAddr, ClusterAddress: m.ClusterAddr, Voter: voter})
	}
	for _, id := range st.Voters {
		add(id, true)
	}
	for _, id := range st.Learners {
		add(id, false)
	}
	return out
}

// StepDown implements kernel.Cluster.
func (n *Node) StepDown(ctx context.Context) error { return n.raft.StepDown(ctx) }

// nodeName is node_id, or else the name kept in <dir>/node-id, generated
// (a UUID) at first start, as Vault does.
func nodeName(dir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	file := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
		return "", fmt.Errorf("%s is empty: set node_id in the storage stanza or remove the file", file)
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name := uuid.NewString()
	if err := os.WriteFile(file, []byte(name+"\n"), 0o600); err != nil {
		return "", err
	}
	return name, nil
}

// RemovePeer implements kernel.Cluster: the named member leaves the
// configuration (its raft ID can never come back) and its record goes.
func (n *Node) RemovePeer(ctx context.Context, name string) error {
	members, err := n.raft.LocalMembers()
	if err != nil {
		return err
	}
	var id uint64
	for _, m := range members {
		if m.Name == name {
			id = m.ID
		}
	}
	if id == 0 {
		// A member without a record is named by its raft ID.
		if v, err := strconv.ParseUint(name, 10, 64); err == nil {
			id = v
		}
	}
	if id == 0 {
		return fmt.Errorf("no member named %q", name)
	}
	if id == n.raft.ID() {
		return errors.New("a node cannot remove itself")
	}
	if err := n.raft.RemoveNode(ctx, id); err != nil {
		return err
	}
	return n.raft.DeleteMember(ctx, id)
}

// Autopilot implements kernel.Cluster. A server is healthy when its log
// is within autopilotMaxLag entries of the leader's.
func (n *Node) Autopilot(ctx context.Context) (kernel.AutopilotState, error) {
	st := n.ClusterStatus()
	rs := n.raft.Status()
	match, last, err := n.raft.Progress(ctx)
	if err != nil {
		return kernel.AutopilotState{}, err
	}
	if match == nil {
		return kernel.AutopilotState{}, errors.New("this node does not lead: ask the active node")
	}
	ids := map[string]uint64{}
	for _, id := range append(append([]uint64{}, rs.Voters...), rs.Learners...) {
		ids[nameOf(st, id, n)] = id
	}
	out := kernel.AutopilotState{Healthy: true, Leader: st.LeaderID}
	healthyVoters := 0
	for _, srv := range st.Servers {
		id := ids[srv.NodeID]
		m := match[id]
		lag := uint64(0)
		if last > m {
			lag = last - m
		}
		a := kernel.AutopilotServer{NodeID: srv.NodeID, Address: srv.ClusterAddress, LastIndex: m, Lag: lag,
			Healthy: lag <= autopilotMaxLag, Status: "voter"}
		switch {
		case srv.NodeID == st.LeaderID:
			a.Status = "leader"
		case !srv.Voter:
			a.Status = "non-voter"
		}
		if a.Healthy && a.Status != "non-voter" {
			healthyVoters++
		}
		out.Healthy = out.Healthy && a.Healthy
		out.Servers = append(out.Servers, a)
	}
	if q := len(rs.Voters)/2 + 1; healthyVoters > q-1 {
		out.FailureTolerance = healthyVoters - q
	}
	return out, nil
}

// nameOf is the name ClusterStatus gives raft node id.
func nameOf(st kernel.ClusterStatus, id uint64, n *Node) string {
	if id == n.raft.ID() {
		return st.NodeID
	}
	if ms, err := n.raft.LocalMembers(); err == nil {
		for _, m := range ms {
			if m.ID == id && m.Name != "" {
				return m.Name
			}
		}
	}
	return strconv.FormatUint(id, 10)
}
