package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// countingStorage counts the storage calls a backend makes, by kind of key.
type countingStorage struct {
	logical.Storage
	mu   sync.Mutex // protects the fields below
	gets map[string]int
	puts map[string]int
}

func newCountingStorage(s logical.Storage) *countingStorage {
	return &countingStorage{Storage: s, gets: map[string]int{}, puts: map[string]int{}}
}

// keyKind names the part of the layout a storage key belongs to.
func keyKind(key string) string {
	switch {
	case key == configKey:
		return "config"
	case strings.HasPrefix(key, metaPrefix):
		return "meta"
	case strings.HasPrefix(key, versionPrefix):
		return "ver"
	}
	return "other"
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.mu.Lock()
	c.gets[keyKind(key)]++
	c.mu.Unlock()
	return c.Storage.Get(ctx, key)
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.mu.Lock()
	c.puts[keyKind(e.Key)]++
	c.mu.Unlock()
	return c.Storage.Put(ctx, e)
}

// reset returns the counts so far and zeroes them.
func (c *countingStorage) reset() (gets, puts map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gets, puts = c.gets, c.puts
	c.gets, c.puts = map[string]int{}, map[string]int{}
	return gets, puts
}

// doOn sends one request to e's backend over storage s.
func (e *env) doOn(s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: s, MountPoint: "secret/",
	})
}

// replica returns a second backend on e's storage and clock: another
// kernel replica serving the same mount, with a cache of its own.
func (e *env) replica() *env {
	e.tb.Helper()
	b, err := newBackend(&logical.BackendConfig{
		StorageView: e.s, Config: map[string]string{"version": "2"}, MountPoint: "secret/", MountType: "kv",
	}, e.clock.Now)
	if err != nil {
		e.tb.Fatalf("newBackend: %v", err)
	}
	return &env{tb: e.tb, b: b, s: e.s, clock: e.clock}
}

// A read of a cached key asks storage for the version record only; a write
// of a cached key asks storage for nothing.
func TestCacheSavesStorageGets(t *testing.T) {
	e := newEnv(t, "2")
	e.write("app/db", map[string]any{"a": "1"})
	// A fresh backend starts cold, as after a plugin restart.
	cold := e.replica()
	cs := newCountingStorage(e.s)
	do := func(op logical.Operation, path string, data map[string]any) *logical.Response {
		t.Helper()
		resp, err := cold.doOn(cs, op, path, data)
		if err != nil {
			t.Fatalf("%s %s: %v", op, path, err)
		}
		return resp
	}

	do(logical.ReadOperation, "data/app/db", nil)
	if gets, _ := cs.reset(); !reflect.DeepEqual(gets, map[string]int{"meta": 1, "ver": 1}) {
		t.Fatalf("first read: gets %v, want one meta and one ver", gets)
	}
	resp := do(logical.ReadOperation, "data/app/db", nil)
	if gets, _ := cs.reset(); !reflect.DeepEqual(gets, map[string]int{"ver": 1}) {
		t.Fatalf("second read: gets %v, want exactly one ver", gets)
	}
	if wire(t, resp)["data"].(map[string]any)["a"] != "1" {
		t.Fatalf("second read: %+v", resp.Data)
	}
	do(logical.ReadOperation, "metadata/app/db", nil)
	if gets, _ := cs.reset(); len(gets) != 0 {
		t.Fatalf("metadata read: gets %v, want none", gets)
	}

	// The first write reads the config once; later ones read nothing.
	do(logical.UpdateOperation, "data/app/db", map[string]any{"data": map[string]any{"a": "2"}})
	if gets, puts := cs.reset(); !reflect.DeepEqual(gets, map[string]int{"config": 1}) ||
		!reflect.DeepEqual(puts, map[string]int{"meta": 1, "ver": 1}) {
		t.Fatalf("first write: gets %v puts %v", gets, puts)
	}
	for i := range 3 {
		do(logical.UpdateOperation, "data/app/db", map[string]any{"data": map[string]any{"a": i}})
		do(logical.UpdateOperation, "metadata/app/db", map[string]any{"custom_metadata": map[string]any{"i": fmt.Sprint(i)}})
		do(logical.UpdateOperation, "delete/app/db", map[string]any{"versions": []any{2}})
		if gets, _ := cs.reset(); len(gets) != 0 {
			t.Fatalf("writes of a cached key: gets %v, want none", gets)
		}
	}
	// The write was seen by the read that follows, and by a cold backend.
	resp = do(logical.ReadOperation, "data/app/db", nil)
	if got := wire(t, resp); got["metadata"].(map[string]any)["version"] != 5.0 || got["data"].(map[string]any)["a"] != 2.0 {
		t.Fatalf("read after writes: %v", got)
	}
	assertCacheMatchesStorage(t, cold)
	cs.reset()

	// A missing key is remembered as missing until something writes it.
	do(logical.ReadOperation, "data/none", nil)
	do(logical.ReadOperation, "data/none", nil)
	if gets, _ := cs.reset(); !reflect.DeepEqual(gets, map[string]int{"meta": 1}) {
		t.Fatalf("reads of a missing key: gets %v, want one meta", gets)
	}
	do(logical.UpdateOperation, "data/none", map[string]any{"data": map[string]any{"a": "x"}})
	if resp := do(logical.ReadOperation, "data/none", nil); resp == nil {
		t.Fatal("key written after a cached miss reads as missing")
	}
	// Deleting the metadata drops the key from the cache.
	do(logical.DeleteOperation, "metadata/none", nil)
	if resp := do(logical.ReadOperation, "data/none", nil); resp != nil {
		t.Fatalf("read after metadata delete: %+v", resp.Data)
	}
}

