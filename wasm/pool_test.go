package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// prefixView confines a storage to a prefix, like the kernel's barrier
// view (which also refuses ".." and absolute keys).
type prefixView struct {
	s      *logical.InmemStorage
	prefix string
}

func (v prefixView) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	e, err := v.s.Get(ctx, v.prefix+k)
	if e != nil {
		e.Key = k
	}
	return e, err
}

func (v prefixView) Put(ctx context.Context, e *logical.StorageEntry) error {
	return v.s.Put(ctx, &logical.StorageEntry{Key: v.prefix + e.Key, Value: e.Value})
}

func (v prefixView) Delete(ctx context.Context, k string) error { return v.s.Delete(ctx, v.prefix+k) }

func (v prefixView) List(ctx context.Context, p string) ([]string, error) {
	return v.s.List(ctx, v.prefix+p)
}

func (v prefixView) Batch(ctx context.Context, ops []logical.StorageOp) error {
	out := make([]logical.StorageOp, len(ops))
	for i, op := range ops {
		out[i] = op
		out[i].Key = v.prefix + op.Key
	}
	return v.s.Batch(ctx, out)
}

func TestStorageEscape(t *testing.T) {
	ctx := context.Background()
	shared := logical.NewInmemStorage()
	_ = shared.Put(ctx, &logical.StorageEntry{Key: "logical/other-uuid/secret", Value: []byte("theirs")})
	m, _ := mountProbe(t, Limits{}, prefixView{s: shared, prefix: "logical/probe-uuid/"})

	escapes := []string{"../other-uuid/secret", "/etc/passwd", "a/../../other-uuid/secret", "a/./b", "..", ".", "nul\x00byte", "a/.."}
	names := append(append([]any{}, toAny(escapes)...), "logical/other-uuid/secret", "fine/key")
	resp, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "escape", map[string]any{"keys": names}))
	if err != nil {
		t.Fatal(err)
	}
	denied := strconv.Itoa(int(logical.CodePermissionDenied))
	for _, k := range escapes {
		want := fmt.Sprintf("put=%s get=%s list=%s", denied, denied, denied)
		if got := resp.Data[k]; got != want {
			t.Errorf("key %q: %v, want %s", k, got, want)
		}
	}
	for _, k := range []string{"logical/other-uuid/secret", "fine/key"} {
		if got := resp.Data[k]; got != "put=ok get=ok list=ok" {
			t.Errorf("key %q: %v", k, got)
		}
	}
	// Nothing was written outside the mount's prefix; another mount's
	// prefix named by the module landed inside its own view.
	keys, _ := logical.CollectKeys(ctx, shared, "")
	sort.Strings(keys)
	want := []string{"logical/other-uuid/secret", "logical/probe-uuid/fine/key", "logical/probe-uuid/logical/other-uuid/secret"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("stored keys %q, want %q", keys, want)
	}
	if e, _ := shared.Get(ctx, "logical/other-uuid/secret"); string(e.Value) != "theirs" {
		t.Fatal("another mount's secret was overwritten")
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "a/b", "a/b/", "a..b", "..a", "a/...", "é"} {
		if err := checkKey(k, false); err != nil {
			t.Errorf("%q refused: %v", k, err)
		}
	}
	for _, k := range []string{"", "/a", "../a", "a/../b", "a/./b", "a/..", ".", "a\x00", strings.Repeat("k", maxKeyBytes+1)} {
		if err := checkKey(k, false); err == nil {
			t.Errorf("%q accepted", k)
		}
	}
	if err := checkKey("", true); err != nil {
		t.Errorf("empty list prefix refused: %v", err)
	}
}

// Test64Concurrent runs 64 clients against one pool: writes to their own
// keys, reads back, and increments one shared counter whose
// read-modify-write is guarded only inside an instance. No write may be
// lost, no read may be stale.
func Test64Concurrent(t *testing.T) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	m, _ := mountProbe(t, Limits{PoolSize: 4}, st)
	const clients, rounds = 64, 8
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				key := fmt.Sprintf("kv/c%d", c)
				val := strconv.Itoa(i)
				if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, key, map[string]any{"value": val})); err != nil {
					errs <- err
					return
				}
				resp, err := m.HandleRequest(ctx, req(logical.ReadOperation, key, nil))
				if err != nil || resp.Data["value"] != val {
					errs <- fmt.Errorf("client %d read %v (%v), want %s", c, resp, err, val)
					return
				}
				if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "counter", nil)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e, _ := st.Get(ctx, "counter")
	if e == nil || string(e.Value) != strconv.Itoa(clients*rounds) {
		t.Fatalf("counter = %v, want %d: writes were lost", e, clients*rounds)
	}
	if s := m.Stats(); s.Instances < 2 || s.Instances > 4 {
		t.Errorf("pool: %+v, want 2..4 instances", s)
	}
}

