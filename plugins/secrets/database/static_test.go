package database

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// staticUser creates a database user with a known password.
func staticUser(t *testing.T, name, pw string) {
	t.Helper()
	sqlExec(t, "CREATE ROLE "+ident(name)+" WITH LOGIN PASSWORD '"+pw+"'")
	t.Cleanup(func() { _ = srv.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident(name)) })
}

func TestStaticRoleRotation(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	user, initial := uniqueName(t, "svc"), "Initial-Password-123456"
	staticUser(t, user, initial)

	e.ok(logical.UpdateOperation, "static-roles/svc", map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "1h",
	})
	// Creation takes the password over.
	mustNotLogin(t, user, initial)
	creds := e.ok(logical.ReadOperation, "static-creds/svc", nil).Data
	pw1 := creds["password"].(string)
	mustLogin(t, user, pw1, "SELECT 1")
	if creds["username"] != user || creds["rotation_period"] != int64(3600) {
		t.Fatalf("static-creds: %v", creds)
	}
	if ttl := creds["ttl"].(int64); ttl < 3590 || ttl > 3600 {
		t.Fatalf("ttl %d, want about 3600", ttl)
	}
	if _, err := time.Parse(time.RFC3339Nano, creds["last_vault_rotation"].(string)); err != nil {
		t.Fatalf("last_vault_rotation: %v", err)
	}
	role := e.ok(logical.ReadOperation, "static-roles/svc", nil).Data
	if _, ok := role["password"]; ok || role["username"] != user {
		t.Fatalf("static role read: %v", role)
	}

	// Not yet due: the same password.
	e.clock.Advance(30 * time.Minute)
	if got := e.ok(logical.ReadOperation, "static-creds/svc", nil).Data["password"]; got != pw1 {
		t.Fatal("password changed before the rotation period")
	}
	// Due: a read rotates lazily.
	e.clock.Advance(31 * time.Minute)
	pw2 := e.ok(logical.ReadOperation, "static-creds/svc", nil).Data["password"].(string)
	if pw2 == pw1 {
		t.Fatal("a due password was not rotated on read")
	}
	mustNotLogin(t, user, pw1)
	mustLogin(t, user, pw2, "")

	// rotate-role forces a rotation.
	e.ok(logical.UpdateOperation, "rotate-role/svc", nil)
	pw3 := e.ok(logical.ReadOperation, "static-creds/svc", nil).Data["password"].(string)
	if pw3 == pw2 {
		t.Fatal("rotate-role did not rotate")
	}
	mustLogin(t, user, pw3, "")

	// rotate-due rotates only what is due and says when the next is.
	user2 := uniqueName(t, "svc")
	staticUser(t, user2, "Initial-Password-654321")
	e.ok(logical.UpdateOperation, "static-roles/svc2", map[string]any{
		"db_name": "pg", "username": user2, "rotation_period": "10m",
		"rotation_statements": []any{`ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';`},
	})
	e.clock.Advance(11 * time.Minute)
	resp := e.ok(logical.UpdateOperation, "rotate-due", nil).Data
	if r := resp["rotated"].([]string); len(r) != 1 || r[0] != "svc2" {
		t.Fatalf("rotate-due rotated %v, want [svc2]", r)
	}
	if f := resp["failed"].(map[string]any); len(f) != 0 {
		t.Fatalf("rotate-due failures: %v", f)
	}
	if in := resp["next_rotation_in"].(int64); in < 590 || in > 600 {
		t.Fatalf("next_rotation_in %d, want about 600 (svc2 just rotated)", in)
	}
	if got := e.ok(logical.ReadOperation, "static-creds/svc", nil).Data["password"]; got != pw3 {
		t.Fatal("rotate-due rotated a role that was not due")
	}

	// The host's periodic call does the same, with no request from anyone.
	pw4 := e.ok(logical.ReadOperation, "static-creds/svc2", nil).Data["password"].(string)
	e.clock.Advance(11 * time.Minute)
	if resp, err := e.do(logical.RollbackOperation, "", nil); resp != nil || err != nil {
		t.Fatalf("periodic call: %v %v", resp, err)
	}
	var raw struct {
		Password string `json:"password"`
	}
	if se, err := e.s.Get(context.Background(), staticRolePrefix+"svc2"); err != nil || se == nil || se.DecodeJSON(&raw) != nil {
		t.Fatalf("static role after the periodic call: %v %v", se, err)
	}
	if raw.Password == "" || raw.Password == pw4 {
		t.Fatal("the periodic call did not rotate a role that was due")
	}
	mustLogin(t, user2, raw.Password, "")
	pw3 = e.ok(logical.ReadOperation, "static-creds/svc", nil).Data["password"].(string)

	// The user and database of a static role are fixed.
	e.fails(logical.UpdateOperation, "static-roles/svc", map[string]any{"username": "other"},
		logical.CodeInvalidRequest, "username cannot be changed")
	e.ok(logical.UpdateOperation, "static-roles/svc", map[string]any{"rotation_period": "2h"})
	if keys := e.ok(logical.ListOperation, "static-roles/", nil).Data["keys"].([]string); len(keys) != 2 {
		t.Fatalf("static roles: %v", keys)
	}

	// Deleting the role leaves the user with its password.
	e.ok(logical.DeleteOperation, "static-roles/svc", nil)
	mustLogin(t, user, pw3, "")
	e.fails(logical.ReadOperation, "static-creds/svc", nil, logical.CodeNotFound, "unknown static role")
	if strings.Contains(e.log.text(), pw3) || strings.Contains(e.log.text(), user) {
		t.Fatal("a log line holds a static credential")
	}
}