// The config is cached too, and its writes go through the cache.
func TestCacheConfig(t *testing.T) {
	e := newEnv(t, "2")
	cs := newCountingStorage(e.s)
	do := func(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
		return e.doOn(cs, op, path, data)
	}
	if _, err := do(logical.UpdateOperation, "config", map[string]any{"max_versions": 2.0}); err != nil {
		t.Fatal(err)
	}
	cs.reset()
	resp, err := do(logical.ReadOperation, "config", nil)
	if err != nil || resp.Data["max_versions"] != 2 {
		t.Fatalf("config read: %+v, %v", resp, err)
	}
	if _, err := do(logical.UpdateOperation, "config", map[string]any{"cas_required": true}); err != nil {
		t.Fatal(err)
	}
	if gets, _ := cs.reset(); len(gets) != 0 {
		t.Fatalf("config read and write: gets %v, want none", gets)
	}
	if _, err := do(logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"a": "1"}}); !errors.Is(err, errCASRequired) {
		t.Fatalf("write after cas_required: %v", err)
	}
	resp, _ = do(logical.ReadOperation, "config", nil)
	if resp.Data["max_versions"] != 2 || resp.Data["cas_required"] != true {
		t.Fatalf("config = %v", resp.Data)
	}
}

// A change made behind the backend (another replica) is seen once the host
// invalidates the key. Until then a read may return the old metadata: that
// is the documented contract (doc.go), and this test pins it so that the
// cache is known to be in use.
func TestCacheInvalidateKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "2")
	e.write("app/db", map[string]any{"a": "1"})
	e.ok(logical.UpdateOperation, "metadata/app/db", map[string]any{"custom_metadata": map[string]any{"owner": "a"}})
	owner := func() any {
		t.Helper()
		md := wire(t, e.ok(logical.ReadOperation, "data/app/db", nil))["metadata"].(map[string]any)
		return md["custom_metadata"].(map[string]any)["owner"]
	}
	if got := owner(); got != "a" {
		t.Fatalf("owner = %v", got)
	}

	// Write the metadata directly into storage, as another replica would.
	m, err := decodeMeta(ctx, e.s, "app/db")
	if err != nil || m == nil {
		t.Fatalf("decodeMeta: %v, %v", m, err)
	}
	m.CustomMetadata = map[string]string{"owner": "b"}
	m.CurrentMetadataVersion++
	if err := putJSON(ctx, e.s, metaKey("app/db"), m); err != nil {
		t.Fatal(err)
	}
	if got := owner(); got != "a" {
		t.Fatalf("before invalidation: owner = %v; the cache should still serve the old record", got)
	}
	e.b.InvalidateKey(ctx, "meta/app/db")
	if got := owner(); got != "b" {
		t.Fatalf("after invalidation: owner = %v, want b", got)
	}

	// Another replica writes a new version and changes the config.
	other := e.replica()
	other.write("app/db", map[string]any{"a": "2"})
	other.ok(logical.UpdateOperation, "config", map[string]any{"cas_required": true})
	if got := e.ok(logical.ReadOperation, "data/app/db", nil).Data["metadata"].(map[string]any)["version"]; got != 1 {
		t.Fatalf("before invalidation: version %v; the cache should still serve the old record", got)
	}
	e.b.InvalidateKey(ctx, "ver/app/db/2") // version records are not cached: no effect
	e.b.InvalidateKey(ctx, "meta/app/db")
	if got := e.ok(logical.ReadOperation, "data/app/db", nil).Data["metadata"].(map[string]any)["version"]; got != 2 {
		t.Fatalf("after invalidation: version %v, want 2", got)
	}
	e.write("app/db", map[string]any{"a": "3"}) // stale config: cas_required not seen yet
	e.b.InvalidateKey(ctx, "config")
	e.fails(logical.UpdateOperation, "data/app/db", map[string]any{"data": map[string]any{"a": "4"}},
		logical.CodeInvalidRequest, "check-and-set parameter required")
}

