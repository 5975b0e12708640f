package userpass

import (
	"context"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/wardproject/ward/sdk/logical"
)

// env is one mount backed by InmemStorage, hashing at bcrypt.MinCost.
type env struct {
	tb testing.TB
	b  *backend
	s  *logical.InmemStorage

	mu       sync.Mutex // protects compared
	compared [][]byte   // hashes given to bcrypt at login, in order
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	s := logical.NewInmemStorage()
	b, err := newBackend(&logical.BackendConfig{StorageView: s, MountPoint: "userpass/", MountType: "userpass"}, bcrypt.MinCost)
	if err != nil {
		tb.Fatalf("newBackend: %v", err)
	}
	e := &env{tb: tb, b: b, s: s}
	b.compare = func(hash, pw []byte) error {
		e.mu.Lock()
		e.compared = append(e.compared, hash)
		e.mu.Unlock()
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	return e
}

// takeCompared returns and clears the hashes compared so far.
func (e *env) takeCompared() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.compared
	e.compared = nil
	return c
}

// do sends one request as the kernel would, from 127.0.0.1.
func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.doFrom("127.0.0.1:50000", op, path, data)
}

func (e *env) doFrom(addr string, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "userpass/",
		RemoteAddr: addr, Unauthenticated: strings.HasPrefix(path, "login"),
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

// fails checks that err has code and a message containing msg, and that
// the message holds none of the secrets.
func fails(tb testing.TB, what string, err error, code logical.Code, msg string, secrets ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("%s: want error %q, got none", what, msg)
	}
	if got := logical.CodeOf(err); got != code {
		tb.Fatalf("%s: error %q has code %d, want %d", what, err, got, code)
	}
	if !strings.Contains(err.Error(), msg) {
		tb.Fatalf("%s: error %q does not contain %q", what, err, msg)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			tb.Fatalf("%s: error %q leaks a secret", what, err)
		}
	}
}

// fails sends a request that must fail.
func (e *env) fails(op logical.Operation, path string, data map[string]any, code logical.Code, msg string) {
	e.tb.Helper()
	_, err := e.do(op, path, data)
	var secrets []string
	if pw, ok := data["password"].(string); ok {
		secrets = append(secrets, pw)
	}
	fails(e.tb, string(op)+" "+path, err, code, msg, secrets...)
}

// login logs in and returns the Auth, failing the test on error.
func (e *env) login(name, password string) *logical.Auth {
	e.tb.Helper()
	resp := e.ok(logical.UpdateOperation, "login/"+name, map[string]any{"password": password})
	if resp == nil || resp.Auth == nil {
		e.tb.Fatalf("login %s: no auth in response %+v", name, resp)
	}
	return resp.Auth
}

// loginFails checks that a login is refused with the generic answer.
func (e *env) loginFails(addr, name, password string) {
	e.tb.Helper()
	_, err := e.doFrom(addr, logical.UpdateOperation, "login/"+name, map[string]any{"password": password})
	fails(e.tb, "login "+name, err, logical.CodeInvalidRequest, "invalid username or password", password)
	if err.Error() != "invalid username or password" {
		e.tb.Fatalf("login %s: error %q is not exactly the generic one", name, err)
	}
}

// renew sends the kernel's renewal of a token with the given Auth.
func (e *env) renew(a *logical.Auth) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation, Path: "login/" + a.Metadata["username"], Auth: a, Storage: e.s,
	})
}

// record returns the stored user record.
func (e *env) record(name string) *userEntry {
	e.tb.Helper()
	u, err := getUser(context.Background(), e.s, name)
	if err != nil || u == nil {
		e.tb.Fatalf("record %s: %v, %v", name, u, err)
	}
	return u
}
