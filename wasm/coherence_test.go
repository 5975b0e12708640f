package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// runOn runs one request on an instance the test holds (as exchange does,
// without the pool), carrying keys; corrupt may damage the encoded
// request first. It returns the reply, or the call's error.
func runOn(t *testing.T, m *Mount, inst *instance, r *logical.Request, keys []string, corrupt func([]byte)) (*abi.Reply, error) {
	t.Helper()
	buf, err := abi.AppendRequestArgs(nil, &abi.RequestArgs{MountID: m.cfg.ID, Request: r})
	if err != nil {
		t.Fatal(err)
	}
	if corrupt != nil {
		corrupt(buf)
	}
	if len(keys) > 0 {
		buf = abi.AppendInvalidatedKeys(buf, keys)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inst.run(context.WithValue(ctx, instanceKey{}, inst), abi.OpRequest, buf, true)
	if err != nil {
		return nil, err
	}
	return abi.DecodeReply(out)
}

// counterOf returns the n a locked/ increment answered.
func counterOf(t *testing.T, rep *abi.Reply, err error) string {
	t.Helper()
	if err == nil && rep.Err != nil {
		err = rep.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(rep.Response.Data["n"])
}

// Invalidations carried in a request the module cannot decode (a path
// that is not UTF-8) are applied all the same: the host counted them as
// delivered, and an instance that dropped them would overwrite another
// instance's write from its stale cache.
func TestCarriedInvalidationsSurviveUndecodableRequest(t *testing.T) {
	m, st := lockedMount(t, Limits{PoolSize: 2})
	ctx := context.Background()
	a, _, err := m.acquire(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := m.acquire(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	held := map[*instance]bool{a: true, b: true}
	release := func(inst *instance) {
		delete(held, inst)
		m.release(inst, nil)
	}
	t.Cleanup(func() { // before the mount closes, which waits for them
		for inst := range held {
			m.release(inst, nil)
		}
	})
	if a == b {
		t.Fatal("one instance twice")
	}
	incr := func(inst *instance) string {
		rep, err := runOn(t, m, inst, req(logical.UpdateOperation, "locked/a", nil), nil, nil)
		return counterOf(t, rep, err)
	}
	if n := incr(a); n != "1" { // a caches 1
		t.Fatalf("a: n = %s", n)
	}
	if n := incr(b); n != "2" { // b's grant tells it of a's write
		t.Fatalf("b: n = %s", n)
	}
	release(b)
	// a's next request carries b's write, and cannot be decoded.
	_, keys, err := m.prepare(ctx, a, 1<<20)
	if err != nil || len(keys) != 1 || keys[0] != "counter/a" {
		t.Fatalf("prepare: keys %q, %v", keys, err)
	}
	rep, err := runOn(t, m, a, req(logical.UpdateOperation, "locked/b", nil), keys, func(b []byte) {
		i := bytes.Index(b, []byte("locked/b"))
		b[i+len("locked/b")-1] = 0xff
	})
	if err != nil || rep.Err == nil || logical.CodeOf(rep.Err) != logical.CodeInvalidRequest {
		t.Fatalf("undecodable request: reply %+v, %v; want an invalid-request reply", rep, err)
	}
	// The same instance (still healthy) writes next: exact.
	if _, keys, err = m.prepare(ctx, a, 1<<20); err != nil || len(keys) != 0 {
		t.Fatalf("prepare: keys %q, %v", keys, err)
	}
	if n := incr(a); n != "3" {
		t.Fatalf("a after the undecodable request: n = %s, want 3 (a write was lost)", n)
	}
	release(a)
	if e, _ := st.Get(ctx, "counter/a"); e == nil || string(e.Value) != "3" {
		t.Fatalf("counter/a = %v, want 3", e)
	}
}

// A request whose path is not UTF-8 is refused before it reaches an
// instance, as a bad request (go-plugin answers the same).
func TestNonUTF8RequestRefused(t *testing.T) {
	m, _ := mountProbe(t, Limits{PoolSize: 1}, nil)
	for _, r := range []*logical.Request{
		req(logical.UpdateOperation, "kv/\xff", nil),
		{Operation: logical.ReadOperation, Path: "echo", Headers: map[string][]string{"X": {"a\xffb"}}},
	} {
		_, err := m.HandleRequest(context.Background(), r)
		if err == nil || logical.CodeOf(err) != logical.CodeInvalidRequest || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%q: %v, want an invalid-request error about UTF-8", r.Path, err)
		}
	}
	if resp, err := m.HandleRequest(context.Background(), req(logical.UpdateOperation, "echo", map[string]any{"s": "\xff"})); err != nil {
		t.Errorf("data (JSON) with invalid UTF-8: %v, %v", resp, err)
	}
}

// A call that runs out of host calls holding a lock still releases it
// (a release is not counted), and one that cannot take its lock ends its
// instance; either way the next request for the key on the same pool
// succeeds instead of deadlocking on the plugin's in-process mutex.
func TestLockFailureLeavesNoStripeHeld(t *testing.T) {
	m, st := lockedMount(t, Limits{PoolSize: 1, MaxHostCalls: 50})
	for i, mode := range []string{"exhaust", "exhaustlock", "exhaust"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", map[string]any{"mode": mode}))
		if err == nil {
			t.Fatalf("%s: no error", mode)
		}
		if mode == "exhaustlock" && !errors.Is(err, ErrModuleFailed) {
			t.Fatalf("%s: %v, want ErrModuleFailed (the instance ends)", mode, err)
		}
		if mode == "exhaust" && (errors.Is(err, ErrModuleFailed) || logical.CodeOf(err) != logical.CodeUnavailable) {
			t.Fatalf("%s: %v, want the plugin's error (its release is not counted, the instance stays)", mode, err)
		}
		resp, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", nil))
		cancel()
		if err != nil {
			t.Fatalf("after %s: %v", mode, err)
		}
		if n := fmt.Sprint(resp.Data["n"]); n != fmt.Sprint(i+1) {
			t.Fatalf("after %s: n = %s, want %d", mode, n, i+1)
		}
		if n := m.locks.size(); n != 0 {
			t.Fatalf("after %s: %d lock entries left", mode, n)
		}
	}
	if e, _ := st.Get(context.Background(), "counter/a"); e == nil || string(e.Value) != "3" {
		t.Fatalf("counter/a = %v, want 3", e)
	}
}

// More writes during one call than the invalidation log keeps: the lock
// grant says "everything" (InvalidateKeysArgs.all), the probe drops its
// cache, and the call goes on, exact, instead of being stopped.
func TestLockGrantInvalidatesAll(t *testing.T) {
	m, st := lockedMount(t, Limits{PoolSize: 2})
	ctx := context.Background()
	warmPool(t, m)
	// Both instances cache counter/a.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", map[string]any{"mode": "slow"})); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	holder := make(chan error, 1)
	go func() {
		_, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", map[string]any{"mode": "slow"}))
		holder <- err
	}()
	waitFor(t, func() bool { return m.locks.size() == 1 })
	waiter := make(chan *logical.Response, 1)
	go func() {
		resp, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "locked/a", nil))
		if err != nil {
			t.Error(err)
		}
		waiter <- resp
	}()
	waitFor(t, func() bool { return m.locks.waiting("kcounter/a") == 1 })
	for i := range invalLogKeys + 10 {
		m.InvalidateKey(ctx, fmt.Sprint("other/", i))
	}
	if err := <-holder; err != nil {
		t.Fatalf("holder: %v", err)
	}
	resp := <-waiter
	if resp == nil || fmt.Sprint(resp.Data["n"]) != "4" {
		t.Fatalf("waiter: %v, want n = 4", resp)
	}
	if e, _ := st.Get(ctx, "counter/a"); e == nil || string(e.Value) != "4" {
		t.Fatalf("counter/a = %v, want 4", e)
	}
	if s := m.Stats(); s.Instances != 2 {
		t.Fatalf("pool %+v: an instance was discarded", s)
	}
}

// An idle instance that fell behind the whole invalidation log is
// replaced (a fresh one caches nothing), so reads stay exact.
func TestInvalidationLogOverflow(t *testing.T) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	m, _ := mountProbe(t, Limits{PoolSize: 2}, st)
	warmPool(t, m)
	if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "kv/a", map[string]any{"value": "1"})); err != nil {
		t.Fatal(err)
	}
	read := func(want string) (ids []uint64) {
		t.Helper()
		var held []*instance
		defer func() {
			for _, inst := range held {
				m.release(inst, nil)
			}
		}()
		for range 2 {
			inst, _, err := m.acquire(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, inst)
		}
		for _, inst := range held {
			rep, err := runOn(t, m, inst, req(logical.ReadOperation, "kv/a", nil), nil, nil)
			if err != nil || rep.Err != nil || rep.Response.Data["value"] != want {
				t.Errorf("instance %d read %+v (%v), want %s", inst.id, rep, err, want)
			}
			ids = append(ids, inst.id)
		}
		return ids
	}
	before := read("1") // both cache kv/a
	_ = st.Put(ctx, &logical.StorageEntry{Key: "kv/a", Value: []byte("2")})
	m.InvalidateKey(ctx, "kv/a")
	for i := range invalLogKeys + 10 {
		m.InvalidateKey(ctx, fmt.Sprint("other/", i))
	}
	after := read("2")
	for _, id := range after {
		for _, old := range before {
			if id == old {
				t.Errorf("instance %d kept after falling behind the log", id)
			}
		}
	}
	m.mu.Lock()
	n, b := len(m.inval), m.invalBytes
	m.mu.Unlock()
	if n > invalLogKeys || b > invalLogBytes {
		t.Errorf("log holds %d entries, %d bytes", n, b)
	}
}

