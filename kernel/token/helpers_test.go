package token

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 24, 4, 38, 46, 977714191, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testRootID = "devroottoken"

type fixture struct {
	s     *Store
	view  *countingStorage
	clock *fakeClock
	root  *Entry
}

// newFixture returns a store with DefaultTTL 1h, MaxTTL 24h and a root token.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	clock := newFakeClock()
	view := &countingStorage{Storage: logical.NewInmemStorage()}
	s, err := NewStore(context.Background(), view, Options{Now: clock.Now, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	root, err := s.Create(context.Background(), &Entry{ID: testRootID, Policies: []string{"root"}, Path: "auth/token/root"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, view: view, clock: clock, root: root}
}

func (f *fixture) create(t testing.TB, e *Entry) *Entry {
	t.Helper()
	out, err := f.s.Create(context.Background(), e)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return out
}

// child creates a token with the given policies under parent.
func (f *fixture) child(t testing.TB, parent *Entry, policies ...string) *Entry {
	t.Helper()
	return f.create(t, &Entry{Policies: policies, Parent: parent.HashedID, Renewable: true})
}

func (f *fixture) valid(t testing.TB, e *Entry) bool {
	t.Helper()
	got, err := f.s.Lookup(context.Background(), e.ID)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return got != nil
}

// call sends one request to the backend as caller.
func (f *fixture) call(caller *Entry, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	ctx := context.Background()
	if caller != nil {
		ctx = NewContext(ctx, caller)
	}
	return f.s.Backend().HandleRequest(ctx, &logical.Request{
		Operation: op, Path: path, Data: data, Storage: f.view, MountPoint: "auth/token/",
	})
}

// createVia creates a token through the backend and returns its entry.
func (f *fixture) createVia(t testing.TB, caller *Entry, data map[string]any) *Entry {
	t.Helper()
	resp, err := f.call(caller, logical.UpdateOperation, "create", data)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	id := resp.Data["auth"].(map[string]any)["client_token"].(string)
	e, err := f.s.Lookup(context.Background(), id)
	if err != nil || e == nil {
		t.Fatalf("lookup of created token: %v %v", e, err)
	}
	return e
}

// countingStorage counts List calls and can fail writes under a prefix.
type countingStorage struct {
	logical.Storage
	lists     atomic.Int64
	failPutOn atomic.Value // string prefix; "" = never
}

func (c *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists.Add(1)
	return c.Storage.List(ctx, prefix)
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if p, _ := c.failPutOn.Load().(string); p != "" && strings.HasPrefix(e.Key, p) {
		return logical.Errorf(logical.CodeUnavailable, "storage unavailable for key %s", e.Key)
	}
	return c.Storage.Put(ctx, e)
}

func allKeys(t testing.TB, s logical.Storage) []string {
	t.Helper()
	keys, err := logical.CollectKeys(context.Background(), s, "")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func keysWithPrefix(t testing.TB, s logical.Storage, prefix string) []string {
	t.Helper()
	var out []string
	for _, k := range allKeys(t, s) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}
