package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// KV declares concurrent writes (its locks are sdk/keylock locks, which
// take the mount's keyed locks in WASM), so the pool runs its writes on
// every instance at once. The hammer: writers on several instances write
// one hot key and keys of their own, with check-and-set on some writes,
// while readers read; every write must get a distinct version, versions
// must be contiguous, the last one readable, and no write lost.
func TestKVConcurrentWritesHammer(t *testing.T) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	m, err := testEngine.Mount(ctx, module(t, "kv"), MountConfig{ID: "kv", Path: "secret/", PluginName: "kv",
		Config: map[string]string{"version": "2"}, Storage: st, Limits: Limits{PoolSize: 4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	if !m.Info().ConcurrentWrites || !m.concurrentWrites {
		t.Fatalf("KV does not declare concurrent writes: %+v", m.Info())
	}
	// max_versions above the number of writes: every version stays listed.
	if _, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "config",
		Data: map[string]any{"max_versions": 1000}}); err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 12, 12
	var (
		mu       sync.Mutex // protects versions
		versions = map[string]map[int]bool{}
		wg       sync.WaitGroup
	)
	record := func(key string, resp *logical.Response) error {
		n, err := versionOf(resp)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if versions[key] == nil {
			versions[key] = map[int]bool{}
		}
		if versions[key][n] {
			return fmt.Errorf("%s: version %d handed out twice", key, n)
		}
		versions[key][n] = true
		return nil
	}
	errs := make(chan error, writers*rounds*3)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("own/%d", w)
			for i := range rounds {
				for _, key := range []string{"hot", own} {
					resp, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "data/" + key,
						Data: map[string]any{"data": map[string]any{"w": w, "i": i}}})
					if err == nil {
						err = record(key, resp)
					}
					if err != nil {
						errs <- fmt.Errorf("write %s: %w", key, err)
						return
					}
				}
				// A check-and-set update of the own key must see the
				// version just written, whichever instance wrote it.
				resp, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "data/" + own,
					Data: map[string]any{"options": map[string]any{"cas": 2*i + 1}, "data": map[string]any{"cas": true}}})
				if err == nil {
					err = record(own, resp)
				}
				if err != nil {
					errs <- fmt.Errorf("cas write %s round %d: %w", own, i, err)
					return
				}
				if _, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "data/hot"}); err != nil {
					errs <- fmt.Errorf("read: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	check := func(key string, want int) {
		t.Helper()
		if len(versions[key]) != want {
			t.Errorf("%s: %d versions handed out, want %d", key, len(versions[key]), want)
		}
		for n := 1; n <= want; n++ {
			if !versions[key][n] {
				t.Errorf("%s: version %d missing", key, n)
			}
		}
		resp, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "metadata/" + key})
		if err != nil {
			t.Fatal(err)
		}
		if cur := fmt.Sprint(resp.Data["current_version"]); cur != fmt.Sprint(want) {
			t.Errorf("%s: current_version %s, want %d (a write was lost)", key, cur, want)
		}
		if vs, _ := resp.Data["versions"].(map[string]any); len(vs) != want {
			t.Errorf("%s: %d versions in metadata, want %d", key, len(vs), want)
		}
	}
	check("hot", writers*rounds)
	for w := range writers {
		check(fmt.Sprintf("own/%d", w), 2*rounds)
	}
	if s := m.Stats(); s.Instances < 2 {
		t.Errorf("pool: %+v: the hammer needs several instances", s)
	}
	if n := m.locks.size(); n != 0 {
		t.Errorf("%d lock entries left after every call ended", n)
	}
}

func versionOf(resp *logical.Response) (int, error) {
	if resp == nil {
		return 0, fmt.Errorf("no response")
	}
	switch v := resp.Data["version"].(type) {
	case json.Number:
		n, err := v.Int64()
		return int(n), err
	case float64:
		return int(v), nil
	case int:
		return v, nil
	}
	return 0, fmt.Errorf("response without a version: %v", resp.Data)
}

