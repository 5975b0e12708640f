package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

// testClock is an adjustable clock for TTL tests.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// wrapCore is an unsealed core on a test clock, with its root token.
func wrapCore(t *testing.T) (*Core, *unsealedState, *testClock, string) {
	return wrapCoreOn(t, storage.NewInmem())
}

func wrapCoreOn(t *testing.T, phys storage.Backend) (*Core, *unsealedState, *testClock, string) {
	t.Helper()
	ctx := context.Background()
	clk := &testClock{now: time.Now()}
	c, err := New(Config{Storage: phys, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Initialize(ctx, InitParams{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Seal(ctx) })
	u, _ := c.state()
	return c, u, clk, res.RootToken
}

// req runs one request through the kernel.
func req(t *testing.T, c *Core, tok, op, path string, data map[string]any, wrap time.Duration) (*Response, error) {
	t.Helper()
	return c.HandleRequest(context.Background(), &Request{ClientToken: tok, WrapTTL: wrap,
		Request: &logical.Request{Operation: logical.Operation(op), Path: path, Data: data}})
}

func mustReq(t *testing.T, c *Core, tok, op, path string, data map[string]any, wrap time.Duration) *Response {
	t.Helper()
	r, err := req(t, c, tok, op, path, data, wrap)
	if err != nil {
		t.Fatalf("%s %s: %v", op, path, err)
	}
	return r
}

func status(err error) int { return StatusCode(logical.UpdateOperation, nil, err) }

// newToken creates a child token of parent with the given policies.
func newToken(t *testing.T, c *Core, parent string, data map[string]any) string {
	t.Helper()
	r := mustReq(t, c, parent, "update", "auth/token/create", data, 0)
	tok, _ := r.TokenAuth["client_token"].(string)
	if tok == "" {
		t.Fatalf("token create: %+v", r)
	}
	return tok
}

// unwrapped decodes what sys/wrapping/unwrap answered.
func unwrapped(t *testing.T, r *Response) Envelope {
	t.Helper()
	if r == nil || r.Raw == nil {
		t.Fatalf("unwrap answered no raw envelope: %+v", r)
	}
	var env Envelope
	if err := json.Unmarshal(r.Raw, &env); err != nil {
		t.Fatal(err)
	}
	return env
}

// wrapOf returns the wrapping token of a wrapped response.
func wrapOf(t *testing.T, r *Response) *WrapInfo {
	t.Helper()
	if r == nil || r.WrapInfo == nil || r.WrapInfo.Token == "" {
		t.Fatalf("response not wrapped: %+v", r)
	}
	if r.Data != nil || r.TokenAuth != nil || r.Secret != nil {
		t.Fatalf("a wrapped response leaks its content: %+v", r)
	}
	return r.WrapInfo
}

func TestWrapUnwrapOnceAndLookup(t *testing.T) {
	c, _, clk, root := wrapCore(t)
	w := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/wrap", map[string]any{"password": "hunter2", "n": json.Number("12345678901234567890")}, 5*time.Minute))
	if w.TTL != 5*time.Minute || w.CreationPath != "sys/wrapping/wrap" || w.Accessor == "" || w.WrappedAccessor != "" ||
		!w.CreationTime.Equal(clk.Now()) {
		t.Fatalf("wrap info: %+v", w)
	}
	// Lookup needs no other token and does not use the wrapping token,
	// whether it comes as the request's token or in the body.
	for _, l := range []*Response{
		mustReq(t, c, w.Token, "update", "sys/wrapping/lookup", nil, 0),
		mustReq(t, c, "", "update", "sys/wrapping/lookup", map[string]any{"token": w.Token}, 0),
		mustReq(t, c, "", "read", "sys/wrapping/lookup", map[string]any{"token": w.Token}, 0),
	} {
		if l.Data["creation_ttl"] != int64(300) || l.Data["creation_path"] != "sys/wrapping/wrap" || l.Data["creation_time"] == "" {
			t.Fatalf("lookup: %v", l.Data)
		}
	}
	// The wrapping token is good for nothing else, and a refused request
	// does not use it up.
	for _, p := range [][2]string{{"read", "sys/mounts"}, {"read", "cubbyhole/wrapinfo"}, {"update", "auth/token/create"},
		{"update", "auth/token/renew-self"}, {"update", "sys/wrapping/rewrap"}, {"update", "cubbyhole/response"}} {
		if _, err := req(t, c, w.Token, p[0], p[1], map[string]any{"x": "y"}, 0); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("wrapping token on %s %s: %v", p[0], p[1], err)
		}
	}
	r := mustReq(t, c, w.Token, "update", "sys/wrapping/unwrap", nil, 0)
	env := unwrapped(t, r)
	if env.Data["password"] != "hunter2" || !strings.Contains(string(r.Raw), `"n":12345678901234567890`) {
		t.Fatalf("unwrapped: %s", r.Raw)
	}
	unwrapTwiceFails(t, c, root, w.Token)
	if _, err := req(t, c, "", "update", "sys/wrapping/lookup", map[string]any{"token": w.Token}, 0); !errors.Is(err, ErrInvalidWrappingToken) {
		t.Fatalf("lookup of a used token: %v", err)
	}
}

// unwrapTwiceFails checks a used token cannot be unwrapped again,
// first-party or third-party.
func unwrapTwiceFails(t *testing.T, c *Core, root, tok string) {
	t.Helper()
	for _, try := range []struct {
		client string
		data   map[string]any
	}{{tok, nil}, {root, map[string]any{"token": tok}}} {
		_, err := req(t, c, try.client, "update", "sys/wrapping/unwrap", try.data, 0)
		if !errors.Is(err, ErrInvalidWrappingToken) || status(err) != 400 {
			t.Fatalf("second unwrap: %v (%d)", err, status(err))
		}
	}
}

func TestWrapExpiresAndTTLBounds(t *testing.T) {
	c, u, clk, root := wrapCore(t)
	w := wrapOf(t, mustReq(t, c, root, "read", "sys/mounts", nil, 2*time.Second))
	te, err := u.tokens.Lookup(context.Background(), w.Token)
	if err != nil || te == nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Second)
	if _, err := req(t, c, root, "update", "sys/wrapping/unwrap", map[string]any{"token": w.Token}, 0); !errors.Is(err, ErrInvalidWrappingToken) {
		t.Fatalf("expired unwrap: %v", err)
	}
	// The sweeper revokes it, and its cubbyhole goes with it.
	waitCubbyholeGone(t, c, te.HashedID)

	for _, bad := range []time.Duration{-time.Second, 500 * time.Millisecond} {
		if _, err := req(t, c, root, "read", "sys/mounts", nil, bad); status(err) != 400 {
			t.Fatalf("wrap TTL %s: %v", bad, err)
		}
	}
	if _, err := req(t, c, root, "update", "sys/wrapping/wrap", map[string]any{"a": "b"}, 0); status(err) != 400 {
		t.Fatalf("wrap without a TTL: %v", err)
	}
	// Nothing to wrap: a write with no answer stays a 204, an empty list a 404.
	if r, err := req(t, c, root, "update", "cubbyhole/x", map[string]any{"a": "b"}, time.Minute); err != nil || r != nil {
		t.Fatalf("wrapped empty write: %+v %v", r, err)
	}
	if r, err := req(t, c, root, "list", "cubbyhole/nothing/", nil, time.Minute); err != nil || r != nil {
		t.Fatalf("wrapped empty list: %+v %v", r, err)
	}
	// A path whose policy demands wrapping gets it only with a TTL in bounds.
	mustReq(t, c, root, "update", "sys/policies/acl/wrapped", map[string]any{"policy": `
path "cubbyhole/*" {
  capabilities = ["read", "create", "update"]
  min_wrapping_ttl = "10s"
  max_wrapping_ttl = "1m"
}`}, 0)
	tok := newToken(t, c, root, map[string]any{"policies": []any{"wrapped"}})
	mustReq(t, c, root, "update", "sys/policies/acl/wrapped", map[string]any{"policy": `path "cubbyhole/*" { capabilities = ["read", "create", "update"] }`}, 0)
	mustReq(t, c, tok, "update", "cubbyhole/k", map[string]any{"v": "1"}, 0)
	mustReq(t, c, root, "update", "sys/policies/acl/wrapped", map[string]any{"policy": `
path "cubbyhole/*" {
  capabilities = ["read", "create", "update"]
  min_wrapping_ttl = "10s"
  max_wrapping_ttl = "1m"
}`}, 0)
	for _, ttl := range []time.Duration{0, 5 * time.Second, 2 * time.Minute} {
		if _, err := req(t, c, tok, "read", "cubbyhole/k", nil, ttl); !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("wrap TTL %s outside the policy's bounds: %v", ttl, err)
		}
	}
	wrapOf(t, mustReq(t, c, tok, "read", "cubbyhole/k", nil, 30*time.Second))
}