func TestStaticRoleErrors(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", map[string]any{"allowed_roles": "ok-*"})
	user := uniqueName(t, "svc")
	staticUser(t, user, "Initial-Password-123456")

	e.fails(logical.UpdateOperation, "static-roles/ok-missing", map[string]any{
		"db_name": "pg", "username": "no_such_user_xyz", "rotation_period": "1h",
	}, logical.CodeInvalidRequest, "42704")
	if e.ok(logical.ReadOperation, "static-roles/ok-missing", nil) != nil {
		t.Fatal("a static role whose rotation failed was kept")
	}
	e.fails(logical.UpdateOperation, "static-roles/denied", map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "1h",
	}, logical.CodeInvalidRequest, "allowed_roles")
	e.fails(logical.UpdateOperation, "static-roles/ok-short", map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "1s",
	}, logical.CodeInvalidRequest, "rotation_period")
	e.ok(logical.UpdateOperation, "static-roles/ok-a", map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "1h",
	})
	e.fails(logical.UpdateOperation, "static-roles/ok-b", map[string]any{
		"db_name": "pg", "username": user, "rotation_period": "1h",
	}, logical.CodeInvalidRequest, "already manages")
	e.fails(logical.UpdateOperation, "roles/ok-a", map[string]any{
		"db_name": "pg", "creation_statements": "SELECT 1",
	}, logical.CodeInvalidRequest, "static role")

	// A rotation the server rejects keeps the current password, which a
	// read still answers, with a warning.
	pw := e.ok(logical.ReadOperation, "static-creds/ok-a", nil).Data["password"].(string)
	e.ok(logical.UpdateOperation, "static-roles/ok-a", map[string]any{"rotation_statements": "ALTER ROLE nope_xyz_missing PASSWORD '{{password}}'"})
	e.fails(logical.UpdateOperation, "rotate-role/ok-a", nil, logical.CodeInvalidRequest, "42704")
	e.clock.Advance(2 * time.Hour)
	resp := e.ok(logical.ReadOperation, "static-creds/ok-a", nil)
	if resp.Data["password"] != pw || len(resp.Warnings) != 1 {
		t.Fatalf("want the current password and a warning, got %+v", resp)
	}
	due := e.ok(logical.UpdateOperation, "rotate-due", nil).Data
	if f := due["failed"].(map[string]any); f["ok-a"] == nil {
		t.Fatalf("rotate-due should report ok-a failing: %v", due)
	}
	mustLogin(t, user, pw, "")
}

// TestStaticRoleInterrupted: a rotation interrupted after its pending
// password was stored makes the role due; the next read rotates afresh.
func TestStaticRoleInterrupted(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	user := uniqueName(t, "svc")
	staticUser(t, user, "Initial-Password-123456")
	e.ok(logical.UpdateOperation, "static-roles/svc", map[string]any{"db_name": "pg", "username": user, "rotation_period": "1h"})
	stored, _ := e.s.Get(context.Background(), "static-role/svc")
	var r staticRole
	if err := json.Unmarshal(stored.Value, &r); err != nil {
		t.Fatal(err)
	}
	r.PendingPassword = "Unknown-Outcome-Password-1"
	ent, _ := logical.StorageEntryJSON("static-role/svc", r)
	_ = e.s.Put(context.Background(), ent)
	pw := e.ok(logical.ReadOperation, "static-creds/svc", nil).Data["password"].(string)
	if pw == r.Password || pw == r.PendingPassword {
		t.Fatal("an interrupted rotation was not redone")
	}
	mustLogin(t, user, pw, "")
}
