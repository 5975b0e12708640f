package lease

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", time.Hour, 0, "tok1")
	keep := f.register(t, "creds/ro", time.Hour, 0, "tok1")

	if err := f.m.Revoke(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if n := f.backend.revokedCount(e.ID); n != 1 {
		t.Fatalf("engine revoked %d times, want 1", n)
	}
	if f.exists(t, e.ID) {
		t.Fatal("lease still exists")
	}
	// Every key of the revoked lease is gone; the other lease is intact.
	h := hashID(e.ID)
	for _, k := range f.view.keys(t) {
		if k == "id/"+e.ID || len(k) > len(h) && k[len(k)-len(h):] == h {
			t.Fatalf("key %q left after revocation", k)
		}
	}
	if len(f.view.keys(t)) != 3 || !f.exists(t, keep.ID) {
		t.Fatalf("other lease damaged: %v", f.view.keys(t))
	}
	// Revoking again is a no-op, without calling the engine.
	if err := f.m.Revoke(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Revoke(ctx, "../bad"); err != nil {
		t.Fatal(err)
	}
	if n := f.backend.revokeCalls.Load(); n != 1 {
		t.Fatalf("engine called %d times, want 1", n)
	}
}

func TestRevokeConcurrentCallsShareOneEngineCall(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", time.Hour, 0, "")
	f.backend.block = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- f.m.Revoke(ctx, e.ID) })
	}
	// Wait until one call is inside the engine, then let it finish.
	for f.backend.revokeCalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	close(f.backend.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.backend.revokeCalls.Load(); n != 1 {
		t.Fatalf("engine called %d times for concurrent revocations, want 1", n)
	}
}