// waitCubbyholeGone waits until a token's cubbyhole is empty.
func waitCubbyholeGone(t *testing.T, c *Core, hashed string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, err := logical.CollectKeys(context.Background(), c.cubbyhole().of(hashed), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cubbyhole still holds %v", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRewrapMovesTheResponse(t *testing.T) {
	c, u, _, root := wrapCore(t)
	w := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/wrap", map[string]any{"k": "v"}, time.Hour))
	// Rewrap takes a caller allowed to (default does not grant it).
	user := newToken(t, c, root, map[string]any{"policies": []any{"default"}})
	if _, err := req(t, c, user, "update", "sys/wrapping/rewrap", map[string]any{"token": w.Token}, 0); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("rewrap by a default token: %v", err)
	}
	old, _ := u.tokens.Lookup(context.Background(), w.Token)
	nw := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/rewrap", map[string]any{"token": w.Token}, 0))
	if nw.Token == w.Token || nw.TTL != time.Hour || nw.CreationPath != "sys/wrapping/wrap" {
		t.Fatalf("rewrapped: %+v", nw)
	}
	if _, err := req(t, c, root, "update", "sys/wrapping/unwrap", map[string]any{"token": w.Token}, 0); !errors.Is(err, ErrInvalidWrappingToken) {
		t.Fatalf("old token after rewrap: %v", err)
	}
	waitCubbyholeGone(t, c, old.HashedID)
	l := mustReq(t, c, "", "update", "sys/wrapping/lookup", map[string]any{"token": nw.Token}, 0)
	if l.Data["creation_path"] != "sys/wrapping/wrap" || l.Data["creation_ttl"] != int64(3600) {
		t.Fatalf("lookup after rewrap: %v", l.Data)
	}
	// A shorter request TTL wins over the original one.
	nw2 := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/rewrap", map[string]any{"token": nw.Token}, time.Minute))
	if nw2.TTL != time.Minute {
		t.Fatalf("rewrap with a shorter TTL: %+v", nw2)
	}
	// Unwrap with a wrap TTL moves the response to a new token too.
	nw3 := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/unwrap", map[string]any{"token": nw2.Token}, time.Minute))
	env := unwrapped(t, mustReq(t, c, user, "update", "sys/wrapping/unwrap", map[string]any{"token": nw3.Token}, 0))
	if env.Data["k"] != "v" {
		t.Fatalf("unwrapped after rewraps: %+v", env)
	}
}

