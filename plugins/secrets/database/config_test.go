package database

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// TestConfigVerify: a working connection is saved, a failing one is
// refused with a clean 400, and reads never return the password.
func TestConfigVerify(t *testing.T) {
	e := newEnv(t)
	user, pw := e.configure("pg", map[string]any{"max_open_connections": 7})

	data := e.ok(logical.ReadOperation, "config/pg", nil).Data
	b, _ := json.Marshal(data)
	if strings.Contains(string(b), pw) || strings.Contains(string(b), `"password":`) {
		t.Fatalf("config read shows the password: %s", b)
	}
	details := data["connection_details"].(map[string]any)
	if details["username"] != user || details["max_open_connections"] != 7 || data["verify_connection"] != true {
		t.Fatalf("config read: %s", b)
	}
	if keys := e.ok(logical.ListOperation, "config/", nil).Data["keys"].([]string); len(keys) != 1 || keys[0] != "pg" {
		t.Fatalf("list: %v", keys)
	}

	wrong := "Wrong-" + pw
	msg := e.fails(logical.UpdateOperation, "config/bad", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": srv.TemplateURL(),
		"username": user, "password": wrong,
	}, logical.CodeInvalidRequest, "error verifying the connection")
	if strings.Contains(msg, wrong) || !strings.Contains(msg, "28P01") {
		t.Fatalf("verify error %q: want the server's reason without the password", msg)
	}
	if e.ok(logical.ReadOperation, "config/bad", nil) != nil {
		t.Fatal("a configuration that failed verification was saved")
	}

	// Nothing listens on port 1.
	msg = e.fails(logical.UpdateOperation, "config/down", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": "postgres://{{username}}:{{password}}@127.0.0.1:1/postgres?sslmode=disable",
		"username":       user, "password": pw,
	}, logical.CodeInvalidRequest, "error verifying the connection")
	if strings.Contains(msg, pw) {
		t.Fatalf("error %q holds the password", msg)
	}
	// ... unless verification is off.
	e.ok(logical.UpdateOperation, "config/down", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": "postgres://{{username}}:{{password}}@127.0.0.1:1/postgres?sslmode=disable",
		"username":       user, "password": pw, "verify_connection": false,
	})

	for _, tc := range []struct {
		data map[string]any
		msg  string
	}{
		{map[string]any{"plugin_name": "mysql-database-plugin", "connection_url": srv.TemplateURL()}, "plugin_name"},
		{map[string]any{"plugin_name": "postgresql-database-plugin"}, "connection_url is required"},
		{map[string]any{"plugin_name": "postgresql-database-plugin", "connection_url": "postgres://{{username}}@h:notaport/x"}, "username is not set"},
		{map[string]any{"plugin_name": "postgresql-database-plugin", "connection_url": "postgres://u:p@h:notaport/x"}, "could not be parsed"},
		{map[string]any{"plugin_name": "postgresql-database-plugin", "connection_url": srv.TemplateURL(),
			"username": "u", "password": "p", "password_policy": map[string]any{"length": 8}}, "bits"},
		{map[string]any{"plugin_name": "postgresql-database-plugin", "connection_url": srv.TemplateURL(),
			"username": "u", "password": "p", "password_policy": "nope"}, "password_policy"},
		{map[string]any{"plugin_name": "postgresql-database-plugin", "connection_url": srv.TemplateURL(),
			"username": "u", "password": "p", "max_open_connections": 0}, "max_open_connections"},
	} {
		e.fails(logical.UpdateOperation, "config/x", tc.data, logical.CodeInvalidRequest, tc.msg)
	}

	// Unknown fields are reported, as Vault does.
	resp := e.ok(logical.UpdateOperation, "config/pg", map[string]any{"bogus": 1})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "bogus") {
		t.Fatalf("want a warning about bogus, got %+v", resp)
	}

	e.ok(logical.DeleteOperation, "config/pg", nil)
	if e.ok(logical.ReadOperation, "config/pg", nil) != nil {
		t.Fatal("deleted configuration still reads")
	}
}

