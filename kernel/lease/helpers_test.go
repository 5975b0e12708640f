package lease

import (
	"context"
	"errors"
	"sort"
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
	// Mid-second on purpose: leases expire to the nanosecond, buckets are
	// whole seconds.
	return &fakeClock{t: time.Date(2026, 11, 24, 4, 38, 46, 377714191, time.UTC)}
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

// countingStorage wraps a BatchStorage, counts reads, and can fail.
type countingStorage struct {
	logical.BatchStorage
	gets, lists, listed, writes atomic.Int64
	failWrites                  atomic.Bool
}

var _ logical.BatchStorage = (*countingStorage)(nil)

var errInjected = errors.New("injected storage failure")

func newCountingStorage() *countingStorage {
	return &countingStorage{BatchStorage: logical.NewInmemStorage()}
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.gets.Add(1)
	return c.BatchStorage.Get(ctx, key)
}

func (c *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists.Add(1)
	keys, err := c.BatchStorage.List(ctx, prefix)
	c.listed.Add(int64(len(keys)))
	return keys, err
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if c.failWrites.Load() {
		return errInjected
	}
	c.writes.Add(1)
	return c.BatchStorage.Put(ctx, e)
}

func (c *countingStorage) Delete(ctx context.Context, key string) error {
	if c.failWrites.Load() {
		return errInjected
	}
	c.writes.Add(1)
	return c.BatchStorage.Delete(ctx, key)
}

func (c *countingStorage) Batch(ctx context.Context, ops []logical.StorageOp) error {
	if c.failWrites.Load() {
		return errInjected
	}
	c.writes.Add(1)
	return c.BatchStorage.Batch(ctx, ops)
}

func (c *countingStorage) resetCounts() {
	c.gets.Store(0)
	c.lists.Store(0)
	c.listed.Store(0)
	c.writes.Store(0)
}

// keys returns every key in storage, sorted.
func (c *countingStorage) keys(t testing.TB) []string {
	t.Helper()
	keys, err := logical.CollectKeys(context.Background(), c.BatchStorage, "")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// fakeBackend records calls and fails on demand.
type fakeBackend struct {
	mu        sync.Mutex // protects the fields below
	revoked   map[string]int
	renewed   map[string]int
	revokeErr error // returned by RevokeSecret when set
	renewErr  error
	// answer builds the renewal answer; nil answers the lease's secret
	// unchanged (TTL 0: increment or current TTL).
	answer func(e *Entry, inc time.Duration) *logical.Secret
	// block, when set, is waited on by RevokeSecret.
	block chan struct{}

	revokeCalls atomic.Int64
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{revoked: map[string]int{}, renewed: map[string]int{}}
}

func (b *fakeBackend) RenewSecret(_ context.Context, e *Entry, inc time.Duration) (*logical.Secret, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.renewErr != nil {
		return nil, b.renewErr
	}
	b.renewed[e.ID]++
	if b.answer != nil {
		return b.answer(e, inc), nil
	}
	s := e.Secret()
	s.TTL = 0
	return s, nil
}

func (b *fakeBackend) RevokeSecret(ctx context.Context, e *Entry) error {
	b.revokeCalls.Add(1)
	b.mu.Lock()
	block := b.block
	b.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.revokeErr != nil {
		return b.revokeErr
	}
	b.revoked[e.ID]++
	return nil
}

func (b *fakeBackend) setRevokeErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.revokeErr = err
}

func (b *fakeBackend) revokedCount(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.revoked[id]
}

func (b *fakeBackend) totalRevoked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.revoked {
		n += c
	}
	return n
}

type fixture struct {
	m       *Manager
	view    *countingStorage
	clock   *fakeClock
	backend *fakeBackend
	opts    Options
}

func newFixture(t testing.TB, mod ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{view: newCountingStorage(), clock: newFakeClock(), backend: newFakeBackend()}
	f.opts = Options{Backend: f.backend, Now: f.clock.Now, RetryBase: 10 * time.Second, RetryMax: time.Minute, MaxAttempts: 4}
	for _, fn := range mod {
		fn(&f.opts)
	}
	m, err := New(f.view, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

// reopen returns a new Manager over the same storage, as after a restart.
func (f *fixture) reopen(t testing.TB) *Manager {
	t.Helper()
	m, err := New(f.view, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return m
}

func (f *fixture) register(t testing.TB, path string, ttl, maxTTL time.Duration, tokenHash string) *Entry {
	t.Helper()
	e, err := f.m.Register(context.Background(), Registration{
		MountPoint: "database/", MountAccessor: "database_1234", Path: path,
		Secret:    &logical.Secret{TTL: ttl, MaxTTL: maxTTL, Renewable: true, InternalData: map[string]any{"username": "v-ro-Q7"}},
		TokenHash: tokenHash,
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return e
}

func (f *fixture) sweep(t testing.TB) {
	t.Helper()
	if err := f.m.sweep(context.Background()); err != nil {
		t.Fatalf("sweep: %v", err)
	}
}

func (f *fixture) exists(t testing.TB, id string) bool {
	t.Helper()
	_, err := f.m.Lookup(context.Background(), id)
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrNotFound):
		return false
	}
	t.Fatalf("Lookup: %v", err)
	return false
}

// keysUnder returns the stored keys starting with prefix.
func (f *fixture) keysUnder(t testing.TB, prefix string) []string {
	t.Helper()
	var out []string
	for _, k := range f.view.keys(t) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}
