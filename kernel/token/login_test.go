package token

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// loginEntry is a token as the kernel mints it from an auth method's answer.
func loginEntry(accessor string) *Entry {
	return &Entry{Policies: []string{"default", "dev"}, Path: "auth/userpass/login/alice",
		TTL: 10 * time.Minute, MaxTTL: 30 * time.Minute, Renewable: true, MountAccessor: accessor,
		Auth: &logical.Auth{Policies: []string{"dev"}, InternalData: map[string]any{"user": "alice"}}}
}

func TestLoginTokenMaxTTLCapsRenewals(t *testing.T) {
	f := newFixture(t)
	e := f.create(t, loginEntry("userpass_1"))
	if got := e.ExpireTime.Sub(e.CreationTime); got != 10*time.Minute {
		t.Fatalf("initial TTL %v, want 10m", got)
	}
	f.clock.Advance(8 * time.Minute)
	r, err := f.s.Renew(context.Background(), e, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.CreationTime.Add(30 * time.Minute); !r.ExpireTime.Equal(want) {
		t.Fatalf("renewed to %v, want the max TTL cap %v", r.ExpireTime, want)
	}

	// A MaxTTL above the TTL at creation still caps the TTL itself.
	e2 := f.create(t, &Entry{Policies: []string{"dev"}, TTL: time.Hour, MaxTTL: 5 * time.Minute, Renewable: true})
	if got := e2.ExpireTime.Sub(e2.CreationTime); got != 5*time.Minute {
		t.Fatalf("TTL %v, want 5m (capped by MaxTTL)", got)
	}
}

func TestRenewAuthHookDecides(t *testing.T) {
	clock := newFakeClock()
	var seen *Entry
	var answer *logical.Auth
	var refuse error
	s, err := NewStore(context.Background(), logical.NewInmemStorage(), Options{Now: clock.Now, MaxTTL: 24 * time.Hour,
		RenewAuth: func(ctx context.Context, e *Entry) (*logical.Auth, error) {
			seen = e
			return answer, refuse
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := s.Create(ctx, loginEntry("userpass_1"))
	if err != nil {
		t.Fatal(err)
	}

	// The method shortens the TTL and the max TTL.
	answer = &logical.Auth{TTL: 2 * time.Minute, MaxTTL: 20 * time.Minute}
	r, err := s.Renew(ctx, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Auth == nil || seen.Auth.InternalData["user"] != "alice" {
		t.Fatalf("hook did not get the login's auth data: %+v", seen)
	}
	if got := r.ExpireTime.Sub(clock.Now().Round(0)); got != 2*time.Minute {
		t.Fatalf("renewed TTL %v, want the method's 2m", got)
	}
	answer = &logical.Auth{TTL: time.Hour}
	clock.Advance(time.Minute)
	r, err = s.Renew(ctx, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.CreationTime.Add(20 * time.Minute); !r.ExpireTime.Equal(want) {
		t.Fatalf("renewed to %v, want the method's max TTL %v", r.ExpireTime, want)
	}

	// The method cannot raise the max TTL the token was issued with.
	answer = &logical.Auth{TTL: time.Hour, MaxTTL: 48 * time.Hour}
	r, err = s.Renew(ctx, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.CreationTime.Add(20 * time.Minute); r.ExpireTime.After(want) {
		t.Fatalf("renewal extended the token to %v past its max %v", r.ExpireTime, want)
	}

	// A refusal fails the renewal and leaves the token as it was.
	refuse = logical.InvalidRequest("user deleted")
	before, _ := s.Lookup(ctx, e.ID)
	if _, err := s.Renew(ctx, e, 0); !errors.Is(err, refuse) {
		t.Fatalf("renew after refusal: %v, want the method's error", err)
	}
	after, _ := s.Lookup(ctx, e.ID)
	if after == nil || !after.ExpireTime.Equal(before.ExpireTime) {
		t.Fatalf("a refused renewal changed the token: %v -> %v", before.ExpireTime, after)
	}

	// Tokens from auth/token never reach the hook.
	seen = nil
	plain, err := s.Create(ctx, &Entry{Policies: []string{"dev"}, Renewable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Renew(ctx, plain, 0); err != nil {
		t.Fatalf("renew of a plain token: %v", err)
	}
	if seen != nil {
		t.Fatal("the hook was asked about a token no auth method issued")
	}
}

func TestRevokeByMount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a1 := f.create(t, loginEntry("userpass_1"))
	a2 := f.create(t, loginEntry("userpass_1"))
	child := f.child(t, a1, "dev")
	other := f.create(t, loginEntry("approle_2"))

	if err := f.s.RevokeByMount(ctx, "userpass_1"); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*Entry{"a1": a1, "a2": a2, "child of a1": child} {
		if f.valid(t, e) {
			t.Errorf("%s survived the revocation of its auth mount", name)
		}
	}
	if !f.valid(t, other) {
		t.Error("a token of another auth mount was revoked")
	}
	keys, err := f.s.view.List(ctx, mountPrefix+"userpass_1/")
	if err != nil || len(keys) != 0 {
		t.Fatalf("mount index left behind: %v %v", keys, err)
	}
	// The index of a token revoked normally goes with it.
	if err := f.s.Revoke(ctx, other); err != nil {
		t.Fatal(err)
	}
	if keys, _ := f.s.view.List(ctx, mountPrefix+"approle_2/"); len(keys) != 0 {
		t.Fatalf("mount index of a revoked token left behind: %v", keys)
	}
	if err := f.s.RevokeByMount(ctx, "../x"); err == nil {
		t.Fatal("an accessor with a slash was accepted")
	}
}

// batchCounter is batch-capable storage that counts writes and batches.
type batchCounter struct {
	*logical.InmemStorage
	puts, batches int
}

func (b *batchCounter) Put(ctx context.Context, e *logical.StorageEntry) error {
	b.puts++
	return b.InmemStorage.Put(ctx, e)
}

func (b *batchCounter) Batch(ctx context.Context, ops []logical.StorageOp) error {
	b.batches++
	return b.InmemStorage.Batch(ctx, ops)
}

// TestCreateIsOneBatch: on batch-capable storage a token and all its
// indexes are one atomic commit, and the result behaves like any token.
func TestCreateIsOneBatch(t *testing.T) {
	ctx := context.Background()
	st := &batchCounter{InmemStorage: logical.NewInmemStorage()}
	s, err := NewStore(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.puts, st.batches = 0, 0
	parent, err := s.Create(ctx, &Entry{Policies: []string{"dev"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Create(ctx, &Entry{Policies: []string{"dev"}, Parent: parent.HashedID, MountAccessor: "userpass_1", Renewable: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.puts != 0 || st.batches != 2 {
		t.Fatalf("two creations: %d puts, %d batches; want 0 and 2", st.puts, st.batches)
	}
	if got, err := s.LookupAccessor(ctx, e.Accessor); err != nil || got == nil {
		t.Fatalf("accessor index: %v %v", got, err)
	}
	if err := s.Revoke(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Lookup(ctx, e.ID); got != nil {
		t.Fatal("child survived its parent's revocation")
	}
	if keys, _ := logical.CollectKeys(ctx, st, "mount/"); len(keys) != 0 {
		t.Fatalf("mount index left: %v", keys)
	}
}

// TestPeriodRaisedAfterCreationIsCapped: an auth method (or role) that
// answers a renewal with a huge period cannot push the token past the
// system maximum for that period.
func TestPeriodRaisedAfterCreationIsCapped(t *testing.T) {
	clock := newFakeClock()
	answer := &logical.Auth{Period: 100000 * time.Hour}
	s, err := NewStore(context.Background(), logical.NewInmemStorage(), Options{Now: clock.Now, MaxTTL: 24 * time.Hour,
		RenewAuth: func(context.Context, *Entry) (*logical.Auth, error) { return answer, nil }})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Create(context.Background(), &Entry{Policies: []string{"dev"}, Period: time.Hour, Renewable: true, MountAccessor: "m_1"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Renew(context.Background(), e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ExpireTime.Sub(clock.Now().Round(0)); got > 24*time.Hour {
		t.Fatalf("renewed for %v, past the system max of 24h", got)
	}
}

func TestRenewalNeverMakesATokenPeriodic(t *testing.T) {
	clock := newFakeClock()
	s, err := NewStore(context.Background(), logical.NewInmemStorage(), Options{Now: clock.Now, MaxTTL: 24 * time.Hour,
		RenewAuth: func(context.Context, *Entry) (*logical.Auth, error) {
			return &logical.Auth{Period: 20 * time.Minute}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Create(context.Background(), &Entry{Policies: []string{"dev"}, TTL: 5 * time.Minute, MaxTTL: 10 * time.Minute,
		Renewable: true, MountAccessor: "m_1"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		clock.Advance(4 * time.Minute)
		r, err := s.Renew(context.Background(), e, 0)
		if err != nil {
			break // expired past its max: what we want
		}
		if r.Period != 0 || r.ExpireTime.After(e.CreationTime.Add(10*time.Minute)) {
			t.Fatalf("renewal %d: period %v, expires %v (issued max 10m)", i, r.Period, r.ExpireTime.Sub(e.CreationTime))
		}
	}
}

// TestRevokedHookSeesEveryRevokedToken: the kernel learns of each token
// a revocation deletes, descendants included, so it can revoke their leases.
func TestRevokedHookSeesEveryRevokedToken(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]bool{}
	s, err := NewStore(ctx, logical.NewInmemStorage(), Options{Revoked: func(_ context.Context, h string) {
		mu.Lock()
		seen[h] = true
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := s.Create(ctx, &Entry{Policies: []string{"dev"}})
	child, _ := s.Create(ctx, &Entry{Policies: []string{"dev"}, Parent: parent.HashedID})
	orphan, _ := s.Create(ctx, &Entry{Policies: []string{"dev"}})
	if err := s.Revoke(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeOrphan(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*Entry{"parent": parent, "child": child, "revoke-orphan": orphan} {
		if !seen[e.HashedID] {
			t.Errorf("%s: the Revoked hook was not called", name)
		}
	}
}