func TestWrappedLoginAndTokenCreate(t *testing.T) {
	c, u, _, root := wrapCore(t)
	fa := &fakeAuth{auth: &logical.Auth{DisplayName: "ada", Policies: []string{"dev"}, TTL: time.Hour, Renewable: true}}
	e := mount.NewEntry("fake/", "fake")
	if err := u.auths.table.Add(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	u.router.Add(&router.Route{Prefix: "auth/fake/", Type: "fake", Accessor: e.Accessor, Handler: fa, Auth: true})

	w := wrapOf(t, mustReq(t, c, "", "update", "auth/fake/login", nil, time.Minute))
	if w.WrappedAccessor == "" || w.CreationPath != "auth/fake/login" {
		t.Fatalf("wrapped login: %+v", w)
	}
	env := unwrapped(t, mustReq(t, c, w.Token, "update", "sys/wrapping/unwrap", nil, 0))
	tok, _ := env.Auth["client_token"].(string)
	if tok == "" || env.Auth["accessor"] != w.WrappedAccessor || env.Data["note"] != "hello" || env.Auth["lease_duration"] != 3600.0 {
		t.Fatalf("unwrapped login: %+v", env)
	}
	if look := mustReq(t, c, tok, "read", "auth/token/lookup-self", nil, 0); look.Data["display_name"] != "fake-ada" {
		t.Fatalf("the unwrapped token does not work: %v", look.Data)
	}
	// A wrapped token create (what wrapped secret IDs are to AppRole).
	w = wrapOf(t, mustReq(t, c, root, "update", "auth/token/create", map[string]any{"policies": []any{"default"}}, time.Minute))
	env = unwrapped(t, mustReq(t, c, root, "update", "sys/wrapping/unwrap", map[string]any{"token": w.Token}, 0))
	if env.Auth["accessor"] != w.WrappedAccessor || env.Auth["client_token"] == "" || env.Data != nil {
		t.Fatalf("unwrapped token create: %+v", env)
	}
}

// TestConcurrentUnwrapsOneWins: of many simultaneous unwraps of one token,
// first-party and third-party, exactly one gets the response.
func TestConcurrentUnwrapsOneWins(t *testing.T) {
	c, _, _, root := wrapCore(t)
	for round := 0; round < 5; round++ {
		w := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/wrap", map[string]any{"k": "v"}, time.Minute))
		var wins, invalid atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := &Request{Request: &logical.Request{Operation: logical.UpdateOperation, Path: "sys/wrapping/unwrap"}}
				if i%2 == 0 {
					r.ClientToken = w.Token
				} else {
					r.ClientToken, r.Data = root, map[string]any{"token": w.Token}
				}
				resp, err := c.HandleRequest(context.Background(), r)
				switch {
				case err == nil && resp != nil && resp.Raw != nil:
					wins.Add(1)
				case errors.Is(err, ErrInvalidWrappingToken):
					invalid.Add(1)
				default:
					t.Errorf("unexpected unwrap outcome: %v %+v", err, resp)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || invalid.Load() != 15 {
			t.Fatalf("round %d: %d unwraps succeeded, %d refused", round, wins.Load(), invalid.Load())
		}
	}
}

// cancelOnPut calls cancel right after a write of a physical key holding
// marker succeeds: a client that leaves just after its token was spent.
type cancelOnPut struct {
	storage.Backend
	mu     sync.Mutex
	marker string
	cancel context.CancelFunc
}

func (s *cancelOnPut) Put(ctx context.Context, key string, value []byte) error {
	err := s.Backend.Put(ctx, key, value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.cancel != nil && s.marker != "" && strings.Contains(key, s.marker) {
		s.cancel()
		s.cancel = nil
	}
	return err
}

func (s *cancelOnPut) arm(marker string, cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marker, s.cancel = marker, cancel
}

// TestUnwrapConsumedEvenIfTheClientIsGone: once an unwrap has spent the
// token, the client leaving does not keep it alive: it is revoked and
// its cubbyhole deleted all the same.
func TestUnwrapConsumedEvenIfTheClientIsGone(t *testing.T) {
	phys := &cancelOnPut{Backend: storage.NewInmem()}
	c, u, _, root := wrapCoreOn(t, phys)
	for _, thirdParty := range []bool{false, true} {
		w := wrapOf(t, mustReq(t, c, root, "update", "sys/wrapping/wrap", map[string]any{"k": "v"}, time.Minute))
		te, _ := u.tokens.Lookup(context.Background(), w.Token)
		ctx, cancel := context.WithCancel(context.Background())
		phys.arm("sys/token/id/"+te.HashedID, cancel) // the write that spends the use
		r := &Request{ClientToken: w.Token, Request: &logical.Request{Operation: logical.UpdateOperation, Path: "sys/wrapping/unwrap"}}
		if thirdParty {
			r.ClientToken, r.Data = root, map[string]any{"token": w.Token}
		}
		_, _ = c.HandleRequest(ctx, r)
		if ctx.Err() == nil {
			t.Fatal("the test did not cancel the request")
		}
		if _, err := req(t, c, root, "update", "sys/wrapping/unwrap", map[string]any{"token": w.Token}, 0); !errors.Is(err, ErrInvalidWrappingToken) {
			t.Fatalf("third party %v: token usable after an unwrap whose client left: %v", thirdParty, err)
		}
		if ok, _ := u.tokens.ExistsHashed(context.Background(), te.HashedID); ok {
			t.Fatalf("third party %v: the used wrapping token is still stored", thirdParty)
		}
		waitCubbyholeGone(t, c, te.HashedID)
	}
}

func TestResponseWrappingPolicyIsFixed(t *testing.T) {
	c, _, _, root := wrapCore(t)
	for _, op := range []string{"update", "delete"} {
		if _, err := req(t, c, root, op, "sys/policies/acl/response-wrapping", map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`}, 0); status(err) != 400 {
			t.Fatalf("%s of the response-wrapping policy: %v", op, err)
		}
	}
	// A token holding it by name gets Vault's rules, not more.
	tok := newToken(t, c, root, map[string]any{"policies": []any{"response-wrapping"}, "no_default_policy": true})
	if _, err := req(t, c, tok, "read", "cubbyhole/anything", nil, 0); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("response-wrapping policy on cubbyhole/anything: %v", err)
	}
}

// failCubbyholeBatch fails batches writing a cubbyhole while armed.
type failCubbyholeBatch struct {
	storage.Backend
	armed atomic.Bool
}

func (f *failCubbyholeBatch) Batch(ctx context.Context, ops []storage.Op) error {
	if f.armed.Load() {
		for _, op := range ops {
			if strings.Contains(op.Key, "logical/cubbyhole/") {
				return errors.New("injected batch failure")
			}
		}
	}
	return f.Backend.Batch(ctx, ops)
}

// TestWrapFailureLeavesNoToken: when the wrapped response cannot be
// stored the client gets a 500, and neither the wrapping token nor the
// token the response minted survives.
func TestWrapFailureLeavesNoToken(t *testing.T) {
	phys := &failCubbyholeBatch{Backend: storage.NewInmem()}
	c, _, _, root := wrapCoreOn(t, phys)
	count := func() int {
		t.Helper()
		r := mustReq(t, c, root, "list", "auth/token/accessors/", nil, 0)
		keys, _ := r.Data["keys"].([]string)
		return len(keys)
	}
	before := count()
	phys.armed.Store(true)
	_, err := req(t, c, root, "update", "auth/token/create", map[string]any{"policies": []any{"default"}}, time.Minute)
	phys.armed.Store(false)
	if status(err) != 500 || strings.Contains(err.Error(), "injected") {
		t.Fatalf("failed wrap: %v", err)
	}
	if after := count(); after != before {
		t.Fatalf("%d tokens before a failed wrapped create, %d after", before, after)
	}
}