// The log's bounds and what an instance is told, on a mount with fake
// instances (no module runs).
func TestInvalidationLog(t *testing.T) {
	m := &Mount{all: map[*instance]struct{}{}, cfg: MountConfig{Limits: Limits{PoolSize: 2}}}
	a, b := &instance{m: m}, &instance{m: m}
	for _, inst := range []*instance{a, b} {
		if err := m.register(inst); err != nil {
			t.Fatal(err)
		}
	}
	told := func(inst *instance, limit int) ([]string, bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.invalidationsLocked(inst, limit)
	}
	// Nothing grows before a write; own writes are not told; keys come once.
	if m.inval != nil {
		t.Fatal("log allocated before any write")
	}
	m.wrote(a, "x")
	m.wrote(nil, "y")
	m.wrote(a, "x")
	for i := range 40 {
		m.wrote(nil, fmt.Sprint("k", i%20))
	}
	if keys, all := told(a, 1<<20); all || len(keys) != 21 || keys[0] != "y" {
		t.Fatalf("a told %q (all %v)", keys, all)
	}
	if keys, all := told(b, 1<<20); all || len(keys) != 22 || keys[0] != "x" || keys[1] != "y" {
		t.Fatalf("b told %q (all %v)", keys, all)
	}
	// Both told: the log forgets those entries when it would grow.
	for range 100 {
		m.wrote(nil, "z")
		told(a, 1<<20)
		told(b, 1<<20)
	}
	if n := len(m.inval); n > 64 {
		t.Errorf("log keeps %d entries every instance was told", n)
	}
	// More than a message holds: all.
	m.wrote(nil, strings.Repeat("k", 100))
	if keys, all := told(a, 50); !all || keys != nil {
		t.Fatalf("over the limit: %d keys, all %v", len(keys), all)
	}
	// A key a module cannot decode: all.
	m.wrote(nil, "bad\xff")
	if _, all := told(a, 1<<20); !all {
		t.Fatal("a key that is not UTF-8 was listed")
	}
	// Bounded by bytes: big keys push the oldest out; b, behind, gets all.
	big := strings.Repeat("b", 4096)
	for range 2 * invalLogBytes / len(big) {
		m.wrote(nil, big)
	}
	if m.invalBytes > invalLogBytes {
		t.Fatalf("log holds %d bytes of keys", m.invalBytes)
	}
	if _, all := told(b, 1<<30); !all {
		t.Fatal("an instance behind the log was not told all")
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("condition not reached")
		}
	}
}