// InvalidateKey drops exactly the record a key names, and everything when
// it cannot tell.
func TestCacheInvalidateRouting(t *testing.T) {
	tests := []struct {
		key        string
		keep       []string // cached keys that survive
		keepConfig bool
	}{
		{"meta/a", []string{"b", "a/b"}, true},
		{"meta/a/b", []string{"a", "b"}, true},
		{"config", []string{"a", "b", "a/b"}, false},
		{"ver/a/1", []string{"a", "b", "a/b"}, true},
		{"ver/a/b", []string{"a", "b", "a/b"}, true},
		{"meta/a/", nil, false},
		{"meta/", nil, false},
		{"meta/a//b", nil, false},
		{"", nil, false},
		{"entry/a", nil, false},
		{"something/else", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			e := newEnv(t, "2")
			for _, k := range []string{"a", "b", "a/b"} {
				e.write(k, map[string]any{"k": k})
			}
			e.ok(logical.ReadOperation, "config", nil)
			e.b.InvalidateKey(context.Background(), tt.key)
			var kept []string
			for _, k := range []string{"a", "b", "a/b"} {
				if _, hit, _ := e.b.cache.lookup(k); hit {
					kept = append(kept, k)
				}
			}
			_, cfgHit, _ := e.b.cache.lookupConfig()
			if strings.Join(kept, ",") != strings.Join(tt.keep, ",") || cfgHit != tt.keepConfig {
				t.Fatalf("kept %v config %v; want %v config %v", kept, cfgHit, tt.keep, tt.keepConfig)
			}
		})
	}
	// A v1 mount caches nothing and ignores invalidations.
	e := newEnv(t, "1")
	e.ok(logical.UpdateOperation, "a", map[string]any{"x": "y"})
	e.b.InvalidateKey(context.Background(), "a")
	if e.b.cache.size() != 0 {
		t.Fatal("v1 mount cached metadata")
	}
	// "Everything changed" (a WASM host that could not list the keys)
	// drops every record and the config, on either version.
	for _, v := range []string{"1", "2"} {
		e := newEnv(t, v)
		if v == "2" {
			e.write("a", map[string]any{"k": "a"})
			e.ok(logical.ReadOperation, "config", nil)
		}
		ia, ok := logical.Backend(e.b).(logical.AllInvalidator)
		if !ok || !ia.InvalidateAll(context.Background()) {
			t.Fatalf("v%s: no InvalidateAll", v)
		}
		if _, cfgHit, _ := e.b.cache.lookupConfig(); e.b.cache.size() != 0 || cfgHit {
			t.Fatalf("v%s: InvalidateAll kept %d records (config %v)", v, e.b.cache.size(), cfgHit)
		}
	}
}

