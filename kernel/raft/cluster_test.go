package raft

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"go.etcd.io/raft/v3"
)

// cluster is an in-process cluster on a MemNetwork, each node on its own
// crashable in-memory filesystem.
type cluster struct {
	t     testing.TB
	net   *MemNetwork
	mu    sync.Mutex // protects the maps below
	fs    map[uint64]vfs.FS
	dirs  map[uint64]string // on disk (onDisk); "data" on the in-memory FS
	nodes map[uint64]*Node
	boot  []uint64
	tune  func(*Config)
	rng   *rand.Rand
}

type clusterOpts struct {
	seed   uint64
	tune   func(*Config)
	onDisk bool // real filesystem in a temporary directory (benchmarks)
}

func newCluster(t testing.TB, size int, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{
		t:     t,
		net:   NewMemNetwork(o.seed),
		fs:    map[uint64]vfs.FS{},
		dirs:  map[uint64]string{},
		nodes: map[uint64]*Node{},
		tune:  o.tune,
		rng:   rand.New(rand.NewPCG(o.seed, 7)),
	}
	for i := 1; i <= size; i++ {
		c.boot = append(c.boot, uint64(i))
	}
	for _, id := range c.boot {
		if o.onDisk {
			c.fs[id], c.dirs[id] = vfs.Default, t.TempDir()
		} else {
			c.fs[id], c.dirs[id] = vfs.NewCrashableMem(), "data"
		}
		c.start(id, c.boot)
	}
	t.Cleanup(c.closeAll)
	return c
}

func (c *cluster) config(id uint64, boot []uint64) Config {
	cfg := Config{
		ID:             id,
		Dir:            c.dirs[id],
		FS:             c.fs[id],
		Transport:      c.net.Transport(id),
		Bootstrap:      boot,
		TickInterval:   10 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
		Logger:         testLogger{c.t},
		PebbleLogger:   quietPebbleLogger{},
		CacheSize:      1 << 20,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

func (c *cluster) start(id uint64, boot []uint64) *Node {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := Open(c.config(id, boot))
	if err != nil {
		c.t.Fatalf("open node %d: %v", id, err)
	}
	c.nodes[id] = n
	return n
}

func (c *cluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}

// crash stops node id as a power cut would: its raft goroutine halts, and
// its filesystem is replaced by a clone that keeps only synced data (and,
// with unsyncedPct > 0, a random share of the rest).
func (c *cluster) crash(id uint64, unsyncedPct int) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	n.halt()
	cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct}
	if unsyncedPct > 0 {
		cfg.RNG = rand.New(rand.NewPCG(c.rng.Uint64(), 1))
	}
	clone := c.fs[id].(*vfs.MemFS).CrashClone(cfg)
	_ = n.Close()
	c.mu.Lock()
	c.fs[id] = clone
	c.mu.Unlock()
}

// stop closes node id cleanly (its filesystem is kept as is).
func (c *cluster) stop(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("close node %d: %v", id, err)
		}
	}
}

func (c *cluster) restart(id uint64) *Node { return c.start(id, c.boot) }

func (c *cluster) closeAll() {
	for _, n := range c.running() {
		c.stop(n.ID())
	}
}

// leader waits for a leader that every running node agrees on.
func (c *cluster) leader() *Node {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		agree := true
		for _, n := range c.running() {
			s := n.Status()
			if s.Removed {
				continue
			}
			if s.Leader == 0 || (lead != 0 && s.Leader != lead) {
				agree = false
				break
			}
			lead = s.Leader
		}
		if agree && lead != 0 {
			if n := c.node(lead); n != nil && n.Status().Role == raft.StateLeader {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no leader agreed within 10s")
	return nil
}

func (c *cluster) follower() *Node {
	lead := c.leader()
	for _, n := range c.running() {
		if n != lead && !n.Status().Removed {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// waitApplied waits until every running node has applied index.
func (c *cluster) waitApplied(index uint64) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.running() {
		for n.Status().Applied < index {
			if time.Now().After(deadline) {
				c.t.Fatalf("node %d applied %d, want %d", n.ID(), n.Status().Applied, index)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

type testLogger struct{ t testing.TB }

func (testLogger) Debug(...any)                {}
func (testLogger) Debugf(string, ...any)       {}
func (testLogger) Info(...any)                 {}
func (testLogger) Infof(string, ...any)        {}
func (testLogger) Warning(...any)              {}
func (testLogger) Warningf(string, ...any)     {}
func (l testLogger) Error(v ...any)            { l.t.Log(append([]any{"raft error:"}, v...)...) }
func (l testLogger) Errorf(f string, v ...any) { l.t.Logf("raft error: "+f, v...) }
func (l testLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (l testLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (l testLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (l testLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, n *Node, key, value string) {
	t.Helper()
	if err := n.Backend().Put(ctxT(t, 10*time.Second), key, []byte(value)); err != nil {
		t.Fatalf("node %d: Put(%s): %v", n.ID(), key, err)
	}
}

func mustGet(t testing.TB, n *Node, key string) string {
	t.Helper()
	v, err := n.Backend().Get(ctxT(t, 10*time.Second), key)
	if err != nil {
		t.Fatalf("node %d: Get(%s): %v", n.ID(), key, err)
	}
	return string(v)
}

// checkNoLeaks fails t if goroutines started during the test outlive it.
func checkNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			now := runtime.NumGoroutine()
			if now <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d before, %d after the test\n%s", before, now, leakReport(buf))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func leakReport(stacks []byte) string {
	var keep []string
	for _, g := range strings.Split(string(stacks), "\n\n") {
		if strings.Contains(g, "kernel/raft") || strings.Contains(g, "pebble") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
