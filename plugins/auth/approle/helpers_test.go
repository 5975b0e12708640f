package approle

import (
	"context"
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
	s     *logical.InmemStorage
	clock *fakeClock
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvOn(tb, logical.NewInmemStorage(), &fakeClock{t: epoch})
}

// newEnvOn builds a backend on existing storage, as after a plugin restart.
func newEnvOn(tb testing.TB, s *logical.InmemStorage, clock *fakeClock) *env {
	tb.Helper()
	b, err := newBackend(&logical.BackendConfig{StorageView: s, MountPoint: "auth/approle/", MountType: "approle"}, clock.Now)
	if err != nil {
		tb.Fatalf("newBackend: %v", err)
	}
	return &env{tb: tb, b: b, s: s, clock: clock}
}

// do sends one request as the kernel would.
func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "auth/approle/",
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

// login logs in from addr.
func (e *env) login(roleID, secretID, addr string) (*logical.Response, error) {
	data := map[string]any{"role_id": roleID}
	if secretID != "" {
		data["secret_id"] = secretID
	}
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "login", Data: data, Storage: e.s,
		RemoteAddr: addr, Unauthenticated: true, MountPoint: "auth/approle/",
	})
}

// mustLogin logs in and returns the Auth.
func (e *env) mustLogin(roleID, secretID, addr string) *logical.Auth {
	e.tb.Helper()
	resp, err := e.login(roleID, secretID, addr)
	if err != nil {
		e.tb.Fatalf("login: %v", err)
	}
	if resp == nil || resp.Auth == nil {
		e.tb.Fatalf("login: no Auth in %+v", resp)
	}
	return resp.Auth
}

// loginFails asserts the one generic login refusal.
func (e *env) loginFails(roleID, secretID, addr string) {
	e.tb.Helper()
	resp, err := e.login(roleID, secretID, addr)
	if err == nil {
		e.tb.Fatalf("login: want refusal, got %+v", resp)
	}
	if logical.CodeOf(err) != logical.CodeInvalidRequest || err.Error() != "invalid role ID or secret ID" {
		e.tb.Fatalf("login: refusal %q (code %d) is not the generic one", err, logical.CodeOf(err))
	}
}

// renew sends the kernel's renewal of a token issued from a.
func (e *env) renew(a *logical.Auth) (*logical.Response, error) {
	c := *a
	c.IssueTime = e.clock.Now()
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation, Path: "login", Auth: &c, Storage: e.s, MountPoint: "auth/approle/",
	})
}

// role creates or updates a role and returns its role ID.
func (e *env) role(name string, data map[string]any) string {
	e.tb.Helper()
	e.ok(logical.UpdateOperation, "role/"+name, data)
	return e.ok(logical.ReadOperation, "role/"+name+"/role-id", nil).Data["role_id"].(string)
}

// secretID issues a secret ID and returns it and its accessor.
func (e *env) secretID(name string, data map[string]any) (secret, accessor string) {
	e.tb.Helper()
	resp := e.ok(logical.UpdateOperation, "role/"+name+"/secret-id", data)
	return resp.Data["secret_id"].(string), resp.Data["secret_id_accessor"].(string)
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

// keysUnder returns the storage keys starting with prefix.
func (e *env) keysUnder(prefix string) []string {
	e.tb.Helper()
	var out []string
	for _, k := range e.storageKeys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// storageContains reports whether any key or value in storage contains s.
func (e *env) storageContains(s string) bool {
	e.tb.Helper()
	for _, k := range e.storageKeys() {
		if strings.Contains(k, s) {
			return true
		}
		ent, err := e.s.Get(context.Background(), k)
		if err != nil {
			e.tb.Fatal(err)
		}
		if strings.Contains(string(ent.Value), s) {
			return true
		}
	}
	return false
}
