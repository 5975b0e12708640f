package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"go.etcd.io/raft/v3"
)

func TestSingleNode(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 1, clusterOpts{seed: 3})
	n := c.leader()
	mustPut(t, n, "a", "1")
	if got := mustGet(t, n, "a"); got != "1" {
		t.Fatalf("Get = %q", got)
	}
	// Restart keeps the data and the node leads again on its own.
	c.stop(1)
	n = c.restart(1)
	c.leader()
	if got := mustGet(t, n, "a"); got != "1" {
		t.Fatalf("after restart Get = %q", got)
	}
}

// TestFollowerReadsAreLinearizable writes on the leader and reads at once on
// each follower: a read that starts after a write was acknowledged sees it.
func TestFollowerReadsAreLinearizable(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 4})
	lead := c.leader()
	for i := range 30 {
		v := fmt.Sprint(i)
		mustPut(t, lead, "k", v)
		for _, n := range c.running() {
			if got := mustGet(t, n, "k"); got != v {
				t.Fatalf("node %d read %q right after write %q was acknowledged", n.ID(), got, v)
			}
		}
	}
	// Writes through a follower too.
	f := c.follower()
	mustPut(t, f, "via-follower", "x")
	if got := mustGet(t, c.leader(), "via-follower"); got != "x" {
		t.Fatalf("leader read %q", got)
	}
}

// TestProposalBatching checks that concurrent writes share Readies (and so
// fsyncs): group commit through raft.
func TestProposalBatching(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 1, clusterOpts{seed: 5})
	n := c.leader()
	before := n.stats.syncs.Load()
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := n.Backend().Put(context.Background(), fmt.Sprintf("w%d/%d", w, i), []byte("v")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := n.stats.syncs.Load() - before
	t.Logf("%d writes, %d synced log writes", writers*each, syncs)
	if syncs >= writers*each/2 {
		t.Errorf("%d synced log writes for %d concurrent writes: proposals are not batched", syncs, writers*each)
	}
}

// TestLeaderCrashNoAckedWriteLost crashes the leader (unsynced data dropped)
// while writes flow, then restarts it: every acknowledged write is still
// there, on every node.
func TestLeaderCrashNoAckedWriteLost(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 6})
	acked := map[string]bool{}
	var mu sync.Mutex
	write := func(n *Node, prefix string, count int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range count {
					k := fmt.Sprintf("%s/%d/%d", prefix, w, i)
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					err := n.Backend().Put(ctx, k, []byte(k))
					cancel()
					if err == nil {
						mu.Lock()
						acked[k] = true
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}
	lead := c.leader()
	done := make(chan struct{})
	go func() { write(lead, "before", 25); close(done) }()
	time.Sleep(30 * time.Millisecond)
	c.crash(lead.ID(), 0)
	<-done
	lead2 := c.leader()
	write(lead2, "after", 10)
	c.restart(lead.ID())
	c.waitApplied(lead2.Status().Commit)
	if len(acked) < 40 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	for _, n := range c.running() {
		for k := range acked {
			if got := mustGet(t, n, k); got != k {
				t.Fatalf("node %d lost acknowledged write %s (got %q)", n.ID(), k, got)
			}
		}
	}
}

// TestCrashNoAckedWriteLost is the proof that applying without sync is
// safe: a single node is crashed repeatedly mid-write, its filesystem cloned
// with none or some of its unsynced data, and every acknowledged write must
// survive each restart.
func TestCrashNoAckedWriteLost(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 1, clusterOpts{seed: 7, tune: func(cfg *Config) {
		cfg.SnapshotEntries = 40 // compaction (synced) interleaves with NoSync applies
		cfg.KeepEntries = 10
	}})
	acked := map[string]string{}
	maybe := map[string][]string{} // writes after the last ack that failed: outcome unknown
	var mu sync.Mutex
	for round := range 6 {
		n := c.leader()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("k%d", (w*7+i)%23) // overwrites: the latest ack must win
					v := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					mu.Lock() // one writer per key at a time, so "latest ack" is well defined
					err := n.Backend().Put(ctx, k, []byte(v))
					if err == nil {
						acked[k] = v
						maybe[k] = nil
					} else {
						maybe[k] = append(maybe[k], v)
					}
					mu.Unlock()
					cancel()
					if err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(20+c.rng.IntN(40)) * time.Millisecond)
		c.crash(1, []int{0, 50, 100}[round%3])
		close(stop)
		wg.Wait()
		n = c.restart(1)
		c.leader()
		for k, v := range acked {
			got := mustGet(t, n, k)
			if got != v && !slices.Contains(maybe[k], got) {
				t.Fatalf("round %d: acknowledged %s=%s lost after crash (got %q)", round, k, v, got)
			}
			acked[k], maybe[k] = got, nil
		}
	}
	if len(acked) == 0 {
		t.Fatal("no write acknowledged")
	}
}

