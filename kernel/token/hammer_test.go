package token

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHammerCreateRevoke runs creates (children and grandchildren),
// lookups, renewals and revocations concurrently, then checks that storage
// holds no token below a revoked parent and no dangling index key.
func TestHammerCreateRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const parents, workers, perWorker = 4, 8, 60
	ps := make([]*Entry, parents)
	for i := range ps {
		ps[i] = f.create(t, &Entry{Policies: []string{"p"}, Parent: f.root.HashedID, Renewable: true, TTL: time.Hour})
	}
	var revoked [parents]atomic.Bool
	var created, refused atomic.Int64

	var wg sync.WaitGroup
	errc := make(chan error, workers+1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []*Entry
			for range perWorker {
				var parent *Entry
				if len(mine) > 0 && r.IntN(3) == 0 {
					parent = mine[r.IntN(len(mine))]
				} else {
					parent = ps[r.IntN(parents)]
				}
				e, err := f.s.Create(ctx, &Entry{Parent: parent.HashedID, Renewable: true, TTL: time.Hour})
				switch {
				case errors.Is(err, ErrParentInvalid):
					refused.Add(1)
					continue
				case err != nil:
					errc <- err
					return
				}
				created.Add(1)
				mine = append(mine, e)
				if _, err := f.s.Lookup(ctx, e.ID); err != nil {
					errc <- err
					return
				}
				x := mine[r.IntN(len(mine))]
				switch r.IntN(4) {
				case 0:
					if err := f.s.Revoke(ctx, x); err != nil {
						errc <- err
						return
					}
				case 1:
					if _, err := f.s.Renew(ctx, x, time.Duration(r.IntN(100)+1)*time.Minute); err != nil &&
						!errors.Is(err, ErrNotFound) {
						errc <- err
						return
					}
				case 2:
					if err := f.s.RevokeOrphan(ctx, x); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range parents - 1 { // keep the last parent alive
			time.Sleep(time.Duration(i+1) * 2 * time.Millisecond)
			revoked[i].Store(true)
			if err := f.s.Revoke(ctx, ps[i]); err != nil {
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
	drain(t, f)
	t.Logf("created %d, refused under revoked parents %d", created.Load(), refused.Load())

	checkStorageInvariants(t, f)
	for i := range parents - 1 {
		if f.valid(t, ps[i]) {
			t.Fatal("revoked parent valid")
		}
	}
	if !f.valid(t, ps[parents-1]) {
		t.Fatal("surviving parent revoked")
	}
}

// checkStorageInvariants: every stored entry is valid (its chain is
// intact), and every index key points at stored entries.
func checkStorageInvariants(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	exists := func(h string) bool {
		e, err := f.s.get(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return e != nil
	}
	for _, k := range allKeys(t, f.view) {
		switch {
		case strings.HasPrefix(k, idPrefix):
			h := strings.TrimPrefix(k, idPrefix)
			e, err := f.s.loadValid(ctx, h)
			if err != nil || e == nil {
				t.Errorf("stored entry is not valid (revoked parent left a child?): %v", err)
			}
		case strings.HasPrefix(k, parentPrefix):
			parts := strings.Split(strings.TrimPrefix(k, parentPrefix), "/")
			if !exists(parts[0]) || !exists(parts[1]) {
				t.Errorf("dangling parent index key")
			}
			if e, _ := f.s.get(ctx, parts[1]); e != nil && e.Parent != parts[0] {
				t.Errorf("parent index disagrees with the child's Parent")
			}
		case strings.HasPrefix(k, accessorPrefix):
			se, _ := f.view.Get(ctx, k)
			var ai accessorIndex
			if err := se.DecodeJSON(&ai); err != nil || !exists(ai.HashedID) {
				t.Errorf("dangling accessor index key")
			}
		case strings.HasPrefix(k, expiryPrefix):
			parts := strings.Split(strings.TrimPrefix(k, expiryPrefix), "/")
			e, _ := f.s.get(ctx, parts[1])
			if e == nil || fmt.Sprintf("%020d", e.ExpireTime.Unix()) != parts[0] {
				t.Errorf("stale expiry index key")
			}
		}
	}
}

// TestHammerUseToken: concurrent uses never exceed num_uses.
func TestHammerUseToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const uses, workers = 50, 100
	e := f.create(t, &Entry{NumUses: uses, Parent: f.root.HashedID})
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f.s.UseToken(ctx, e)
			if err != nil {
				t.Error(err)
			}
			if got != nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != uses {
		t.Fatalf("%d uses granted, want %d", ok.Load(), uses)
	}
	if f.valid(t, e) {
		t.Fatal("exhausted token valid")
	}
}

// TestHammerRenewVsRevoke: a renewal racing a revocation never brings the
// token back.
func TestHammerRenewVsRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 50 {
		e := f.create(t, &Entry{TTL: time.Hour, Renewable: true, Parent: f.root.HashedID})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					_, _ = f.s.Renew(ctx, e, time.Minute)
					_, _ = f.s.UseToken(ctx, e)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.s.Revoke(ctx, e); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if se, _ := f.view.Get(ctx, idPrefix+e.HashedID); se != nil {
			t.Fatal("revoked token resurrected")
		}
	}
	checkStorageInvariants(t, f)
}

func BenchmarkLookup(b *testing.B) {
	for _, depth := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			f := newFixture(b)
			e := f.root
			for range depth {
				e = f.child(b, e, "p")
			}
			// Some unrelated tokens so storage is not trivially small.
			for range 1000 {
				f.child(b, f.root, "q")
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				got, err := f.s.Lookup(ctx, e.ID)
				if err != nil || got == nil {
					b.Fatal("lookup failed")
				}
			}
		})
	}
}

// TestHammerSpendLastUse: of concurrent spends of a token's last use,
// exactly one gets it; the token then fails lookups but stays stored
// (with its children) until the caller revokes it, and the revocation
// reports it and its child to the Revoked hook.
func TestHammerSpendLastUse(t *testing.T) {
	f := newFixture(t)
	var gone sync.Map
	f.s.revoked = func(_ context.Context, h string) { gone.Store(h, true) }
	ctx := context.Background()
	for range 20 {
		e := f.create(t, &Entry{NumUses: 1, Parent: f.root.HashedID})
		child := f.create(t, &Entry{Parent: e.HashedID})
		var wins atomic.Int64
		var winner atomic.Pointer[Entry]
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, last, err := f.s.SpendUse(ctx, e)
				if err != nil {
					t.Error(err)
				}
				if got != nil {
					if !last || got.NumUses != 0 || got.ID != e.ID {
						t.Errorf("spent entry: last=%v uses=%d", last, got.NumUses)
					}
					wins.Add(1)
					winner.Store(got)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d spends of the last use succeeded", wins.Load())
		}
		if f.valid(t, e) || f.valid(t, child) {
			t.Fatal("a spent token (or its child) is still valid")
		}
		if ok, _ := f.s.ExistsHashed(ctx, e.HashedID); !ok {
			t.Fatal("SpendUse revoked the token itself")
		}
		if err := f.s.Revoke(ctx, winner.Load()); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{e.HashedID, child.HashedID} {
			if ok, _ := f.s.ExistsHashed(ctx, h); ok {
				t.Fatal("revoked token still stored")
			}
			if _, ok := gone.Load(h); !ok {
				t.Fatal("revocation not reported to the hook")
			}
		}
	}
	checkStorageInvariants(t, f)
}