// Nobody can change a cached record through what the cache returns or
// what it was given.
func TestCacheReturnsCopies(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "2")
	e.ok(logical.UpdateOperation, "config", map[string]any{"delete_version_after": "1h"})
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"o": "a"}})
	e.write("k", map[string]any{"a": "1"})
	e.write("k", map[string]any{"a": "2"})
	want := wire(t, e.ok(logical.ReadOperation, "metadata/k", nil))

	m, err := e.b.readMeta(ctx, e.s, "k")
	if err != nil || m == nil {
		t.Fatalf("readMeta: %v, %v", m, err)
	}
	m.CurrentVersion = 99
	m.CustomMetadata["o"] = "changed"
	m.CustomMetadata["new"] = "x"
	m.Versions[1].Destroyed = true
	*m.Versions[2].DeletionTime = time.Time{}
	delete(m.Versions, 1)
	m.Versions[7] = &versionMetadata{}
	if got := wire(t, e.ok(logical.ReadOperation, "metadata/k", nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("cached record changed through a returned copy:\n%v\nwant %v", got, want)
	}

	// The same for the record a writer hands to the cache.
	m, _ = e.b.readMeta(ctx, e.s, "k")
	if err := e.b.writeMeta(ctx, e.s, "k", m); err != nil {
		t.Fatal(err)
	}
	m.CustomMetadata["o"] = "changed"
	*m.Versions[2].DeletionTime = time.Time{}
	if got := wire(t, e.ok(logical.ReadOperation, "metadata/k", nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("cached record changed through a stored copy:\n%v\nwant %v", got, want)
	}

	// And for the config.
	c, _ := e.b.readConfig(ctx, e.s)
	c.DeleteVersionAfter = 0
	if got := e.ok(logical.ReadOperation, "config", nil).Data["delete_version_after"]; got != "1h0m0s" {
		t.Fatalf("cached config changed through a returned copy: %v", got)
	}
}

// failingGets fails every Get while fail is set.
type failingGets struct {
	logical.Storage
	mu   sync.Mutex // protects fail
	fail bool
}

func (f *failingGets) set(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *failingGets) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, errInjected
	}
	return f.Storage.Get(ctx, key)
}

// A storage error is never cached, and a failed write leaves no entry.
func TestCacheStorageErrors(t *testing.T) {
	e := newEnv(t, "2")
	e.replica().write("k", map[string]any{"a": "1"}) // in storage, not in e's cache
	fs := &failingGets{Storage: e.s, fail: true}
	for _, path := range []string{"data/k", "metadata/k", "config"} {
		if _, err := e.doOn(fs, logical.ReadOperation, path, nil); !errors.Is(err, errInjected) {
			t.Fatalf("read %s with failing storage: %v", path, err)
		}
	}
	if _, hit, _ := e.b.cache.lookup("k"); hit {
		t.Fatal("failed metadata read was cached")
	}
	if _, hit, _ := e.b.cache.lookupConfig(); hit {
		t.Fatal("failed config read was cached")
	}
	fs.set(false)
	if resp := e.ok(logical.ReadOperation, "data/k", nil); resp == nil {
		t.Fatal("key reads as missing after a failed read")
	}

	// A failed metadata put drops the entry: the put may have landed.
	faulty := &faultyStorage{Storage: e.s, fail: func(op, key string) bool { return key == "meta/k" }}
	if _, err := e.doOn(faulty, logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": 3.0}); !errors.Is(err, errInjected) {
		t.Fatalf("metadata write with failing put: %v", err)
	}
	if _, hit, _ := e.b.cache.lookup("k"); hit {
		t.Fatal("entry kept after a failed metadata put")
	}
	e.ok(logical.ReadOperation, "data/k", nil)
	if _, err := e.doOn(faulty, logical.DeleteOperation, "metadata/k", nil); !errors.Is(err, errInjected) {
		t.Fatalf("metadata delete with failing delete: %v", err)
	}
	if _, hit, _ := e.b.cache.lookup("k"); hit {
		t.Fatal("entry kept after a failed metadata delete")
	}
	faulty.fail = func(op, key string) bool { return key == configKey }
	e.ok(logical.ReadOperation, "config", nil)
	if _, err := e.doOn(faulty, logical.UpdateOperation, "config", map[string]any{"max_versions": 3.0}); !errors.Is(err, errInjected) {
		t.Fatalf("config write with failing put: %v", err)
	}
	if _, hit, _ := e.b.cache.lookupConfig(); hit {
		t.Fatal("config kept after a failed put")
	}
	assertCacheMatchesStorage(t, e)
}

