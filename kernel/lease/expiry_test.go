package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestExpiryRevokesExactlyTheDueLeases(t *testing.T) {
	f := newFixture(t)
	var leases []*Entry
	for i := 1; i <= 10; i++ {
		leases = append(leases, f.register(t, "creds/ro", time.Duration(i)*10*time.Second, 0, "tok"))
	}
	start := f.clock.Now()
	for step := 1; step <= 10; step++ {
		// Just before the step's lease expires: nothing new is revoked.
		f.clock.Advance(start.Add(time.Duration(step)*10*time.Second - time.Nanosecond).Sub(f.clock.Now()))
		f.sweep(t)
		if f.exists(t, leases[step-1].ID) == false {
			t.Fatalf("lease %d revoked before its expiry", step)
		}
		f.clock.Advance(time.Nanosecond)
		f.sweep(t)
		for i, e := range leases {
			want := 0
			if i < step {
				want = 1
			}
			if got := f.backend.revokedCount(e.ID); got != want {
				t.Fatalf("step %d: lease %d revoked %d times, want %d", step, i+1, got, want)
			}
		}
	}
	if keys := f.view.keys(t); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
}

func TestSweepDoesNoIOWhenNothingIsDue(t *testing.T) {
	f := newFixture(t)
	f.register(t, "creds/ro", time.Hour, 0, "")
	f.sweep(t) // first sweep lists (nothing known yet)
	f.view.resetCounts()
	for range 20 {
		f.clock.Advance(time.Second)
		f.sweep(t)
	}
	if n := f.view.gets.Load() + f.view.lists.Load(); n != 0 {
		t.Fatalf("%d storage reads while nothing was due", n)
	}
	// A registration due earlier is noticed without a listing.
	e := f.register(t, "creds/ro", 2*time.Second, 0, "")
	f.clock.Advance(2 * time.Second)
	f.sweep(t)
	if f.exists(t, e.ID) {
		t.Fatal("short lease registered after a sweep not revoked")
	}
}

func TestRunLoop(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Interval = time.Millisecond })
	e := f.register(t, "creds/ro", time.Minute, 0, "")
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { f.m.Run(runCtx); close(stopped) }()

	time.Sleep(20 * time.Millisecond)
	if !f.exists(t, e.ID) {
		t.Fatal("revoked early")
	}
	f.clock.Advance(time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for f.exists(t, e.ID) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not revoke the expired lease")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestRunStopsWithRevocationsInFlight(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Interval = time.Millisecond; o.Concurrency = 2 })
	for range 10 {
		f.register(t, "creds/ro", time.Second, 0, "")
	}
	f.backend.block = make(chan struct{}) // the engine hangs until cancelled
	f.clock.Advance(time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { f.m.Run(runCtx); close(stopped) }()
	for f.backend.revokeCalls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if n := f.backend.revokeCalls.Load(); n > 2 {
		t.Fatalf("%d revocations at once with Concurrency 2", n)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	// Cancelled calls are not counted as failures.
	keys, _ := f.m.List(ctx, "database/creds/ro/")
	for _, k := range keys {
		e, _ := f.m.Lookup(ctx, "database/creds/ro/"+k)
		if e.RevokeAttempts != 0 {
			t.Fatal("a cancelled revocation counted as a failed attempt")
		}
	}
}

// TestRunDoesNotWaitForASlowRevocation: while one revocation hangs, Run
// keeps walking: a lease that comes due meanwhile is revoked, and the
// hanging one is not handed to a second handler by the later walks.
func TestRunDoesNotWaitForASlowRevocation(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Interval = time.Millisecond })
	slow := f.register(t, "creds/ro", time.Second, 0, "")
	fast := f.register(t, "creds/ro", 2*time.Second, 0, "")
	release := make(chan struct{})
	sb := &slowBackend{fakeBackend: f.backend, slowID: slow.ID, release: release}
	f.m.backend = sb
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { f.m.Run(runCtx); close(stopped) }()
	defer func() {
		cancel()
		<-stopped
	}()

	f.clock.Advance(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for sb.slowCalls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start the due revocation")
		}
		time.Sleep(time.Millisecond)
	}
	f.clock.Advance(time.Second)
	for f.exists(t, fast.ID) {
		if time.Now().After(deadline) {
			t.Fatal("a lease due during a hanging revocation waited for it")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // many walks
	if n := sb.slowCalls.Load(); n != 1 {
		t.Fatalf("the hanging revocation was started %d times", n)
	}
	close(release)
	for f.exists(t, slow.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the slow lease was not revoked once released")
		}
		time.Sleep(time.Millisecond)
	}
	if n := f.backend.revokedCount(slow.ID); n != 1 {
		t.Fatalf("slow lease revoked %d times", n)
	}
}

// slowBackend hangs the revocation of one lease until release is closed.
type slowBackend struct {
	*fakeBackend
	slowID    string
	release   chan struct{}
	slowCalls atomic.Int64
}

