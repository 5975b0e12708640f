package database

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardproject/ward/plugins/secrets/database/pgtest"
	"github.com/wardproject/ward/sdk/logical"
)

// srv is the package's throwaway PostgreSQL server.
var srv *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &srv) }

// testClock is real time shifted by an offset the test moves: the
// database compares VALID UNTIL with its own clock, so the engine's clock
// must stay near real time.
type testClock struct {
	mu  sync.Mutex // protects off
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// recLogger records every log line, to check that none holds a secret.
type recLogger struct {
	mu    sync.Mutex // protects lines
	lines []string
}

func (l *recLogger) log(level, msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+msg+" "+fmt.Sprint(args...))
}
func (l *recLogger) Debug(msg string, args ...any) { l.log("debug", msg, args...) }
func (l *recLogger) Info(msg string, args ...any)  { l.log("info", msg, args...) }
func (l *recLogger) Warn(msg string, args ...any)  { l.log("warn", msg, args...) }
func (l *recLogger) Error(msg string, args ...any) { l.log("error", msg, args...) }

func (l *recLogger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// env is one mount on InmemStorage.
type env struct {
	tb    testing.TB
	b     *backend
	s     *logical.InmemStorage
	clock *testClock
	log   *recLogger
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	clock, log, s := &testClock{}, &recLogger{}, logical.NewInmemStorage()
	b, err := newBackend(&logical.BackendConfig{StorageView: s, MountPoint: "database/", MountType: "database", Logger: log}, clock.Now)
	if err != nil {
		tb.Fatalf("newBackend: %v", err)
	}
	tb.Cleanup(func() { b.Cleanup(context.Background()) })
	return &env{tb: tb, b: b, s: s, clock: clock, log: log}
}

func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "database/",
	})
}

func (e *env) ok(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.tb.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		e.tb.Fatalf("%s %s: unexpected error: %v", op, path, err)
	}
	return resp
}

// fails sends a request that must fail with code and a message containing
// msg, and returns the error text.
func (e *env) fails(op logical.Operation, path string, data map[string]any, code logical.Code, msg string) string {
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
	return err.Error()
}

// configure writes config/<name> for a fresh superuser of the server and
// returns that user's name and password. extra overrides fields.
func (e *env) configure(name string, extra map[string]any) (rootUser, rootPassword string) {
	e.tb.Helper()
	rootUser, rootPassword = srv.NewSuperuser(e.tb)
	data := map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": srv.TemplateURL(),
		"username":       rootUser,
		"password":       rootPassword,
		"allowed_roles":  "*",
	}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "config/"+name, data)
	return rootUser, rootPassword
}

// creds reads creds/<role> and returns the credentials and the Secret.
func (e *env) creds(role string) (username, password string, sec *logical.Secret) {
	e.tb.Helper()
	resp := e.ok(logical.ReadOperation, "creds/"+role, nil)
	if resp == nil || resp.Secret == nil {
		e.tb.Fatalf("creds/%s: no secret in %+v", role, resp)
	}
	sec = resp.Secret
	sec.IssueTime = e.clock.Now()
	sec.LeaseID = "database/creds/" + role + "/test"
	return resp.Data["username"].(string), resp.Data["password"].(string), sec
}

// revoke sends the kernel's revocation of a lease.
func (e *env) revoke(sec *logical.Secret) error {
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RevokeOperation, Path: "creds/x", Secret: sec, Storage: e.s, MountPoint: "database/",
	})
	return err
}

// renew sends the kernel's renewal of a lease asking for ttl.
func (e *env) renew(sec *logical.Secret, ttl time.Duration) (*logical.Response, error) {
	c := *sec
	c.TTL = ttl
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation, Path: "creds/x", Secret: &c, Storage: e.s, MountPoint: "database/",
	})
}

// storageContains reports whether any stored key or value contains s.
func (e *env) storageContains(s string) bool {
	e.tb.Helper()
	keys, err := logical.CollectKeys(context.Background(), e.s, "")
	if err != nil {
		e.tb.Fatal(err)
	}
	for _, k := range keys {
		ent, _ := e.s.Get(context.Background(), k)
		if strings.Contains(k, s) || (ent != nil && strings.Contains(string(ent.Value), s)) {
			return true
		}
	}
	return false
}

// login connects as user and runs sql; it returns the error, if any.
func login(user, password, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := srv.Connect(ctx, user, password)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if sql == "" {
		return nil
	}
	_, err = c.Exec(ctx, sql)
	return err
}

func mustLogin(tb testing.TB, user, password, sql string) {
	tb.Helper()
	if err := login(user, password, sql); err != nil {
		tb.Fatalf("login as the generated user and %q: %v", sql, err)
	}
}

func mustNotLogin(tb testing.TB, user, password string) {
	tb.Helper()
	if err := login(user, password, ""); err == nil {
		tb.Fatal("login succeeded, want it refused")
	}
}

func roleExists(tb testing.TB, name string) bool {
	tb.Helper()
	ok, err := srv.RoleExists(context.Background(), name)
	if err != nil {
		tb.Fatalf("role lookup: %v", err)
	}
	return ok
}

// validUntil returns the role's VALID UNTIL.
func validUntil(tb testing.TB, name string) time.Time {
	tb.Helper()
	var t time.Time
	if err := srv.QueryRow(context.Background(), []any{&t},
		"SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", name); err != nil {
		tb.Fatalf("rolvaliduntil: %v", err)
	}
	return t
}

// sqlExec runs sql as the server's superuser.
func sqlExec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	if err := srv.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

// uniqueName returns a fresh lower-case SQL name with a prefix.
func uniqueName(tb testing.TB, prefix string) string {
	tb.Helper()
	s, err := randomFrom("abcdefghijklmnopqrstuvwxyz", 10)
	if err != nil {
		tb.Fatal(err)
	}
	return prefix + "_" + s
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// readOnlyRole is a role whose users can SELECT from table.
func readOnlyRole(table string) map[string]any {
	return map[string]any{
		"db_name": "pg",
		"creation_statements": []any{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			`GRANT SELECT ON ` + ident(table) + ` TO "{{name}}";`,
		},
		"default_ttl": "1h",
		"max_ttl":     "24h",
	}
}