// The lock table's rules, on fake instances (no module runs).
func TestLockTable(t *testing.T) {
	m := &Mount{stop: make(chan struct{})}
	lt := &m.locks
	ctx := context.Background()
	a, b, c, d := &instance{m: m}, &instance{m: m}, &instance{m: m}, &instance{m: m}
	must := func(got, want abi.Status) {
		t.Helper()
		if got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
	}
	// wait takes a lock in a goroutine and reports when it has it.
	wait := func(inst *instance, key string, shared bool) chan abi.Status {
		ch := make(chan abi.Status, 1)
		go func() { ch <- lt.acquire(ctx, m, inst, key, shared, false) }()
		return ch
	}
	blocked := func(ch chan abi.Status) {
		t.Helper()
		select {
		case st := <-ch:
			t.Fatalf("granted (%d) while it should wait", st)
		case <-time.After(20 * time.Millisecond):
		}
	}
	granted := func(ch chan abi.Status) {
		t.Helper()
		select {
		case st := <-ch:
			must(st, abi.StatusOK)
		case <-time.After(5 * time.Second):
			t.Fatal("not granted")
		}
	}

	// Exclusive excludes everyone; the holder cannot take it again.
	must(lt.acquire(ctx, m, a, "k", false, false), abi.StatusOK)
	must(lt.acquire(ctx, m, b, "k", false, true), abi.StatusBusy)
	must(lt.acquire(ctx, m, b, "k", true, true), abi.StatusBusy)
	must(lt.acquire(ctx, m, a, "k", false, false), abi.StatusHeld)
	must(lt.acquire(ctx, m, a, "k", true, false), abi.StatusHeld)
	must(lt.acquire(ctx, m, b, "other", false, false), abi.StatusOK) // other keys are independent
	must(lt.release(b, "other"), abi.StatusOK)
	must(lt.release(b, "k"), abi.StatusHeld) // not b's

	// Waiters are served in order; a shared request waits behind a queued
	// exclusive one, and consecutive shared ones are granted together.
	wb := wait(b, "k", true)
	blocked(wb)
	wc := wait(c, "k", false)
	blocked(wc)
	wd := wait(d, "k", true)
	blocked(wd)
	must(lt.release(a, "k"), abi.StatusOK)
	granted(wb)
	blocked(wc)
	blocked(wd)
	// b holds it shared: b may take it shared again even though c waits.
	must(lt.acquire(ctx, m, b, "k", true, false), abi.StatusOK)
	must(lt.release(b, "k"), abi.StatusOK)
	blocked(wc)
	must(lt.release(b, "k"), abi.StatusOK)
	granted(wc)
	blocked(wd)
	must(lt.release(c, "k"), abi.StatusOK)
	granted(wd)
	must(lt.release(d, "k"), abi.StatusOK)
	if lt.size() != 0 || len(a.held)+len(b.held)+len(c.held)+len(d.held) != 0 {
		t.Fatalf("left: %d entries, held %v %v %v %v", lt.size(), a.held, b.held, c.held, d.held)
	}

	// A call holds at most MaxHeldLocks keys.
	for i := range abi.MaxHeldLocks {
		must(lt.acquire(ctx, m, a, fmt.Sprint("k", i), i%2 == 0, false), abi.StatusOK)
	}
	must(lt.acquire(ctx, m, a, "one more", false, false), abi.StatusLimit)
	// releaseAll (the end of a call) frees everything and wakes waiters.
	wb = wait(b, "k1", false)
	blocked(wb)
	lt.releaseAll(a)
	granted(wb)
	lt.releaseAll(b)
	if lt.size() != 0 || len(a.held) != 0 {
		t.Fatalf("left after releaseAll: %d entries, %d held", lt.size(), len(a.held))
	}

	// A wait cut short by the deadline stops the call (panics as tick
	// does) and leaves nothing behind; so does the mount closing.
	must(lt.acquire(ctx, m, a, "k", false, false), abi.StatusOK)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	stopped := func(ctx context.Context, inst *instance) (r any) {
		defer func() { r = recover() }()
		lt.acquire(ctx, m, inst, "k", false, false)
		return nil
	}
	if r := stopped(short, b); r != errStopped || b.failure != errStopped {
		t.Fatalf("wait past the deadline: %v", r)
	}
	wc = wait(c, "k", true)
	blocked(wc)
	lt.releaseAll(a)
	granted(wc)
	lt.releaseAll(c)
	if lt.size() != 0 {
		t.Fatalf("%d entries left", lt.size())
	}

	// The mount closing stops waiters too.
	must(lt.acquire(ctx, m, a, "k", false, false), abi.StatusOK)
	done := make(chan any, 1)
	go func() { done <- stopped(ctx, d) }()
	time.Sleep(20 * time.Millisecond)
	close(m.stop)
	if r := <-done; r != errStopped || !d.kill.Load() {
		t.Fatalf("wait as the mount closes: %v, kill %v", r, d.kill.Load())
	}
	lt.releaseAll(a)
	if lt.size() != 0 {
		t.Fatalf("%d entries left", lt.size())
	}
}