// TestConfigChangeReplacesPool: a configuration write drops the cached
// pool, so the next request uses the new settings.
func TestConfigChangeReplacesPool(t *testing.T) {
	e := newEnv(t)
	_, pw := e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))
	_, _, sec := e.creds("ro")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}

	e.ok(logical.UpdateOperation, "config/pg", map[string]any{"password": "not-it", "verify_connection": false})
	msg := e.fails(logical.ReadOperation, "creds/ro", nil, logical.CodeInternal, "could not connect")
	if strings.Contains(msg, "not-it") {
		t.Fatalf("error %q holds the password", msg)
	}
	e.ok(logical.UpdateOperation, "config/pg", map[string]any{"password": pw})
	_, _, sec = e.creds("ro")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}

	// InvalidateKey drops the pool too (a change made by another replica).
	stored, _ := e.s.Get(context.Background(), "config/pg")
	var c dbConfig
	if err := json.Unmarshal(stored.Value, &c); err != nil {
		t.Fatal(err)
	}
	c.MaxOpenConnections = 2
	ent, _ := logical.StorageEntryJSON("config/pg", c)
	_ = e.s.Put(context.Background(), ent)
	e.b.InvalidateKey(context.Background(), "config/pg")
	_, _, sec = e.creds("ro")
	e.b.mu.Lock()
	got := e.b.conns["pg"].cfg.MaxOpenConnections
	e.b.mu.Unlock()
	if got != 2 {
		t.Fatalf("pool built from max_open_connections %d, want 2 after invalidation", got)
	}
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}
	e.ok(logical.UpdateOperation, "reset/pg", nil)
}

// TestRotateRoot: after rotate-root the old root password no longer works,
// the engine still does, and the new password appears in no response.
func TestRotateRoot(t *testing.T) {
	e := newEnv(t)
	user, pw := e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))
	_, _, before := e.creds("ro") // a pool with the old password is cached

	if resp := e.ok(logical.UpdateOperation, "rotate-root/pg", nil); resp != nil && len(resp.Data) > 0 {
		t.Fatalf("rotate-root answered data: %v", resp.Data)
	}
	mustNotLogin(t, user, pw)
	if e.storageContains(pw) {
		t.Fatal("the old root password is still stored")
	}
	u, p, sec := e.creds("ro")
	mustLogin(t, u, p, "SELECT * FROM "+ident(table))
	for _, s := range []*logical.Secret{before, sec} {
		if err := e.revoke(s); err != nil {
			t.Fatalf("revoke after rotate-root: %v", err)
		}
	}
	// Twice in a row works (the engine knows the current password).
	e.ok(logical.UpdateOperation, "rotate-root/pg", nil)
	_, _, sec = e.creds("ro")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}

	// Without {{password}} in the URL there is nothing to rotate.
	e.ok(logical.UpdateOperation, "config/inline", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": srv.URL(user, "x"), "verify_connection": false,
	})
	e.fails(logical.UpdateOperation, "rotate-root/inline", nil, logical.CodeInvalidRequest, "{{password}}")
	e.fails(logical.UpdateOperation, "rotate-root/none", nil, logical.CodeInvalidRequest, "does not exist")
	if strings.Contains(e.log.text(), pw) {
		t.Fatal("a log line holds the root password")
	}
}

// TestRotateRootInterrupted: a crash after ALTER ROLE but before the new
// password was promoted leaves it pending; the next connection settles
// which password is right.
func TestRotateRootInterrupted(t *testing.T) {
	e := newEnv(t)
	user, _ := e.configure("pg", nil)
	newPw := "Pending-Root-Password-1234567890"
	stored, _ := e.s.Get(context.Background(), "config/pg")
	var c dbConfig
	if err := json.Unmarshal(stored.Value, &c); err != nil {
		t.Fatal(err)
	}
	c.PendingPassword = newPw
	ent, _ := logical.StorageEntryJSON("config/pg", c)
	_ = e.s.Put(context.Background(), ent)
	sqlExec(t, "ALTER ROLE "+ident(user)+" WITH PASSWORD '"+newPw+"'")
	e.b.InvalidateKey(context.Background(), "config/pg")

	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))
	_, _, sec := e.creds("ro")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}
	stored, _ = e.s.Get(context.Background(), "config/pg")
	var after dbConfig
	_ = json.Unmarshal(stored.Value, &after)
	if after.Password != newPw || after.PendingPassword != "" {
		t.Fatal("the pending root password was not promoted")
	}
}
