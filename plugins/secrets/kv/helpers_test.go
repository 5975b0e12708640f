package kv

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// epoch is the fake clock's start: fixed so timestamps in tests are exact.
var epoch = time.Date(2026, 11, 24, 4, 38, 52, 226743763, time.UTC)

// fakeClock is an injectable clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex // protects t
	t  time.Time
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

// env is one mount backed by InmemStorage with a fake clock.
type env struct {
	tb    testing.TB
	b     *backend
	s     *logical.InmemStorage
	clock *fakeClock
}

func newEnv(tb testing.TB, version string) *env {
	tb.Helper()
	s := logical.NewInmemStorage()
	clock := &fakeClock{t: epoch}
	b, err := newBackend(&logical.BackendConfig{
		StorageView: s, Config: map[string]string{"version": version}, MountPoint: "secret/", MountType: "kv",
	}, clock.Now)
	if err != nil {
		tb.Fatalf("newBackend: %v", err)
	}
	return &env{tb: tb, b: b, s: s, clock: clock}
}

// do sends one request as the kernel would.
func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "secret/",
	})
}

// ok sends a request that must succeed.
func (e *env) ok(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.tb.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		e.tb.Fatalf("%s %s: unexpected error: %v", op, path, err)
	}
	return resp
}

// fails sends a request that must fail with code and a message containing msg.
func (e *env) fails(op logical.Operation, path string, data map[string]any, code logical.Code, msg string) {
	e.tb.Helper()
	resp, err := e.do(op, path, data)
	if err == nil {
		e.tb.Fatalf("%s %s: want error %q, got response %+v", op, path, msg, resp)
	}
	if got := logical.CodeOf(err); got != code {
		e.tb.Fatalf("%s %s: error %q has code %d, want %d", op, path, err, got, code)
	}
	if !strings.Contains(err.Error(), msg) {
		e.tb.Fatalf("%s %s: error %q does not contain %q", op, path, err, msg)
	}
}

// write stores data at data/<path> and returns the new version.
func (e *env) write(path string, data map[string]any) int {
	e.tb.Helper()
	resp := e.ok(logical.UpdateOperation, "data/"+path, map[string]any{"data": data})
	return resp.Data["version"].(int)
}

// wire returns resp.Data as a client sees it: through JSON, numbers as float64.
func wire(tb testing.TB, resp *logical.Response) map[string]any {
	tb.Helper()
	if resp == nil {
		tb.Fatalf("nil response")
	}
	b, err := json.Marshal(resp.Data)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("unmarshal: %v", err)
	}
	return m
}

// storageKeys returns every key in the mount's storage.
func (e *env) storageKeys() []string {
	e.tb.Helper()
	keys, err := logical.CollectKeys(context.Background(), e.s, "")
	if err != nil {
		e.tb.Fatalf("collect keys: %v", err)
	}
	return keys
}

func (e *env) hasKey(key string) bool {
	e.tb.Helper()
	ent, err := e.s.Get(context.Background(), key)
	if err != nil {
		e.tb.Fatalf("get %s: %v", key, err)
	}
	return ent != nil
}

// faultyStorage fails operations on keys for which fail returns true.
type faultyStorage struct {
	logical.Storage
	fail func(op, key string) bool
}

var errInjected = errors.New("injected storage fault")

func (f *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if f.fail("put", e.Key) {
		return errInjected
	}
	return f.Storage.Put(ctx, e)
}

func (f *faultyStorage) Delete(ctx context.Context, key string) error {
	if f.fail("delete", key) {
		return errInjected
	}
	return f.Storage.Delete(ctx, key)
}
