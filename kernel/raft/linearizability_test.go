package raft

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput and kvOutput describe one operation of a linearizability history.
type kvInput struct {
	put   bool
	key   string
	value string
}

type kvOutput struct {
	value   string
	unknown bool // a write whose outcome the client never learned
}

// kvModel is a register per key; histories are checked key by key.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(kvInput), output.(kvOutput)
		if in.put {
			return true, in.value
		}
		return out.value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		if in.put {
			if out.unknown {
				return fmt.Sprintf("put(%s, %s) ?", in.key, in.value)
			}
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
	},
}

type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// runLinearizability runs clients on every node of a three-node cluster
// while a seeded nemesis crashes and restarts nodes, partitions and heals
// the network and injects message faults; then checks the history.
func runLinearizability(t *testing.T, seed uint64, dur time.Duration) {
	checkNoLeaks(t)
	c := newCluster(t, 3, clusterOpts{seed: seed, tune: func(cfg *Config) {
		cfg.RequestTimeout = time.Second
		cfg.SnapshotEntries = 50 // crashed nodes often come back by snapshot
		cfg.KeepEntries = 10
	}})
	c.leader()
	ids := []uint64{1, 2, 3}
	h := &history{start: time.Now()}
	stop := make(chan struct{})
	var clients sync.WaitGroup
	const clientsPerNode, keys = 2, 4
	for ci := range len(ids) * clientsPerNode {
		nodeID := ids[ci%len(ids)]
		rng := rand.New(rand.NewPCG(seed, uint64(ci)))
		clients.Add(1)
		go func() {
			defer clients.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				n := c.node(nodeID)
				if n == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				in := kvInput{key: fmt.Sprintf("k%d", rng.IntN(keys))}
				if rng.IntN(2) == 0 {
					in.put, in.value = true, fmt.Sprintf("c%d-%d", ci, seq)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
				call := h.now()
				var out kvOutput
				var err error
				if in.put {
					err = n.Backend().Put(ctx, in.key, []byte(in.value))
				} else {
					var v []byte
					v, err = n.Backend().Get(ctx, in.key)
					out.value = string(v)
				}
				ret := h.now()
				cancel()
				switch {
				case err == nil:
					h.add(porcupine.Operation{ClientId: ci, Input: in, Call: call, Output: out, Return: ret})
				case in.put:
					// Unknown outcome: it may take effect at any time later.
					h.add(porcupine.Operation{ClientId: ci, Input: in, Call: call,
						Output: kvOutput{unknown: true}, Return: math.MaxInt64 / 2})
				}
				// A failed read tells nothing and is left out.
				if err != nil {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				}
			}
		}()
	}

	// The nemesis.
	rng := rand.New(rand.NewPCG(seed, 99))
	deadline := time.Now().Add(dur)
	crashed := map[uint64]bool{}
	events := 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		events++
		switch rng.IntN(5) {
		case 0: // crash one node (never two: keep a quorum able to recover)
			if len(crashed) == 0 {
				id := ids[rng.IntN(len(ids))]
				c.crash(id, []int{0, 50}[rng.IntN(2)])
				crashed[id] = true
			}
		case 1: // restart crashed nodes
			for id := range crashed {
				c.restart(id)
				delete(crashed, id)
			}
		case 2:
			a := ids[rng.IntN(len(ids))]
			var rest []uint64
			for _, id := range ids {
				if id != a {
					rest = append(rest, id)
				}
			}
			c.net.Partition([]uint64{a}, rest)
		case 3:
			c.net.Heal()
		case 4:
			c.net.SetFaults(Faults{
				Drop:      rng.Float64() * 0.1,
				Duplicate: rng.Float64() * 0.1,
				MaxDelay:  time.Duration(rng.IntN(5)) * time.Millisecond,
			})
		}
	}
	close(stop)
	clients.Wait()
	c.net.Heal()
	c.net.SetFaults(Faults{})
	for id := range crashed {
		c.restart(id)
	}

	// Final reads on every node, after every write above has ended.
	for _, n := range c.running() {
		for k := range keys {
			in := kvInput{key: fmt.Sprintf("k%d", k)}
			call := h.now()
			v := mustGet(t, n, in.key)
			h.add(porcupine.Operation{ClientId: 100, Input: in, Call: call, Output: kvOutput{value: v}, Return: h.now()})
		}
	}

	ok, unknown := 0, 0
	for _, op := range h.ops {
		if op.Output.(kvOutput).unknown {
			unknown++
		} else {
			ok++
		}
	}
	t.Logf("seed %d: %d nemesis events, %d operations completed, %d writes with unknown outcome", seed, events, ok, unknown)
	if ok < 50 {
		t.Fatalf("only %d operations completed", ok)
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, 60*time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("ward-raft-porcupine-%d.html", seed))
		_ = porcupine.VisualizePath(kvModel, info, path)
		t.Fatalf("history is NOT linearizable (seed %d); visualization in %s", seed, path)
	default:
		t.Fatalf("linearizability check timed out (seed %d)", seed)
	}
}

// TestLinearizability checks a concurrent KV history under a nemesis for a
// few seeds. Longer runs: TestLinearizabilitySoak.
func TestLinearizability(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runLinearizability(t, seed, 3*time.Second) })
	}
}

// TestLinearizabilitySoak runs more seeds for longer; skipped with -short
// and unless WARD_RAFT_SOAK is set (make soak).
func TestLinearizabilitySoak(t *testing.T) {
	if testing.Short() || os.Getenv("WARD_RAFT_SOAK") == "" {
		t.Skip("set WARD_RAFT_SOAK=1 to run")
	}
	for seed := uint64(100); seed < 120; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runLinearizability(t, seed, 15*time.Second) })
	}
}