func TestRevokeRaceWithRenewLeavesNothing(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", time.Hour, 0, "")
	f.backend.block = make(chan struct{})
	done := make(chan error)
	go func() { done <- f.m.Revoke(ctx, e.ID) }()
	for f.backend.revokeCalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The renewal lands while the engine is revoking: it moves the expiry key.
	f.clock.Advance(time.Minute)
	if _, err := f.m.Renew(ctx, e.ID, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	close(f.backend.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if keys := f.view.keys(t); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
}

func TestRevokeFailureRetriesThenIrrevocable(t *testing.T) {
	f := newFixture(t) // RetryBase 10s, RetryMax 1m, MaxAttempts 4
	e := f.register(t, "creds/ro", time.Hour, 0, "tok1")
	f.backend.setRevokeErr(logical.Errorf(logical.CodeUnavailable, "postgres: connection refused"))

	err := f.m.Revoke(ctx, e.ID)
	if !errors.Is(err, ErrRevokeFailed) || logical.CodeOf(err) != logical.CodeInternal {
		t.Fatalf("Revoke with a failing engine = %v", err)
	}
	got, _ := f.m.Lookup(ctx, e.ID)
	if !got.Pending() || got.RevokeAttempts != 1 || got.LastError != "postgres: connection refused" {
		t.Fatalf("after a failure: %+v attempts=%d err=%q", *got, got.RevokeAttempts, got.LastError)
	}
	wait := got.NextAttempt.Sub(f.clock.Now())
	if wait < 5*time.Second || wait > 10*time.Second {
		t.Fatalf("first retry in %v, want within [5s, 10s]", wait)
	}
	// The expiry index key moved to the retry time.
	if keys := f.keysUnder(t, "expiry/"); len(keys) != 1 || keys[0] != expiryKey(got.NextAttempt, hashID(e.ID)) {
		t.Fatalf("expiry keys %v", keys)
	}
	if _, err := f.m.Renew(ctx, e.ID, 0); !errors.Is(err, ErrRevoking) {
		t.Fatalf("renew of a pending lease = %v", err)
	}

	// Nothing happens before the retry is due.
	f.clock.Advance(wait - time.Second)
	f.sweep(t)
	if n := f.backend.revokeCalls.Load(); n != 1 {
		t.Fatalf("engine called %d times before the retry was due", n)
	}
	// Each due retry is one more attempt, with growing delays.
	for attempt := 2; attempt <= 4; attempt++ {
		cur, _ := f.m.Lookup(ctx, e.ID)
		f.clock.Advance(cur.NextAttempt.Sub(f.clock.Now()) + time.Millisecond)
		f.sweep(t)
		if n := f.backend.revokeCalls.Load(); n != int64(attempt) {
			t.Fatalf("attempt %d: engine called %d times", attempt, n)
		}
		cur, _ = f.m.Lookup(ctx, e.ID)
		if cur.RevokeAttempts != attempt {
			t.Fatalf("attempts = %d, want %d", cur.RevokeAttempts, attempt)
		}
		if attempt < 4 {
			w := cur.NextAttempt.Sub(f.clock.Now())
			base := min(10*time.Second<<(attempt-1), time.Minute)
			if w < base/2 || w > base {
				t.Fatalf("attempt %d: retry in %v, want within [%v, %v]", attempt, w, base/2, base)
			}
		}
	}

	// After MaxAttempts: irrevocable, listed, out of the expiry index.
	irr, err := f.m.Irrevocable(ctx)
	if err != nil || len(irr) != 1 || irr[0].ID != e.ID || !irr[0].Irrevocable || irr[0].LastError == "" {
		t.Fatalf("Irrevocable = %v, %v", irr, err)
	}
	if keys := f.keysUnder(t, "expiry/"); len(keys) != 0 {
		t.Fatalf("irrevocable lease still in the expiry index: %v", keys)
	}
	f.clock.Advance(24 * time.Hour)
	f.sweep(t)
	if n := f.backend.revokeCalls.Load(); n != 4 {
		t.Fatalf("engine called again for an irrevocable lease (%d calls)", n)
	}

	// An explicit revoke tries again; once the engine is back it is gone.
	f.backend.setRevokeErr(nil)
	if err := f.m.Revoke(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if keys := f.view.keys(t); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
}

func TestPendingLeaseRevokedWhenEngineReturns(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", time.Minute, 0, "")
	f.backend.setRevokeErr(errors.New("down"))
	f.clock.Advance(time.Minute)
	f.sweep(t) // expiry: first failure
	if got, _ := f.m.Lookup(ctx, e.ID); got.RevokeAttempts != 1 {
		t.Fatalf("attempts = %d", got.RevokeAttempts)
	}
	f.backend.setRevokeErr(nil)
	f.clock.Advance(10 * time.Second)
	f.sweep(t)
	if f.exists(t, e.ID) || f.backend.revokedCount(e.ID) != 1 {
		t.Fatal("pending lease not revoked once the engine came back")
	}
}

func TestRevokePrefix(t *testing.T) {
	f := newFixture(t)
	var ro, admin []*Entry
	for range 5 {
		ro = append(ro, f.register(t, "creds/ro", time.Hour, 0, ""))
		admin = append(admin, f.register(t, "creds/admin", time.Hour, 0, ""))
	}
	// "creds/ro" must not match "creds/rollout".
	other := f.register(t, "creds/rollout", time.Hour, 0, "")

	if err := f.m.RevokePrefix(ctx, "database/creds/ro", false); err != nil {
		t.Fatal(err)
	}
	for _, e := range ro {
		if f.exists(t, e.ID) || f.backend.revokedCount(e.ID) != 1 {
			t.Fatal("lease under the prefix not revoked exactly once")
		}
	}
	for _, e := range append(admin, other) {
		if !f.exists(t, e.ID) {
			t.Fatal("lease outside the prefix revoked")
		}
	}

	// A failing engine: without force the leases are kept and pending.
	f.backend.setRevokeErr(errors.New("down"))
	err := f.m.RevokePrefix(ctx, "database/creds/admin/", false)
	if !errors.Is(err, ErrRevokeFailed) {
		t.Fatalf("RevokePrefix with a failing engine = %v", err)
	}
	for _, e := range admin {
		got, err := f.m.Lookup(ctx, e.ID)
		if err != nil || !got.Pending() {
			t.Fatalf("lease not pending after a failed revoke-prefix: %v", err)
		}
	}
	// With force they are forgotten.
	if err := f.m.RevokePrefix(ctx, "database/", true); err != nil {
		t.Fatal(err)
	}
	if keys := f.view.keys(t); len(keys) != 0 {
		t.Fatalf("keys left after revoke-force: %v", keys)
	}

	for _, p := range []string{"", "/", "../x", "a//b"} {
		if err := f.m.RevokePrefix(ctx, p, true); !errors.Is(err, ErrInvalid) {
			t.Fatalf("RevokePrefix(%q) = %v", p, err)
		}
	}
}

func TestRevokeByToken(t *testing.T) {
	f := newFixture(t)
	var a, b []*Entry
	for i := range 6 {
		a = append(a, f.register(t, "creds/ro", time.Duration(i+1)*time.Hour, 0, "tokA"))
		b = append(b, f.register(t, "creds/ro", time.Hour, 0, "tokB"))
	}
	if err := f.m.RevokeByToken(ctx, "tokA"); err != nil {
		t.Fatal(err)
	}
	for _, e := range a {
		if f.exists(t, e.ID) {
			t.Fatal("token A's lease survived")
		}
	}
	for _, e := range b {
		if !f.exists(t, e.ID) {
			t.Fatal("token B's lease revoked")
		}
	}
	if keys := f.keysUnder(t, "token/tokA/"); len(keys) != 0 {
		t.Fatalf("token index left: %v", keys)
	}

	// An engine outage does not fail the token's revocation: the leases
	// are pending and Run finishes them.
	f.backend.setRevokeErr(errors.New("down"))
	if err := f.m.RevokeByToken(ctx, "tokB"); err != nil {
		t.Fatalf("RevokeByToken with a failing engine = %v", err)
	}
	for _, e := range b {
		if got, _ := f.m.Lookup(ctx, e.ID); got == nil || !got.Pending() {
			t.Fatal("lease not pending")
		}
	}
	f.backend.setRevokeErr(nil)
	f.clock.Advance(time.Minute)
	f.sweep(t)
	if keys := f.view.keys(t); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
	if err := f.m.RevokeByToken(ctx, "a/b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RevokeByToken(a/b) = %v", err)
	}
	if err := f.m.RevokeByToken(ctx, "nobody"); err != nil {
		t.Fatal(err)
	}
}

func TestStorageFailureKeepsLease(t *testing.T) {
	f := newFixture(t)
	e := f.register(t, "creds/ro", time.Hour, 0, "")
	f.view.failWrites.Store(true)
	if err := f.m.Revoke(ctx, e.ID); !errors.Is(err, errInjected) {
		t.Fatalf("Revoke with failing storage = %v", err)
	}
	if _, err := f.m.Register(ctx, Registration{MountPoint: "db/", Path: "x", Secret: &logical.Secret{TTL: time.Minute}}); !errors.Is(err, errInjected) {
		t.Fatalf("Register with failing storage = %v", err)
	}
	f.view.failWrites.Store(false)
	if !f.exists(t, e.ID) {
		t.Fatal("lease lost")
	}
	// The engine already revoked; revoking again is idempotent.
	if err := f.m.Revoke(ctx, e.ID); err != nil || f.exists(t, e.ID) {
		t.Fatalf("second Revoke = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	m := &Manager{retryBase: time.Second, retryMax: 30 * time.Second}
	for n := 1; n <= 40; n++ {
		d := min(time.Second<<min(n-1, 20), 30*time.Second)
		for range 50 {
			if got := m.backoff(n); got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, got, d/2, d)
			}
		}
	}
}

// plainStorage hides InmemStorage's Batch: a view without atomic batches.
type plainStorage struct{ logical.Storage }

func TestViewWithoutBatches(t *testing.T) {
	backend := newFakeBackend()
	clock := newFakeClock()
	view := plainStorage{logical.NewInmemStorage()}
	m, err := New(view, Options{Backend: backend, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Register(ctx, Registration{MountPoint: "db/", Path: "creds/x", TokenHash: "t",
		Secret: &logical.Secret{TTL: time.Minute, Renewable: true}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Register(ctx, Registration{MountPoint: "db/", Path: "creds/x", Secret: &logical.Secret{TTL: time.Minute}})
	if _, err := m.Renew(ctx, a.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	if err := m.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := logical.CollectKeys(ctx, view, "")
	if len(keys) != 0 || backend.revokedCount(a.ID) != 1 || backend.revokedCount(b.ID) != 1 {
		t.Fatalf("keys left %v; revocations %d %d", keys, backend.revokedCount(a.ID), backend.revokedCount(b.ID))
	}
}