// blockingStorage holds the first Get (or Put) of key, after it has
// reached storage, until released: the caller's storage call is then old
// by the time the caller acts on it.
type blockingStorage struct {
	logical.Storage
	op      string // "get" or "put"
	key     string
	once    sync.Once
	reached chan struct{} // closed once the held call has reached storage
	release chan struct{} // closed by the test to let it return
}

func newBlockingStorage(s logical.Storage, op, key string) *blockingStorage {
	return &blockingStorage{Storage: s, op: op, key: key, reached: make(chan struct{}), release: make(chan struct{})}
}

func (s *blockingStorage) hold(op, key string) {
	if op != s.op || key != s.key {
		return
	}
	held := false
	s.once.Do(func() { held = true })
	if held {
		close(s.reached)
		<-s.release
	}
}

func (s *blockingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := s.Storage.Get(ctx, key)
	s.hold("get", key)
	return e, err
}

func (s *blockingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	err := s.Storage.Put(ctx, e)
	s.hold("put", e.Key)
	return err
}

// The race the generation counter exists for, played step by step: a
// reader outside the key's lock (as the existence check is) reads the old
// record, a writer stores a new one, then the reader tries to cache what
// it read. It must not win.
func TestCacheStalePopulateLosesToWriter(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "2")
	e.replica().write("k", map[string]any{"a": "1"}) // in storage, not in e's cache
	bs := newBlockingStorage(e.s, "get", metaKey("k"))
	done := make(chan *keyMetadata)
	go func() {
		m, err := e.b.readMeta(ctx, bs, "k")
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	<-bs.reached // the reader holds version 1's record
	e.write("k", map[string]any{"a": "2"})
	close(bs.release)
	if m := <-done; m.CurrentVersion != 1 {
		t.Fatalf("reader read version %d, want the old 1", m.CurrentVersion)
	}
	if m, hit, _ := e.b.cache.lookup("k"); !hit || m.CurrentVersion != 2 {
		t.Fatalf("cache after the race: hit %v, record %+v; want version 2", hit, m)
	}
	assertCacheMatchesStorage(t, e)
}

// The same race against an invalidation: a reader holding the key's read
// lock reads the old record, another replica writes and the host
// invalidates, then the reader tries to cache what it read.
func TestCacheStalePopulateLosesToInvalidate(t *testing.T) {
	e := newEnv(t, "2")
	e.replica().write("k", map[string]any{"a": "1"})
	bs := newBlockingStorage(e.s, "get", metaKey("k"))
	done := make(chan error)
	go func() {
		_, err := e.doOn(bs, logical.ReadOperation, "data/k", nil)
		done <- err
	}()
	<-bs.reached
	e.replica().write("k", map[string]any{"a": "2"})
	e.b.InvalidateKey(context.Background(), "meta/k")
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.ok(logical.ReadOperation, "data/k", nil).Data["metadata"].(map[string]any)["version"]; got != 2 {
		t.Fatalf("read after invalidation: version %v, want 2", got)
	}
}

