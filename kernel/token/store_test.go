package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCreateLookup(t *testing.T) {
	tests := []struct {
		name          string
		in            Entry
		wantTTL       time.Duration
		wantPeriod    time.Duration
		wantRenewable bool
		wantPolicies  []string
	}{
		{name: "default ttl", in: Entry{Policies: []string{"b", "a", "a", " B "}, Renewable: true},
			wantTTL: time.Hour, wantRenewable: true, wantPolicies: []string{"a", "b"}},
		{name: "explicit ttl", in: Entry{TTL: 10 * time.Minute, Renewable: true},
			wantTTL: 10 * time.Minute, wantRenewable: true, wantPolicies: []string{}},
		{name: "ttl capped by max", in: Entry{TTL: 100 * time.Hour, Renewable: true},
			wantTTL: 24 * time.Hour, wantRenewable: true, wantPolicies: []string{}},
		{name: "ttl capped by explicit max", in: Entry{TTL: 2 * time.Hour, ExplicitMaxTTL: 30 * time.Minute, Renewable: true},
			wantTTL: 30 * time.Minute, wantRenewable: true, wantPolicies: []string{}},
		{name: "terraform child", in: Entry{TTL: 1200 * time.Second, ExplicitMaxTTL: 1200 * time.Second},
			wantTTL: 1200 * time.Second, wantPolicies: []string{}},
		{name: "root never expires", in: Entry{Policies: []string{"root"}, Renewable: true},
			wantTTL: 0, wantRenewable: false, wantPolicies: []string{"root"}},
		{name: "root collapses", in: Entry{Policies: []string{"x", "root", "y"}},
			wantTTL: 0, wantPolicies: []string{"root"}},
		{name: "root exempt from max", in: Entry{Policies: []string{"root"}, TTL: 100 * time.Hour, Renewable: true},
			wantTTL: 100 * time.Hour, wantRenewable: true, wantPolicies: []string{"root"}},
		{name: "root bound by explicit max", in: Entry{Policies: []string{"root"}, ExplicitMaxTTL: time.Hour},
			wantTTL: time.Hour, wantPolicies: []string{"root"}},
		{name: "periodic", in: Entry{Period: 2 * time.Hour, TTL: 5 * time.Minute, Renewable: true},
			wantTTL: 2 * time.Hour, wantPeriod: 2 * time.Hour, wantRenewable: true, wantPolicies: []string{}},
		{name: "period capped by explicit max", in: Entry{Period: 2 * time.Hour, ExplicitMaxTTL: time.Hour, Renewable: true},
			wantTTL: time.Hour, wantPeriod: time.Hour, wantRenewable: true, wantPolicies: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			in := tt.in
			e := f.create(t, &in)
			if !strings.HasPrefix(e.ID, "s.") || len(e.ID) != 26 {
				t.Errorf("ID has wrong shape (len %d)", len(e.ID))
			}
			if len(e.Accessor) != 24 {
				t.Errorf("accessor length %d", len(e.Accessor))
			}
			if e.TTL != tt.wantTTL || e.Period != tt.wantPeriod || e.Renewable != tt.wantRenewable {
				t.Errorf("TTL %v period %v renewable %v; want %v %v %v", e.TTL, e.Period, e.Renewable, tt.wantTTL, tt.wantPeriod, tt.wantRenewable)
			}
			if !slices.Equal(e.Policies, tt.wantPolicies) {
				t.Errorf("policies %q, want %q", e.Policies, tt.wantPolicies)
			}
			wantExpire := time.Time{}
			if tt.wantTTL > 0 {
				wantExpire = f.clock.Now().Add(tt.wantTTL)
			}
			if !e.ExpireTime.Equal(wantExpire) {
				t.Errorf("expire %v, want %v", e.ExpireTime, wantExpire)
			}
			if e.DisplayName != "token" || e.Path != "auth/token/create" || e.Type != TypeService {
				t.Errorf("defaults: %q %q %q", e.DisplayName, e.Path, e.Type)
			}
			got, err := f.s.Lookup(context.Background(), e.ID)
			if err != nil || got == nil {
				t.Fatalf("Lookup: %v %v", got, err)
			}
			if got.ID != e.ID || got.HashedID != e.HashedID || got.Accessor != e.Accessor ||
				!got.ExpireTime.Equal(e.ExpireTime) || !got.CreationTime.Equal(e.CreationTime) || got.TTL != e.TTL {
				t.Errorf("Lookup differs from Create")
			}
			byAcc, err := f.s.LookupAccessor(context.Background(), e.Accessor)
			if err != nil || byAcc == nil || byAcc.ID != "" || byAcc.HashedID != e.HashedID {
				t.Errorf("LookupAccessor: %v %v", byAcc, err)
			}
			if in.Policies != nil && &in.Policies[0] == &e.Policies[0] {
				t.Error("Create aliases the caller's slice")
			}
		})
	}
}

func TestCreateErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.s.Create(ctx, &Entry{ID: testRootID}); !errors.Is(err, ErrTokenExists) {
		t.Errorf("duplicate ID: %v", err)
	}
	if _, err := f.s.Create(ctx, &Entry{Type: "batch"}); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("batch: %v", err)
	}
	if _, err := f.s.Create(ctx, &Entry{NumUses: -1}); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("negative uses: %v", err)
	}
	if _, err := f.s.Create(ctx, &Entry{Parent: "nosuchparent"}); !errors.Is(err, ErrParentInvalid) {
		t.Errorf("unknown parent: %v", err)
	}
	if got, _ := f.s.Lookup(ctx, ""); got != nil {
		t.Error("empty ID found")
	}
	if got, _ := f.s.Lookup(ctx, "s.unknown"); got != nil {
		t.Error("unknown ID found")
	}
	if got, _ := f.s.LookupAccessor(ctx, "unknown"); got != nil {
		t.Error("unknown accessor found")
	}
}

func TestRenew(t *testing.T) {
	tests := []struct {
		name      string
		in        Entry
		advance   time.Duration
		increment time.Duration
		wantErr   error
		// wantExpire is relative to the creation time.
		wantExpire time.Duration
	}{
		{name: "increment", in: Entry{TTL: time.Hour, Renewable: true}, advance: 30 * time.Minute, increment: 2 * time.Hour,
			wantExpire: 150 * time.Minute},
		{name: "no increment uses creation ttl", in: Entry{TTL: time.Hour, Renewable: true}, advance: 30 * time.Minute,
			wantExpire: 90 * time.Minute},
		{name: "increment may shorten", in: Entry{TTL: time.Hour, Renewable: true}, advance: 10 * time.Minute, increment: time.Minute,
			wantExpire: 11 * time.Minute},
		{name: "capped by explicit max", in: Entry{TTL: time.Hour, ExplicitMaxTTL: 90 * time.Minute, Renewable: true},
			advance: 50 * time.Minute, increment: time.Hour, wantExpire: 90 * time.Minute},
		{name: "capped by max ttl", in: Entry{TTL: 20 * time.Hour, Renewable: true}, advance: 10 * time.Hour, increment: 20 * time.Hour,
			wantExpire: 24 * time.Hour},
		{name: "root exempt from max ttl", in: Entry{Policies: []string{"root"}, TTL: 20 * time.Hour, Renewable: true},
			advance: 10 * time.Hour, increment: 20 * time.Hour, wantExpire: 30 * time.Hour},
		{name: "periodic ignores increment", in: Entry{Period: time.Hour, Renewable: true}, advance: 30 * time.Minute,
			increment: 5 * time.Hour, wantExpire: 90 * time.Minute},
		{name: "periodic not bound by max ttl", in: Entry{Period: 20 * time.Hour, Renewable: true}, advance: 19 * time.Hour,
			wantExpire: 39 * time.Hour},
		{name: "periodic capped by explicit max", in: Entry{Period: time.Hour, ExplicitMaxTTL: 100 * time.Minute, Renewable: true},
			advance: 50 * time.Minute, wantExpire: 100 * time.Minute},
		{name: "not renewable", in: Entry{TTL: 1200 * time.Second, ExplicitMaxTTL: 1200 * time.Second}, advance: time.Minute,
			wantErr: ErrNotRenewable},
		{name: "no ttl unchanged", in: Entry{Policies: []string{"root"}}, advance: time.Hour, wantExpire: 0},
		{name: "expired", in: Entry{TTL: time.Minute, Renewable: true}, advance: time.Minute, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			in := tt.in
			e := f.create(t, &in)
			created := e.CreationTime
			f.clock.Advance(tt.advance)
			got, err := f.s.Renew(context.Background(), e, tt.increment)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := time.Time{}
			if tt.wantExpire > 0 {
				want = created.Add(tt.wantExpire)
			}
			if !got.ExpireTime.Equal(want) || got.ID != e.ID {
				t.Fatalf("expire %v, want %v", got.ExpireTime, want)
			}
			stored, _ := f.s.Lookup(context.Background(), e.ID)
			if stored == nil || !stored.ExpireTime.Equal(want) {
				t.Fatalf("stored expire differs: %v", stored)
			}
			// Exactly one expiry index key, in the right bucket.
			keys := keysWithPrefix(t, f.view, expiryPrefix)
			if want.IsZero() {
				if len(keys) != 0 {
					t.Fatalf("expiry keys %v", keys)
				}
			} else if len(keys) != 1 || keys[0] != expiryKey(want, e.HashedID) {
				t.Fatalf("expiry keys %v", keys)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.child(t, f.root, "a")
	if err := f.s.Revoke(ctx, e); err != nil {
		t.Fatal(err)
	}
	if f.valid(t, e) {
		t.Fatal("revoked token still valid")
	}
	if got, _ := f.s.LookupAccessor(ctx, e.Accessor); got != nil {
		t.Fatal("revoked token found by accessor")
	}
	if err := f.s.Revoke(ctx, e); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := f.s.Renew(ctx, e, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew of revoked: %v", err)
	}
	for _, k := range allKeys(t, f.view) {
		if strings.Contains(k, e.HashedID) {
			t.Errorf("key left after revoke: %s", k)
		}
	}
	if !f.valid(t, f.root) {
		t.Fatal("root revoked")
	}
}

func TestHashedStorage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tokens := []*Entry{f.root, f.child(t, f.root, "a"), f.create(t, &Entry{ID: "mycustomtokenvalue", Policies: []string{"b"}})}
	tokens = append(tokens, f.child(t, tokens[1], "a"))

	for _, k := range allKeys(t, f.view) {
		se, err := f.view.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tokens {
			if strings.Contains(k, e.ID) || bytes.Contains(se.Value, []byte(e.ID)) {
				t.Errorf("key %s or its value contains a token", k)
			}
			if strings.Contains(k, e.Accessor) {
				t.Errorf("key %s contains an accessor", k)
			}
		}
	}
	for _, e := range tokens {
		if e.HashedID != f.s.hash(e.ID) || len(e.HashedID) != 64 {
			t.Fatalf("HashedID is not the hex HMAC")
		}
		se, err := f.view.Get(ctx, idPrefix+e.HashedID)
		if err != nil || se == nil {
			t.Fatalf("no id/ entry: %v", err)
		}
		ai, err := f.view.Get(ctx, f.s.accessorKey(e.Accessor))
		if err != nil || ai == nil {
			t.Fatalf("no accessor index: %v", err)
		}
		var idx accessorIndex
		if err := ai.DecodeJSON(&idx); err != nil || idx.HashedID != e.HashedID || idx.Accessor != e.Accessor {
			t.Fatalf("accessor index %+v does not map to the hash", idx)
		}
	}
	salt, _ := f.view.Get(ctx, saltKey)
	if salt == nil || len(salt.Value) != saltLen {
		t.Fatal("salt missing")
	}
	// A second store on the same view reuses the salt and finds the tokens.
	s2, err := NewStore(ctx, f.view, Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s2.Lookup(ctx, tokens[1].ID); got == nil {
		t.Fatal("token not found after reopening the store")
	}
}

func TestNoSecretsInFormattingOrErrors(t *testing.T) {
	f := newFixture(t)
	e := f.child(t, f.root, "a")
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("x", "entry", e, "value", *e)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "entry", e)
	for _, out := range []string{
		fmt.Sprintf("%v %+v %#v %s %d %q %x", e, e, e, e, e, e, e),
		fmt.Sprintf("%v %+v %#v", *e, *e, *e),
		fmt.Errorf("wrapped: %v", e).Error(),
		buf.String(),
	} {
		if strings.Contains(out, e.ID) || strings.Contains(out, e.Accessor) {
			t.Fatalf("formatted entry leaks a credential: %s", out)
		}
	}
	b, _ := json.Marshal(e)
	if bytes.Contains(b, []byte(e.ID)) {
		t.Fatal("JSON form contains the token")
	}

	// Errors from failing storage name no token.
	// A failed Create leaves no index keys behind.
	before := len(allKeys(t, f.view))
	f.view.failPutOn.Store(idPrefix)
	_, err := f.s.Create(context.Background(), &Entry{ID: "mysecretcustomid", Parent: f.root.HashedID, TTL: time.Hour})
	if err == nil || strings.Contains(err.Error(), "mysecretcustomid") {
		t.Fatalf("error %v", err)
	}
	f.view.failPutOn.Store("")
	if after := len(allKeys(t, f.view)); after != before {
		t.Fatalf("failed create left %d keys", after-before)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, &Entry{TTL: 10 * time.Second, Renewable: true})
	other := f.create(t, &Entry{TTL: time.Hour})
	f.clock.Advance(9*time.Second + 999*time.Millisecond)
	if !f.valid(t, e) {
		t.Fatal("token invalid before its TTL")
	}
	f.clock.Advance(time.Millisecond)
	if f.valid(t, e) {
		t.Fatal("token valid at its expire time")
	}
	// Still stored until the sweeper runs.
	if se, _ := f.view.Get(ctx, idPrefix+e.HashedID); se == nil {
		t.Fatal("entry deleted by a lookup")
	}
	if err := f.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range allKeys(t, f.view) {
		if strings.Contains(k, e.HashedID) {
			t.Errorf("key left after sweep: %s", k)
		}
	}
	if !f.valid(t, other) {
		t.Fatal("sweeper revoked a live token")
	}
	if keys := keysWithPrefix(t, f.view, expiryPrefix); len(keys) != 1 {
		t.Fatalf("expiry index %v", keys)
	}
}

func TestExpirySubSecond(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.clock.Advance(-f.clock.Now().Sub(f.clock.Now().Truncate(time.Second))) // whole second
	f.clock.Advance(200 * time.Millisecond)
	e := f.create(t, &Entry{TTL: 5 * time.Second})
	f.clock.Advance(5*time.Second - 100*time.Millisecond) // same unix second as expiry, before it
	if err := f.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.valid(t, e) {
		t.Fatal("swept before expiry")
	}
	f.clock.Advance(200 * time.Millisecond)
	if err := f.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if se, _ := f.view.Get(ctx, idPrefix+e.HashedID); se != nil {
		t.Fatal("not swept after expiry")
	}
}

func TestSweepReadsOnlyWhenDue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.s.sweep(ctx); err != nil { // first sweep lists
		t.Fatal(err)
	}
	e := f.create(t, &Entry{TTL: 30 * time.Second})
	before := f.view.lists.Load()
	for range 20 {
		f.clock.Advance(time.Second)
		if err := f.s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.view.lists.Load() - before; n != 0 {
		t.Fatalf("sweeper listed %d times before anything was due", n)
	}
	f.clock.Advance(10 * time.Second)
	if err := f.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if f.view.lists.Load() == before {
		t.Fatal("sweeper did not list when due")
	}
	if se, _ := f.view.Get(ctx, idPrefix+e.HashedID); se != nil {
		t.Fatal("due token not swept")
	}
}

func TestRenewThenExpire(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, &Entry{TTL: 10 * time.Second, ExplicitMaxTTL: 25 * time.Second, Renewable: true})
	f.clock.Advance(8 * time.Second)
	if _, err := f.s.Renew(ctx, e, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(8 * time.Second) // t=16, would have expired at 10
	if err := f.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.valid(t, e) {
		t.Fatal("renewed token expired or swept")
	}
	r, err := f.s.Renew(ctx, e, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.CreationTime.Add(25 * time.Second); !r.ExpireTime.Equal(want) {
		t.Fatalf("renew went past the explicit max: %v want %v", r.ExpireTime, want)
	}
	f.clock.Advance(9 * time.Second) // t=25
	if f.valid(t, e) {
		t.Fatal("token valid past its explicit max TTL")
	}
	if err := f.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := keysWithPrefix(t, f.view, idPrefix); len(keys) != 1 { // only root
		t.Fatalf("entries left: %v", keys)
	}
	if keys := keysWithPrefix(t, f.view, expiryPrefix); len(keys) != 0 {
		t.Fatalf("expiry keys left: %v", keys)
	}
}

func TestRunRevokesInBackground(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	viaLookup := f.create(t, &Entry{TTL: 10 * time.Second})
	viaSweep := f.create(t, &Entry{TTL: 10 * time.Second})
	f.clock.Advance(11 * time.Second)
	if f.valid(t, viaLookup) { // queues it for Run
		t.Fatal("expired token valid")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a, _ := f.view.Get(context.Background(), idPrefix+viaLookup.HashedID)
		b, _ := f.view.Get(context.Background(), idPrefix+viaSweep.HashedID)
		if a == nil && b == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("Run did not revoke expired tokens")
}

// tree builds root → a → b → c and root → sibling.
func tree(t *testing.T, f *fixture) (a, b, c, sibling *Entry) {
	a = f.child(t, f.root, "p")
	b = f.child(t, a, "p")
	c = f.child(t, b, "p")
	sibling = f.child(t, f.root, "p")
	return
}

func TestRevokeTree(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b, c, sibling := tree(t, f)
	if err := f.s.Revoke(ctx, a); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Entry{a, b, c} {
		if f.valid(t, e) {
			t.Fatal("descendant still valid")
		}
		for _, k := range allKeys(t, f.view) {
			if strings.Contains(k, e.HashedID) {
				t.Errorf("key left: %s", k)
			}
		}
	}
	if !f.valid(t, f.root) || !f.valid(t, sibling) {
		t.Fatal("revoke reached outside the tree")
	}
}

func TestDescendantsFailAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b, c, _ := tree(t, f)
	// Only the first step of a revocation: mark a. Nothing deleted yet.
	if err := f.s.mark(ctx, a.HashedID); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Entry{a, b, c} {
		if f.valid(t, e) {
			t.Fatal("descendant of a marked token is valid")
		}
		if got, _ := f.s.LookupAccessor(ctx, e.Accessor); got != nil {
			t.Fatal("descendant found by accessor")
		}
		if _, err := f.s.Renew(ctx, e, 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("renew: %v", err)
		}
	}
	// The background revoker finishes the job.
	drain(t, f)
	if keys := keysWithPrefix(t, f.view, idPrefix); len(keys) != 2 {
		t.Fatalf("entries left: %d", len(keys))
	}

	// An expired parent disables its children too.
	p := f.create(t, &Entry{TTL: 10 * time.Second, Parent: f.root.HashedID})
	ch := f.create(t, &Entry{TTL: time.Hour, Parent: p.HashedID})
	f.clock.Advance(10 * time.Second)
	if f.valid(t, ch) {
		t.Fatal("child of an expired parent is valid")
	}
	if _, err := f.s.Create(ctx, &Entry{Parent: p.HashedID}); !errors.Is(err, ErrParentInvalid) {
		t.Fatalf("child of expired parent created: %v", err)
	}
}

// drain runs the background revocations lookups queued.
func drain(t *testing.T, f *fixture) {
	t.Helper()
	for {
		select {
		case h := <-f.s.revokeQ:
			if err := f.s.revokeIfInvalid(context.Background(), h); err != nil {
				t.Fatal(err)
			}
		default:
			return
		}
	}
}

func TestRevokeOrphan(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b, c, _ := tree(t, f)
	if err := f.s.RevokeOrphan(ctx, b); err != nil {
		t.Fatal(err)
	}
	if f.valid(t, b) {
		t.Fatal("revoked token valid")
	}
	if !f.valid(t, a) || !f.valid(t, c) {
		t.Fatal("parent or child lost")
	}
	got, _ := f.s.Lookup(ctx, c.ID)
	if got.Parent != "" {
		t.Fatal("child not orphaned")
	}
	if keys := keysWithPrefix(t, f.view, parentPrefix+b.HashedID+"/"); len(keys) != 0 {
		t.Fatalf("parent index of b left: %v", keys)
	}
	// Revoking a now leaves c alone.
	if err := f.s.Revoke(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !f.valid(t, c) {
		t.Fatal("orphan revoked with its former grandparent")
	}
}

func TestDanglingChildIsRevoked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b, _, _ := tree(t, f)
	// Simulate a crash that deleted a's entry but left its children; the
	// restarted process starts with an empty cache.
	if err := f.view.Delete(ctx, idPrefix+a.HashedID); err != nil {
		t.Fatal(err)
	}
	f.s.cache.invalidate(a.HashedID)
	if f.valid(t, b) {
		t.Fatal("child of a deleted parent is valid")
	}
	drain(t, f)
	if se, _ := f.view.Get(ctx, idPrefix+b.HashedID); se != nil {
		t.Fatal("dangling child not revoked")
	}
}

func TestNumUses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, &Entry{NumUses: 3, Parent: f.root.HashedID})
	child := f.create(t, &Entry{Parent: e.HashedID})
	for want := 2; want >= 0; want-- {
		cur, _ := f.s.Lookup(ctx, e.ID)
		if cur == nil {
			t.Fatalf("token gone with %d uses left", want+1)
		}
		got, err := f.s.UseToken(ctx, cur)
		if err != nil || got == nil {
			t.Fatalf("UseToken: %v %v", got, err)
		}
		if got.NumUses != want || got.ID != e.ID {
			t.Fatalf("uses left %d, want %d", got.NumUses, want)
		}
	}
	if f.valid(t, e) || f.valid(t, child) {
		t.Fatal("exhausted token (or its child) still valid")
	}
	if got, err := f.s.UseToken(ctx, e); got != nil || err != nil {
		t.Fatalf("use after exhaustion: %v %v", got, err)
	}
	if keys := keysWithPrefix(t, f.view, idPrefix); len(keys) != 1 {
		t.Fatalf("entries left: %d", len(keys))
	}
	// Unlimited tokens are returned as they are.
	u := f.child(t, f.root)
	if got, _ := f.s.UseToken(ctx, u); got != u {
		t.Fatal("unlimited token changed")
	}
}
