package transit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// epoch is the fake clock's start: fixed so timestamps in tests are exact.
var epoch = time.Date(2026, 11, 24, 4, 38, 52, 0, time.UTC)

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
	s     logical.Storage
	clock *fakeClock
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvWith(tb, logical.NewInmemStorage())
}

func newEnvWith(tb testing.TB, s logical.Storage) *env {
	tb.Helper()
	clock := &fakeClock{t: epoch}
	b, err := newBackend(&logical.BackendConfig{StorageView: s, MountPoint: "transit/", MountType: "transit"}, clock.Now)
	if err != nil {
		tb.Fatalf("newBackend: %v", err)
	}
	return &env{tb: tb, b: b, s: s, clock: clock}
}

// do sends one request as the kernel would.
func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "transit/",
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

// write is an update that must succeed.
func (e *env) write(path string, data map[string]any) *logical.Response {
	e.tb.Helper()
	return e.ok(logical.UpdateOperation, path, data)
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

// bad sends an update that must fail with a 400-class error containing msg.
func (e *env) bad(path string, data map[string]any, msg string) {
	e.tb.Helper()
	e.fails(logical.UpdateOperation, path, data, logical.CodeInvalidRequest, msg)
}

// createKey creates a key with extra parameters.
func (e *env) createKey(name string, params map[string]any) map[string]any {
	e.tb.Helper()
	return wire(e.tb, e.write("keys/"+name, params))
}

// encrypt encrypts text with key name and returns the ciphertext.
func (e *env) encrypt(name, text string, extra map[string]any) string {
	e.tb.Helper()
	data := map[string]any{"plaintext": b64(text)}
	for k, v := range extra {
		data[k] = v
	}
	return e.write("encrypt/"+name, data).Data["ciphertext"].(string)
}

// decrypt decrypts a ciphertext and returns the text.
func (e *env) decrypt(name, ct string, extra map[string]any) string {
	e.tb.Helper()
	data := map[string]any{"ciphertext": ct}
	for k, v := range extra {
		data[k] = v
	}
	return unb64(e.tb, e.write("decrypt/"+name, data).Data["plaintext"].(string))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(tb testing.TB, s string) string {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatalf("base64 %q: %v", s, err)
	}
	return string(b)
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

// batchResults returns the batch_results of a response as a client sees them.
func batchResults(tb testing.TB, resp *logical.Response) []map[string]any {
	tb.Helper()
	raw := wire(tb, resp)["batch_results"].([]any)
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

// faultyStorage fails operations on keys for which fail returns true.
type faultyStorage struct {
	logical.Storage
	mu   sync.Mutex // protects fail
	fail func(op, key string) bool
}

var errInjected = errors.New("injected storage fault")

func (f *faultyStorage) failing(op, key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail != nil && f.fail(op, key)
}

func (f *faultyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if f.failing("get", key) {
		return nil, errInjected
	}
	return f.Storage.Get(ctx, key)
}

func (f *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if f.failing("put", e.Key) {
		return errInjected
	}
	return f.Storage.Put(ctx, e)
}

func (f *faultyStorage) Delete(ctx context.Context, key string) error {
	if f.failing("delete", key) {
		return errInjected
	}
	return f.Storage.Delete(ctx, key)
}

// countingStorage counts storage calls (the hot path must make none).
type countingStorage struct {
	logical.Storage
	mu    sync.Mutex // protects calls
	calls int
}

func (c *countingStorage) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *countingStorage) inc() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.inc()
	return c.Storage.Get(ctx, key)
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.inc()
	return c.Storage.Put(ctx, e)
}

func (c *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	c.inc()
	return c.Storage.List(ctx, prefix)
}

// jsonUnmarshalNumber decodes JSON as the transports do (numbers kept exact).
func jsonUnmarshalNumber(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	return dec.Decode(v)
}
