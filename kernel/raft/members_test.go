package raft

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// applyLog records what OnApply told each node.
type applyLog struct {
	mu   sync.Mutex
	keys map[uint64][]string
	nils map[uint64]int // snapshot installs
}

func (l *applyLog) hook(id uint64) func([]string) {
	return func(keys []string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if keys == nil {
			l.nils[id]++
			return
		}
		l.keys[id] = append(l.keys[id], keys...)
	}
}

func (l *applyLog) saw(id uint64, key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.keys[id], key)
}

func (l *applyLog) snapshots(id uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nils[id]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMembersOnApplyAndPromotion: every node is told which keys each
// applied batch changed (and that anything may have changed when a
// snapshot replaced its state); member records replicate and are readable
// locally; a learner is promoted once caught up, never by a follower.
func TestMembersOnApplyAndPromotion(t *testing.T) {
	checkNoLeaks(t)
	log := &applyLog{keys: map[uint64][]string{}, nils: map[uint64]int{}}
	c := newCluster(t, 3, clusterOpts{seed: 21, tune: func(cfg *Config) {
		snapshotTune(cfg)
		cfg.OnApply = log.hook(cfg.ID)
	}})
	lead := c.leader()
	ctx := ctxT(t, 10*time.Second)
	m := Member{ID: 1, Name: "node-a", ClusterAddr: "10.0.0.1:8201", APIAddr: "https://10.0.0.1:8200"}
	if err := lead.SetMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2, 3} {
		eventually(t, fmt.Sprintf("node %d to be told of the member record", id), func() bool { return log.saw(id, memberKey(1)) })
	}
	f := c.follower()
	got, err := f.LocalMembers()
	if err != nil || len(got) != 1 || got[0] != m {
		t.Fatalf("follower's members: %+v, %v", got, err)
	}

	for i := range 40 { // past SnapshotEntries: the new node gets a snapshot
		mustPut(t, lead, fmt.Sprintf("k%02d", i), "v")
	}
	if p, err := f.PromoteLearners(ctx, 10); err != nil || len(p) != 0 {
		t.Fatalf("a follower promoted %v (%v)", p, err)
	}
	const newID = 4
	c.mu.Lock()
	c.fs[newID], c.dirs[newID] = vfs.NewCrashableMem(), "data"
	c.mu.Unlock()
	fresh := c.start(newID, nil)
	if err := lead.AddLearner(ctx, newID); err != nil {
		t.Fatal(err)
	}
	var promoted []uint64
	eventually(t, "the learner's promotion", func() bool {
		p, err := lead.PromoteLearners(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		promoted = append(promoted, p...)
		return len(promoted) > 0
	})
	if !slices.Equal(promoted, []uint64{newID}) {
		t.Fatalf("promoted %v", promoted)
	}
	eventually(t, "four voters on the new node", func() bool { return len(fresh.Status().Voters) == 4 })
	if log.snapshots(newID) == 0 {
		t.Error("the new node installed a snapshot without OnApply(nil)")
	}
	if got, err := fresh.LocalMembers(); err != nil || len(got) != 1 || got[0] != m {
		t.Fatalf("new node's members: %+v, %v", got, err)
	}
	match, last, err := lead.Progress(ctx)
	if err != nil || len(match) != 4 || last == 0 || match[lead.ID()] != last {
		t.Fatalf("leader's progress: %v, last %d, %v", match, last, err)
	}
	if match, _, err := f.Progress(ctx); err != nil || match != nil {
		t.Fatalf("a follower's progress: %v, %v", match, err)
	}
	if err := lead.DeleteMember(ctx, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the record's deletion on the new node", func() bool {
		got, err := fresh.LocalMembers()
		return err == nil && len(got) == 0
	})
}
