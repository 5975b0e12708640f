package raft

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// MembersPrefix is the storage prefix of the member records: what the
// cluster knows of each node besides its raft ID. They are ordinary
// replicated keys, in plaintext outside the barrier's data/ prefix (they
// hold names and addresses, nothing secret), so a sealed node that
// restarts can still find its peers.
const MembersPrefix = "raft/members/"

// Member describes a node of the cluster.
type Member struct {
	ID          uint64 `json:"id"`
	Name        string `json:"name"`         // Vault's node_id
	ClusterAddr string `json:"cluster_addr"` // host:port of its raft transport
	APIAddr     string `json:"api_addr"`     // e.g. https://host:8200
}

func memberKey(id uint64) string { return MembersPrefix + strconv.FormatUint(id, 10) }

// SetMember records (or updates) a member's description, replicated like
// any write.
func (n *Node) SetMember(ctx context.Context, m Member) error {
	if m.ID == 0 {
		return fmt.Errorf("raft: member ID 0")
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return n.Backend().Put(ctx, memberKey(m.ID), v)
}

// DeleteMember forgets a member's description (after RemoveNode).
func (n *Node) DeleteMember(ctx context.Context, id uint64) error {
	return n.Backend().Delete(ctx, memberKey(id))
}

// LocalMembers returns the member records as this node has applied them,
// sorted by ID, without a round to the leader: what a node reads at start
// to find its peers, possibly a little behind the cluster.
func (n *Node) LocalMembers() ([]Member, error) {
	lower := kvKey(MembersPrefix)
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Member
	for ok := it.First(); ok; ok = it.Next() {
		var m Member
		if err := json.Unmarshal(it.Value(), &m); err != nil {
			return nil, fmt.Errorf("raft: member record %s: %w", it.Key()[len(lower):], err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, it.Error()
}

// PromoteLearners makes voters of the learners whose logs are within
// maxLag entries of the leader's, and returns their IDs. It does nothing
// on a node that does not lead. The active node calls it periodically:
// a new node joins as a learner, catches up, then votes (autopilot).
func (n *Node) PromoteLearners(ctx context.Context, maxLag uint64) ([]uint64, error) {
	var ready []uint64
	if err := n.do(ctx, func() {
		st := n.rn.Status()
		if st.RaftState != raft.StateLeader {
			return
		}
		last := st.GetCommit()
		for id, pr := range st.Progress {
			if pr.IsLearner && pr.State == tracker.StateReplicate && pr.Match+maxLag >= last {
				ready = append(ready, id)
			}
		}
	}); err != nil {
		return nil, err
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i] < ready[j] })
	var promoted []uint64
	for _, id := range ready {
		if err := n.AddVoter(ctx, id); err != nil {
			return promoted, err
		}
		promoted = append(promoted, id)
	}
	return promoted, nil
}

// Progress returns, on the leader, each member's match index (how far its
// log is known to agree with the leader's) and the leader's last index; a
// node that does not lead returns nil.
func (n *Node) Progress(ctx context.Context) (match map[uint64]uint64, last uint64, err error) {
	err = n.do(ctx, func() {
		st := n.rn.Status()
		if st.RaftState != raft.StateLeader {
			return
		}
		match = map[uint64]uint64{}
		for id, pr := range st.Progress {
			match[id] = pr.Match
		}
		last = n.log.lastIndex()
	})
	return match, last, err
}