func (b *slowBackend) RevokeSecret(ctx context.Context, e *Entry) error {
	if e.ID == b.slowID {
		b.slowCalls.Add(1)
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.fakeBackend.RevokeSecret(ctx, e)
}

func TestRestartContinues(t *testing.T) {
	f := newFixture(t)
	due := f.register(t, "creds/ro", time.Minute, 0, "")
	later := f.register(t, "creds/ro", time.Hour, 0, "")
	failing := f.register(t, "creds/ro", 30*time.Second, 0, "")

	// One failed attempt before the "crash".
	f.backend.setRevokeErr(errors.New("down"))
	if err := f.m.Revoke(ctx, failing.ID); !errors.Is(err, ErrRevokeFailed) {
		t.Fatal(err)
	}
	next, _ := f.m.Lookup(ctx, failing.ID)

	// Restart: a new Manager over the same storage, the engine still down.
	m := f.reopen(t)
	f.backend.revokeCalls.Store(0)
	f.clock.Advance(next.NextAttempt.Sub(f.clock.Now()) - time.Second)
	f.sweep(t)
	if n := f.backend.revokeCalls.Load(); n != 0 {
		t.Fatalf("restart hammered the engine: %d calls before the stored retry time", n)
	}
	f.clock.Advance(2 * time.Second)
	f.sweep(t)
	got, _ := m.Lookup(ctx, failing.ID)
	if got.RevokeAttempts != 2 {
		t.Fatalf("attempts after restart = %d, want 2 (kept across the restart)", got.RevokeAttempts)
	}

	// The engine comes back; the due leases go, the later one stays.
	f.backend.setRevokeErr(nil)
	f.clock.Advance(time.Minute)
	f.sweep(t)
	if f.exists(t, due.ID) || f.exists(t, failing.ID) || !f.exists(t, later.ID) {
		t.Fatal("after restart: wrong leases revoked")
	}
}

// TestUnsealReadsOnlyTheDueWindow registers many leases spread over 30
// days and checks that New plus the first sweep read a number of keys that
// does not depend on how many leases exist.
func TestUnsealReadsOnlyTheDueWindow(t *testing.T) {
	n := 100_000
	if raceEnabled || testing.Short() {
		n = 20_000
	}
	var reads [2]int64
	for i, count := range []int{1000, n} {
		f := newFixture(t)
		r := rand.New(rand.NewPCG(1, 2))
		const dueCount = 10
		var due []*Entry
		for j := range count {
			if j < dueCount {
				due = append(due, f.register(t, "creds/ro", time.Duration(j+1)*time.Second, 0, ""))
				continue
			}
			ttl := time.Hour + time.Duration(r.Int64N(int64(30*24*time.Hour)))
			f.register(t, "creds/ro", ttl, 0, "")
		}
		f.view.resetCounts()
		m := f.reopen(t) // "unseal"
		if got := f.view.gets.Load() + f.view.lists.Load(); got != 0 {
			t.Fatalf("New did %d storage reads", got)
		}
		f.clock.Advance(dueCount * time.Second)
		if err := m.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		for _, e := range due {
			if f.exists(t, e.ID) {
				t.Fatal("due lease not revoked")
			}
		}
		if got := f.backend.totalRevoked(); got != dueCount {
			t.Fatalf("%d leases revoked, want %d", got, dueCount)
		}
		reads[i] = f.view.gets.Load() + f.view.listed.Load()
		t.Logf("%d leases: first sweep did %d lists returning %d names and %d gets", count, f.view.lists.Load(), f.view.listed.Load(), f.view.gets.Load())
	}
	// Top level: one name per ~18 h window (~41 for 30 days); then at most
	// 256 names per level of the due window, plus 2-3 reads per due lease.
	const bound = 41 + 3*256 + 10*4
	if reads[1] > bound {
		t.Fatalf("first sweep over %d leases read %d keys, want ≤ %d", n, reads[1], bound)
	}
	if reads[0] > bound {
		t.Fatalf("first sweep over 1000 leases read %d keys, want ≤ %d", reads[0], bound)
	}
}

// TestHammer registers, renews, revokes and expires leases concurrently
// while the clock moves, then checks that every lease was revoked and that
// storage is empty: no lost lease and no dangling index key.
func TestHammer(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Interval = time.Millisecond
		o.RetryBase = time.Second
		o.RetryMax = 2 * time.Second
		o.MaxAttempts = 1000
	})
	workers, perWorker := 8, 400
	if raceEnabled {
		perWorker = 120
	}
	var flaky atomic.Bool // the engine fails one revocation in 4 while set
	flaky.Store(true)
	f.m.backend = &flakyBackend{fakeBackend: f.backend, flaky: &flaky}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	running := make(chan struct{})
	go func() { f.m.Run(runCtx); close(running) }()

	var mu sync.Mutex
	var all []string
	var wg sync.WaitGroup
	errc := make(chan error, workers*2)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []string
			for range perWorker {
				tok := fmt.Sprintf("tok%d", r.IntN(4))
				e, err := f.m.Register(ctx, Registration{MountPoint: "database/", Path: fmt.Sprintf("creds/r%d", r.IntN(3)),
					TokenHash: tok, Secret: &logical.Secret{TTL: time.Duration(1+r.IntN(20)) * time.Second, MaxTTL: time.Minute, Renewable: true}})
				if err != nil {
					errc <- err
					return
				}
				mine = append(mine, e.ID)
				x := mine[r.IntN(len(mine))]
				switch r.IntN(6) {
				case 0, 1:
					_, err = f.m.Renew(ctx, x, time.Duration(r.IntN(10))*time.Second)
				case 2:
					err = f.m.Revoke(ctx, x)
				case 3:
					err = f.m.RevokeByToken(ctx, tok)
				case 4:
					_, err = f.m.Lookup(ctx, x)
				case 5:
					f.clock.Advance(time.Duration(r.IntN(500)) * time.Millisecond)
				}
				if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExpired) &&
					!errors.Is(err, ErrRevoking) && !errors.Is(err, ErrRevokeFailed) {
					errc <- err
					return
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Add(1)
	go func() { // a concurrent Tidy must not break anything
		defer wg.Done()
		for range 3 {
			if _, err := f.m.Tidy(ctx); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	// Let everything expire; the engine recovers.
	flaky.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for len(f.view.keys(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys left: %v", len(f.view.keys(t)), f.view.keys(t)[:min(5, len(f.view.keys(t)))])
		}
		f.clock.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	<-running
	for _, id := range all {
		if f.backend.revokedCount(id) == 0 {
			t.Fatal("a lease disappeared without being revoked")
		}
	}
	if irr, _ := f.m.Irrevocable(ctx); len(irr) != 0 {
		t.Fatalf("%d irrevocable leases", len(irr))
	}
}

// flakyBackend fails one revocation in four while flaky is set.
type flakyBackend struct {
	*fakeBackend
	flaky *atomic.Bool
	n     atomic.Int64
}

func (b *flakyBackend) RevokeSecret(ctx context.Context, e *Entry) error {
	if b.flaky.Load() && b.n.Add(1)%4 == 0 {
		return errors.New("transient")
	}
	return b.fakeBackend.RevokeSecret(ctx, e)
}

func TestTidy(t *testing.T) {
	alive := map[string]bool{"live": true}
	f := newFixture(t, func(o *Options) {
		o.TokenExists = func(_ context.Context, h string) (bool, error) { return alive[h], nil }
	})
	keep := f.register(t, "creds/ro", time.Hour, 0, "live")
	orphan := f.register(t, "creds/ro", time.Hour, 0, "gone")
	damaged := f.register(t, "creds/ro", time.Hour, 0, "")

	// Dangling keys: an expiry key and a token key for no lease, a stale
	// expiry key (wrong second) for a live lease, an irrevocable key for a
	// lease that is not irrevocable.
	put := func(k, v string) {
		if err := f.view.Put(ctx, &logical.StorageEntry{Key: k, Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	put(expiryKey(f.clock.Now(), hashID("database/creds/ro/ghost")), "database/creds/ro/ghost")
	put(tokenKey("live", hashID("database/creds/ro/ghost")), "database/creds/ro/ghost")
	put(expiryKey(f.clock.Now().Add(time.Minute), hashID(keep.ID)), keep.ID)
	put(irrevocableKey(hashID(keep.ID)), keep.ID)
	// A lease that lost its expiry key.
	if err := f.view.Delete(ctx, expiryKey(damaged.ExpireTime, hashID(damaged.ID))); err != nil {
		t.Fatal(err)
	}

	r, err := f.m.Tidy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := TidyReport{Leases: 3, StaleIndexKeys: 4, RestoredIndexKeys: 1, OrphansRevoked: 1}
	if r != want {
		t.Fatalf("Tidy = %+v, want %+v", r, want)
	}
	if f.exists(t, orphan.ID) || !f.exists(t, keep.ID) || !f.exists(t, damaged.ID) {
		t.Fatal("wrong leases kept")
	}
	// Exactly the keys of the two remaining leases are left.
	if keys := f.view.keys(t); len(keys) != 5 {
		t.Fatalf("keys after tidy: %v", keys)
	}
	// The restored expiry key works.
	f.clock.Advance(time.Hour)
	f.sweep(t)
	if f.exists(t, damaged.ID) {
		t.Fatal("lease with a restored expiry key did not expire")
	}
	// A second tidy finds nothing.
	if r, err := f.m.Tidy(ctx); err != nil || r != (TidyReport{}) {
		t.Fatalf("second Tidy = %+v, %v", r, err)
	}
}