// TestInvalidationAcrossInstances: each instance caches kv/ reads; a write
// through one instance (or from the kernel) must reach the others' caches.
func TestInvalidationAcrossInstances(t *testing.T) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	m, _ := mountProbe(t, Limits{PoolSize: 4}, st)
	readAll := func(want string) {
		t.Helper()
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := m.HandleRequest(ctx, req(logical.ReadOperation, "slow/a", nil))
				if err != nil || resp.Data["value"] != want {
					t.Errorf("read %v (%v), want %s", resp, err, want)
				}
			}()
		}
		wg.Wait()
	}
	if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "kv/a", map[string]any{"value": "1"})); err != nil {
		t.Fatal(err)
	}
	readAll("1") // every instance caches "1"
	if s := m.Stats(); s.Instances != 4 {
		t.Fatalf("pool: %+v: the test needs several instances", s)
	}
	if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "kv/a", map[string]any{"value": "2"})); err != nil {
		t.Fatal(err)
	}
	readAll("2")
	// A change behind the mount's back, announced by the kernel.
	_ = st.Put(ctx, &logical.StorageEntry{Key: "kv/a", Value: []byte("3")})
	m.InvalidateKey(ctx, "kv/a")
	readAll("3")
}

func TestOutboundHTTP(t *testing.T) {
	ctx := context.Background()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "other") }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
			return
		}
		fmt.Fprint(w, "hello from ", r.URL.Path)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	fetch := func(m *Mount, url string) map[string]any {
		t.Helper()
		resp, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "http", map[string]any{"url": url}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Data
	}
	denied := json.Number(strconv.Itoa(int(logical.CodePermissionDenied)))

	// Nothing granted: denied.
	none, _ := mountProbe(t, Limits{}, nil)
	if d := fetch(none, srv.URL+"/a"); d["code"] != string(denied) || !strings.Contains(d["error"].(string), "not granted") {
		t.Fatalf("no grant: %v", d)
	}

	mountWith := func(g HTTPGrant) *Mount {
		m, err := testEngine.Mount(ctx, module(t, "probe"), MountConfig{ID: "h", Path: "h/", PluginName: "probe",
			Storage: logical.NewInmemStorage(), HTTP: g})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(ctx) })
		return m
	}
	// Host granted, but it resolves to loopback: refused after resolution.
	noPrivate := mountWith(HTTPGrant{Hosts: []string{host}, AllowPlainHTTP: true})
	if d := fetch(noPrivate, srv.URL+"/a"); !strings.Contains(fmt.Sprint(d["error"]), "not a public address") {
		t.Fatalf("loopback without grant: %v", d)
	}
	// Plain http not granted.
	tlsOnly := mountWith(HTTPGrant{Hosts: []string{host}, PrivateNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if d := fetch(tlsOnly, srv.URL+"/a"); !strings.Contains(fmt.Sprint(d["error"]), "plain http") {
		t.Fatalf("plain http: %v", d)
	}
	ok := mountWith(HTTPGrant{Hosts: []string{host}, AllowPlainHTTP: true, PrivateNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if d := fetch(ok, srv.URL+"/a"); d["status"] != json.Number("200") || d["body"] != "hello from /a" {
		t.Fatalf("granted: %v", d)
	}
	// A host not in the list, and a redirect to it, are refused.
	if d := fetch(ok, other.URL+"/x"); d["code"] != string(denied) {
		t.Fatalf("other host: %v", d)
	}
	if d := fetch(ok, srv.URL+"/redirect"); !strings.Contains(fmt.Sprint(d["error"]), "not granted") {
		t.Fatalf("redirect to another host: %v", d)
	}
}

func TestGrantMatching(t *testing.T) {
	cases := []struct {
		grant, host, port string
		ok                bool
	}{
		{"api.example.com", "api.example.com", "443", true},
		{"api.example.com", "api.example.com", "8443", false},
		{"api.example.com:8443", "api.example.com", "8443", true},
		{"*.example.com", "a.example.com", "443", true},
		{"*.example.com", "example.com", "443", false},
		{"*.example.com", "evilexample.com", "443", false},
		{"api.example.com", "api.example.com.evil.net", "443", false},
	}
	for _, c := range cases {
		if got := grantMatches(c.grant, c.host, c.port); got != c.ok {
			t.Errorf("grant %q, %s:%s: %v", c.grant, c.host, c.port, got)
		}
	}
	for ip, public := range map[string]bool{"8.8.8.8": true, "127.0.0.1": false, "10.1.2.3": false, "169.254.169.254": false,
		"100.64.0.1": false, "::1": false, "fd00::1": false, "2606:4700::1": true, "0.0.0.0": false, "::ffff:127.0.0.1": false} {
		if got := isPublic(netip.MustParseAddr(ip).Unmap()); got != public {
			t.Errorf("%s: public=%v", ip, got)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	if err := (Limits{}).Validate(); err != nil {
		t.Fatalf("zero limits: %v", err)
	}
	for _, l := range []Limits{{MemoryPages: 10}, {MemoryPages: MaxMemoryPages + 1}, {PoolSize: -1}, {MaxMessageBytes: 10}, {CallTimeout: -1}} {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	for _, h := range []string{"https://x.com", "x.com/path", "", "*", "a@b"} {
		if err := (HTTPGrant{Hosts: []string{h}}).Validate(); err == nil {
			t.Errorf("grant %q accepted", h)
		}
	}
	if err := (HTTPGrant{Hosts: []string{"x.com", "x.com:8443", "*.x.com", "10.0.0.1:80"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// queued waits until n callers wait for a token.
func queued(t *testing.T, m *Mount, n int) {
	t.Helper()
	waitFor(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.waiters) == n
	})
}

func inUse(m *Mount) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inUse
}

// A caller whose context ends just as it is served (with an instance or
// with a token to create one) passes what it was given on: no token is
// lost, and the mount keeps serving.
func TestPoolServedAsCallerGivesUp(t *testing.T) {
	for _, withInstance := range []bool{true, false} {
		t.Run(fmt.Sprint("instance=", withInstance), func(t *testing.T) {
			m, _ := mountProbe(t, Limits{PoolSize: 1}, nil)
			if !m.token() { // the test holds the only token
				t.Fatal("no token")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, _, err := m.acquire(ctx, 0, 0)
				done <- err
			}()
			queued(t, m, 1)
			// Serve the waiter while it is giving up: it has seen its
			// context end and waits for m.mu.
			m.mu.Lock()
			cancel()
			time.Sleep(50 * time.Millisecond)
			var inst *instance
			if withInstance {
				inst = m.idle[0]
				m.idle = m.idle[1:]
			}
			m.serveLocked(0, inst)
			m.mu.Unlock()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("acquire: %v, want context.Canceled", err)
			}
			waitFor(t, func() bool { return inUse(m) == 0 })
			if _, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "echo", nil)); err != nil {
				t.Fatal(err)
			}
			if n := inUse(m); n != 0 {
				t.Fatalf("inUse %d after the call", n)
			}
		})
	}
}

// Close answers queued callers with ErrClosed and returns once the
// tokens held come back.
func TestPoolCloseWithWaiters(t *testing.T) {
	m, _ := mountProbe(t, Limits{PoolSize: 1}, nil)
	if !m.token() {
		t.Fatal("no token")
	}
	const n = 3
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := m.acquire(context.Background(), 0, 0)
			errs <- err
		}()
	}
	queued(t, m, n)
	closed := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Close(ctx)
		close(closed)
	}()
	for range n {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter: %v, want ErrClosed", err)
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a token was out")
	case <-time.After(20 * time.Millisecond):
	}
	m.mu.Lock()
	m.returnTokenLocked()
	m.mu.Unlock()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if k := inUse(m); k != 0 {
		t.Fatalf("inUse %d after Close", k)
	}
}

// A caller that fails to create its instance passes its token to the next
// waiter (which then tries itself), and no token is lost.
func TestPoolCreateFailurePassesToken(t *testing.T) {
	m, _ := mountProbe(t, Limits{PoolSize: 1}, nil)
	if !m.token() {
		t.Fatal("no token")
	}
	m.mu.Lock()
	inst := m.idle[0]
	m.idle = nil
	m.mu.Unlock()
	m.retire(inst) // as if discarded: the next caller creates one
	m.cfg.Config = map[string]string{"fail": "test"}
	const n = 2
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := m.acquire(context.Background(), 0, 0)
			errs <- err
		}()
	}
	queued(t, m, n)
	m.mu.Lock()
	m.returnTokenLocked() // to the first waiter, who fails, then the second
	m.mu.Unlock()
	for range n {
		select {
		case err := <-errs:
			if err == nil || !strings.Contains(err.Error(), "setup refused") {
				t.Fatalf("waiter: %v, want the setup's error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a waiter was never served")
		}
	}
	if k := inUse(m); k != 0 {
		t.Fatalf("inUse %d", k)
	}
	m.cfg.Config = nil
	if _, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "echo", nil)); err != nil {
		t.Fatal(err)
	}
}

// Affinity never starves the head of the queue: however many later
// waiters match the instance handed on, the head is served after at most
// maxPassedOver passes.
func TestPoolHeadServedAfterMaxPassedOver(t *testing.T) {
	m := &Mount{cfg: MountConfig{Limits: Limits{PoolSize: 4}}}
	inst := &instance{slot: 0}
	head := &waiter{affinity: 1, ready: make(chan struct{})} // slot 1
	m.waiters = []*waiter{head}
	add := func() { m.waiters = append(m.waiters, &waiter{affinity: 4, ready: make(chan struct{})}) } // slot 0
	for range 3 {
		add()
	}
	for passes := 0; ; passes++ {
		i := m.pickWaiterLocked(inst)
		m.serveLocked(i, inst)
		if head.served {
			if passes > maxPassedOver {
				t.Fatalf("head served after %d passes", passes)
			}
			if passes == 0 {
				t.Fatal("affinity never preferred a later waiter")
			}
			return
		}
		if passes > 10*maxPassedOver {
			t.Fatal("head never served")
		}
		add() // later matching waiters keep coming
	}
}