// Two replicas write one key at once: this backend's put lands, another
// replica's put lands after it, and the host's invalidation for the latter
// arrives before this backend caches its own record. The cache must not
// keep a record storage no longer holds.
func TestCacheWriteRacesOtherReplica(t *testing.T) {
	e := newEnv(t, "2")
	e.write("k", map[string]any{"a": "1"})
	bs := newBlockingStorage(e.s, "put", metaKey("k"))
	done := make(chan error)
	go func() {
		_, err := e.doOn(bs, logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"by": "this"}})
		done <- err
	}()
	<-bs.reached // this backend's record is in storage
	other := e.replica()
	other.ok(logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"by": "other"}})
	e.b.InvalidateKey(context.Background(), "meta/k")
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertCacheMatchesStorage(t, e)
	md := e.ok(logical.ReadOperation, "metadata/k", nil).Data["custom_metadata"].(map[string]any)
	if md["by"] != "other" {
		t.Fatalf("custom_metadata by %v, want other (the last put)", md["by"])
	}
}

// Writers, patchers, readers, version operations, metadata writes and
// deletes, config writes and invalidations on the same few keys, under
// -race, through two backends on one (slowed) storage: two replicas, each
// invalidating the other after every change as the host would. The work
// runs in short rounds; after each, every cached record equals storage and
// every read through either warm cache equals one through a fresh backend,
// so a stale record has little time to be overwritten before it is seen.
func TestHammerCache(t *testing.T) {
	const rounds, workers, iterations = 40, 8, 8
	keys := []string{"hot", "hot/child", "warm"}
	a := newEnv(t, "2")
	replicas := []*env{a, a.replica()}
	slow := &slowStorage{Storage: a.s}
	for round := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range iterations {
					n := round*iterations + i
					key := keys[(w*7+n)%len(keys)]
					ops := []struct {
						op   logical.Operation
						path string
						data map[string]any
					}{
						{logical.UpdateOperation, "data/" + key, map[string]any{"data": map[string]any{"w": w, "n": n}}},
						{logical.ReadOperation, "data/" + key, nil},
						{logical.PatchOperation, "data/" + key, map[string]any{"data": map[string]any{"p": w}}},
						{logical.ReadOperation, "metadata/" + key, nil},
						{logical.UpdateOperation, "delete/" + key, map[string]any{"versions": []any{n % 7, n%7 + 1}}},
						{logical.PatchOperation, "metadata/" + key, map[string]any{"custom_metadata": map[string]any{"w": fmt.Sprint(w)}}},
						{logical.ReadOperation, "data/" + key, nil},
						{logical.UpdateOperation, "undelete/" + key, map[string]any{"versions": []any{n % 7}}},
						{logical.UpdateOperation, "metadata/" + key, map[string]any{"max_versions": float64(1 + n%5)}},
						{logical.DeleteOperation, "data/" + key, nil},
						{logical.UpdateOperation, "destroy/" + key, map[string]any{"versions": []any{n % 9}}},
						{logical.DeleteOperation, "metadata/" + key, nil},
						{logical.UpdateOperation, "config", map[string]any{"max_versions": float64(3 + n%4)}},
					}
					o := ops[(w+n)%len(ops)]
					// Most requests go to replica 0, whose storage calls
					// are slow, so that its cache is warm and its misses
					// are long while replica 1 changes storage behind it.
					self, other, s := replicas[0], replicas[1], logical.Storage(slow)
					if (w+n)%3 == 0 {
						self, other, s = other, self, a.s
					}
					if _, err := self.doOn(s, o.op, o.path, o.data); err != nil {
						t.Errorf("%s %s: %v", o.op, o.path, err)
						return
					}
					if o.op != logical.ReadOperation {
						invalidated := metaKey(key)
						if o.path == "config" {
							invalidated = configKey
						}
						other.b.InvalidateKey(context.Background(), invalidated)
					}
					if n%29 == 28 {
						self.b.InvalidateKey(context.Background(), "meta/") // clears everything
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		fresh := a.replica()
		for _, r := range replicas {
			assertCacheMatchesStorage(t, r)
			for _, key := range keys {
				for _, path := range []string{"data/" + key, "metadata/" + key, "config"} {
					got, err1 := r.do(logical.ReadOperation, path, nil)
					want, err2 := fresh.do(logical.ReadOperation, path, nil)
					if err1 != nil || err2 != nil {
						t.Fatalf("round %d: read %s: %v, %v", round, path, err1, err2)
					}
					if (got == nil) != (want == nil) || (got != nil &&
						(got.StatusCode != want.StatusCode || !reflect.DeepEqual(wire(t, got), wire(t, want)))) {
						t.Fatalf("round %d: read %s through the cache = %+v\nthrough a fresh backend = %+v", round, path, got, want)
					}
				}
			}
		}
	}
}

// A follower serving reads while another replica writes, as in a
// read-scaled cluster: the writer invalidates the follower after each
// write, the follower's readers miss and repopulate through slow storage
// calls. After each burst the follower's cache must hold the last write.
func TestHammerCacheFollower(t *testing.T) {
	const rounds, readers, writes = 30, 4, 6
	leader := newEnv(t, "2")
	follower := leader.replica()
	slow := &slowStorage{Storage: leader.s}
	for round := range rounds {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					path := []string{"data/k", "metadata/k"}[(r+i)%2]
					if _, err := follower.doOn(slow, logical.ReadOperation, path, nil); err != nil {
						t.Errorf("read %s: %v", path, err)
						return
					}
				}
			}()
		}
		for i := range writes {
			leader.ok(logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"round": round, "i": i}})
			follower.b.InvalidateKey(context.Background(), "meta/k")
			time.Sleep(time.Duration(i*50) * time.Microsecond)
		}
		if round%5 == 4 {
			leader.ok(logical.DeleteOperation, "metadata/k", nil)
			follower.b.InvalidateKey(context.Background(), "meta/k")
		}
		close(stop)
		wg.Wait()
		assertCacheMatchesStorage(t, follower)
		if t.Failed() {
			t.Fatalf("round %d: the follower's cache is stale", round)
		}
	}
}