// TestPartitionAndHeal cuts the leader off: the minority cannot write or
// read (a clear, retryable error within the bound), the majority elects a
// new leader and goes on; after healing the old leader catches up.
func TestPartitionAndHeal(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 8})
	lead := c.leader()
	mustPut(t, lead, "k", "before")
	var others []uint64
	for _, id := range []uint64{1, 2, 3} {
		if id != lead.ID() {
			others = append(others, id)
		}
	}
	c.net.Partition([]uint64{lead.ID()}, others)

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := lead.Backend().Put(ctx, "k", []byte("minority"))
	cancel()
	if !IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write on the cut-off leader: err = %v, want retryable with deadline", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = lead.Backend().Get(ctx, "k")
	cancel()
	if !IsRetryable(err) {
		t.Fatalf("read on the cut-off leader: err = %v, want retryable", err)
	}

	var maj *Node
	deadline := time.Now().Add(10 * time.Second)
	for maj == nil && time.Now().Before(deadline) {
		for _, id := range others {
			if s := c.node(id).Status(); s.Role == raft.StateLeader {
				maj = c.node(id)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if maj == nil {
		t.Fatal("majority elected no leader")
	}
	mustPut(t, maj, "k", "majority")
	c.net.Heal()
	c.waitApplied(maj.Status().Commit)
	for _, n := range c.running() {
		if got := mustGet(t, n, "k"); got != "majority" {
			t.Fatalf("node %d after heal: %q", n.ID(), got)
		}
	}
	if s := lead.Status(); s.Role == raft.StateLeader && s.Term < maj.Status().Term {
		t.Fatalf("old leader still leads in term %d", s.Term)
	}
}

func snapshotTune(cfg *Config) {
	cfg.SnapshotEntries = 20
	cfg.KeepEntries = 5
}

// TestLaggingNodeCatchesUpBySnapshot isolates a follower while the log is
// compacted past it; after healing it is sent a snapshot.
func TestLaggingNodeCatchesUpBySnapshot(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 9, tune: snapshotTune})
	lead := c.leader()
	lag := c.follower()
	c.net.Isolate(lag.ID(), []uint64{1, 2, 3})
	for i := range 60 {
		mustPut(t, lead, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	if tr := lead.log.truncState(); tr.index < 30 {
		t.Fatalf("leader log not compacted: truncated at %d", tr.index)
	}
	c.net.Heal()
	c.waitApplied(lead.Status().Commit)
	if lag.stats.snapshotsInstalled.Load() == 0 {
		t.Fatal("lagging node caught up without a snapshot")
	}
	for i := range 60 {
		if got := mustGet(t, lag, fmt.Sprintf("k%02d", i)); got != fmt.Sprint(i) {
			t.Fatalf("k%02d = %q", i, got)
		}
	}
	// The snapshot survives a restart of the node that installed it.
	c.stop(lag.ID())
	lag = c.restart(lag.ID())
	if got := mustGet(t, lag, "k59"); got != "59" {
		t.Fatalf("after restart k59 = %q", got)
	}
}

// TestWipedNodeRejoins replaces a node whose disk was lost: the old ID is
// removed, a new ID joins as a learner on an empty disk, catches up by
// snapshot, and is promoted. The old ID cannot come back.
func TestWipedNodeRejoins(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 10, tune: snapshotTune})
	lead := c.leader()
	for i := range 50 {
		mustPut(t, lead, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	victim := c.follower().ID()
	c.crash(victim, 0)
	ctx := ctxT(t, 10*time.Second)
	if err := lead.RemoveNode(ctx, victim); err != nil {
		t.Fatalf("RemoveNode: %v", err)
	}
	const newID = 4
	c.mu.Lock()
	c.fs[newID], c.dirs[newID] = vfs.NewCrashableMem(), "data"
	c.mu.Unlock()
	fresh := c.start(newID, nil)
	if err := lead.AddLearner(ctx, newID); err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	c.waitApplied(lead.Status().Commit)
	if fresh.stats.snapshotsInstalled.Load() == 0 {
		t.Fatal("new node caught up without a snapshot")
	}
	if err := lead.AddVoter(ctx, newID); err != nil {
		t.Fatalf("promote: %v", err)
	}
	c.waitApplied(lead.Status().Applied) // AddVoter returns once applied on the leader
	if s := fresh.Status(); len(s.Voters) != 3 {
		t.Fatalf("voters after promotion: %v", s.Voters)
	}
	mustPut(t, lead, "after", "join")
	for _, k := range []string{"k00", "k49", "after"} {
		if got := mustGet(t, fresh, k); got == "" {
			t.Fatalf("new node misses %s", k)
		}
	}
	if err := lead.AddLearner(ctx, victim); !errors.Is(err, ErrIDReused) {
		t.Fatalf("re-adding removed ID %d: err = %v, want ErrIDReused", victim, err)
	}
}

// TestRemovedNode removes a running node: it stops serving reads and
// writes, and its vote no longer counts.
func TestRemovedNode(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 11})
	lead := c.leader()
	mustPut(t, lead, "k", "v")
	gone := c.follower()
	if err := lead.RemoveNode(ctxT(t, 10*time.Second), gone.ID()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !gone.Status().Removed {
		if time.Now().After(deadline) {
			t.Fatal("removed node never learned of its removal")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := gone.Backend().Get(context.Background(), "k"); !errors.Is(err, ErrRemoved) {
		t.Fatalf("read on removed node: %v, want ErrRemoved", err)
	}
	if err := gone.Backend().Put(context.Background(), "k", nil); !errors.Is(err, ErrRemoved) {
		t.Fatalf("write on removed node: %v, want ErrRemoved", err)
	}
	// Two voters left. Stop the other one: the leader alone, even with the
	// removed node alive and willing, must not keep or win leadership.
	var other uint64
	for _, id := range []uint64{1, 2, 3} {
		if id != lead.ID() && id != gone.ID() {
			other = id
		}
	}
	c.stop(other)
	_ = lead.Campaign(context.Background())
	time.Sleep(500 * time.Millisecond) // > 2 election timeouts: CheckQuorum steps it down
	if s := lead.Status(); s.Role == raft.StateLeader {
		t.Fatalf("node %d leads without a quorum (removed node %d voted?)", lead.ID(), gone.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := lead.Backend().Put(ctx, "k", []byte("x")); err == nil {
		t.Fatal("write succeeded without a quorum")
	}
}

// TestManualTick drives a cluster by hand: no election happens without
// ticks, and one happens after enough of them.
func TestManualTick(t *testing.T) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: 12, tune: func(cfg *Config) { cfg.ManualTick = true }})
	time.Sleep(50 * time.Millisecond)
	for _, n := range c.running() {
		if s := n.Status(); s.Leader != 0 {
			t.Fatalf("leader %d elected without ticks", s.Leader)
		}
	}
	var elected atomic.Bool
	for range 200 {
		for _, n := range c.running() {
			n.Tick()
		}
		for _, n := range c.running() {
			if n.Status().Role == raft.StateLeader {
				elected.Store(true)
			}
		}
		if elected.Load() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !elected.Load() {
		t.Fatal("no leader after 200 ticks")
	}
}