func lockedMount(t *testing.T, lim Limits) (*Mount, logical.Storage) {
	t.Helper()
	st := logical.NewInmemStorage()
	lim.ConcurrentWrites = true // the probe does not declare it; its locked/ path is safe
	m, _ := mountProbe(t, lim, st)
	return m, st
}

// Increments of one counter under the probe's keyed lock, from many
// clients over several instances with concurrent writes: none is lost,
// and each instance's cache of the counter stays exact (the lock grant
// delivers the other instances' writes).
func TestKeyedLocksAcrossInstances(t *testing.T) {
	m, st := lockedMount(t, Limits{PoolSize: 4})
	ctx := context.Background()
	const clients, rounds = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				for _, k := range []string{"a", fmt.Sprint("k", c%3)} {
					if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/"+k, nil)); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	counts := map[string]int{"a": clients * rounds}
	for c := range clients {
		counts[fmt.Sprint("k", c%3)] += rounds
	}
	for k, want := range counts {
		e, _ := st.Get(ctx, "counter/"+k)
		if e == nil || string(e.Value) != fmt.Sprint(want) {
			t.Errorf("counter/%s = %v, want %d: increments were lost", k, e, want)
		}
	}
	if s := m.Stats(); s.Instances < 2 {
		t.Errorf("pool %+v: the test needs several instances", s)
	}
	if n := m.locks.size(); n != 0 {
		t.Errorf("%d lock entries left", n)
	}
}

// However a call ends while holding a lock (a panic the SDK recovers, a
// trap, its deadline), the lock is released and the next call gets it.
func TestLocksEndWithTheirCall(t *testing.T) {
	m, _ := lockedMount(t, Limits{PoolSize: 2})
	ctx := context.Background()
	for _, mode := range []string{"panic", "trap", "hold"} {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := m.HandleRequest(cctx, req(logical.UpdateOperation, "locked/a", map[string]any{"mode": mode}))
		cancel()
		if err == nil {
			t.Fatalf("%s: no error", mode)
		}
		start := time.Now()
		if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", nil)); err != nil {
			t.Fatalf("after %s: %v", mode, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("after %s the next call waited %s", mode, d)
		}
		if n := m.locks.size(); n != 0 {
			t.Errorf("after %s: %d lock entries left", mode, n)
		}
	}
}

// A call waiting for a lock past its deadline fails with ErrDeadline and
// gives up its place; the holder finishes normally.
func TestLockWaitDeadline(t *testing.T) {
	m, st := lockedMount(t, Limits{PoolSize: 2})
	warmPool(t, m) // the waiter's deadline is not spent creating an instance
	ctx := context.Background()
	holder := make(chan error, 1)
	go func() {
		_, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", map[string]any{"mode": "slow"}))
		holder <- err
	}()
	waitFor(t, func() bool { return m.locks.size() == 1 }) // the holder has the lock (it holds it 300 ms)
	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	waited := make(chan bool, 1)
	go func() { // the waiter reaches the lock's queue before its deadline
		for cctx.Err() == nil {
			if m.locks.waiting("kcounter/a") == 1 {
				waited <- true
				return
			}
			time.Sleep(time.Millisecond)
		}
		waited <- false
	}()
	_, err := m.HandleRequest(cctx, req(logical.UpdateOperation, "locked/a", nil))
	if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter: %v, want ErrDeadline", err)
	}
	if !<-waited {
		t.Fatal("the waiter never waited for the lock: its deadline was spent elsewhere")
	}
	if n := m.locks.waiting("kcounter/a"); n != 0 {
		t.Fatalf("%d still queued after the waiter gave up", n)
	}
	if err := <-holder; err != nil {
		t.Fatalf("holder: %v", err)
	}
	if e, _ := st.Get(ctx, "counter/a"); e == nil || string(e.Value) != "1" {
		t.Fatalf("counter/a = %v, want 1", e)
	}
	if n := m.locks.size(); n != 0 {
		t.Errorf("%d lock entries left", n)
	}
}