// slowStorage widens the windows between a storage call reaching storage
// and its caller acting on it, as a cross-process callback does, so that
// hammer tests hit the interleavings of cache.go more often.
type slowStorage struct {
	logical.Storage
	n atomic.Uint32
}

func (s *slowStorage) pause() {
	if n := s.n.Add(1); n%2 == 0 {
		time.Sleep(time.Duration(n%300) * time.Microsecond)
	}
}

func (s *slowStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := s.Storage.Get(ctx, key)
	s.pause()
	return e, err
}

func (s *slowStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	err := s.Storage.Put(ctx, e)
	s.pause()
	return err
}

// assertCacheMatchesStorage checks that every record in e's cache, and the
// config if cached, encodes as what storage holds (absent for a nil record).
func assertCacheMatchesStorage(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	encode := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	e.b.cache.records.Range(func(key string, cached *keyMetadata) bool {
		stored, err := decodeMeta(ctx, e.s, key)
		if err != nil {
			t.Fatal(err)
		}
		if (cached == nil) != (stored == nil) || (cached != nil && encode(cached) != encode(stored)) {
			t.Errorf("cached %q = %s\nstorage holds %s", key, encode(cached), encode(stored))
		}
		return true
	})
	if cfg, hit, _ := e.b.cache.lookupConfig(); hit {
		var stored mountConfig
		if _, err := getJSON(ctx, e.s, configKey, &stored); err != nil {
			t.Fatal(err)
		}
		if cfg != stored {
			t.Errorf("cached config %+v, storage holds %+v", cfg, stored)
		}
	}
}
