package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/plugins/secrets/database/pgtest"
)

// TestDatabaseLeasesThroughTheAPI: dynamic PostgreSQL credentials under
// the kernel's leases, through the OpenBao client: issue, look up, renew,
// revoke; revoking the token revokes its leases; expiry revokes them too.
func TestDatabaseLeasesThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.New(t)
	admin, adminPW := pg.NewSuperuser(t)
	srv, root := devServer(t, serverOpts{})
	isolateEnv(t)
	t.Setenv("VAULT_ADDR", srv.addr)
	t.Setenv("VAULT_TOKEN", "root")
	if err := root.Sys().Mount("database", &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": pg.TemplateURL(),
		"username": admin, "password": adminPW, "allowed_roles": "*",
	}); err != nil {
		t.Fatal(err)
	}
	for name, ttl := range map[string]string{"ro": "1h", "short": "2s"} {
		if _, err := root.Logical().Write("database/roles/"+name, map[string]any{
			"db_name":             "pg",
			"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			"default_ttl":         ttl, "max_ttl": "2h",
		}); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(user string) bool {
		t.Helper()
		ok, err := pg.RoleExists(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// Issue: a working PostgreSQL login under a lease.
	s, err := root.Logical().Read("database/creds/ro")
	if err != nil {
		t.Fatal(err)
	}
	user, pw := s.Data["username"].(string), s.Data["password"].(string)
	if s.LeaseID == "" || s.LeaseDuration != 3600 || !s.Renewable {
		t.Fatalf("lease: %q %d %v", s.LeaseID, s.LeaseDuration, s.Renewable)
	}
	conn, err := pg.Connect(ctx, user, pw)
	if err != nil {
		t.Fatalf("log in with the issued credentials: %v", err)
	}
	conn.Close(ctx)

	// Look up, renew, revoke (the CLI looks up and renews).
	l, err := root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": s.LeaseID})
	if err != nil || l.Data["id"] != s.LeaseID {
		t.Fatalf("lookup: %v %v", l, err)
	}
	if r := ward(t, "", "lease", "lookup", "-field=renewable", s.LeaseID); r.code != 0 || strings.TrimSpace(r.stdout) != "true" {
		t.Fatalf("ward lease lookup: %+v", r)
	}
	if r := ward(t, "", "lease", "renew", "-increment=15m", s.LeaseID); r.code != 0 || !strings.Contains(r.stdout, "lease_duration") {
		t.Fatalf("ward lease renew: %+v", r)
	}
	r, err := root.Sys().Renew(s.LeaseID, 600)
	if err != nil || r == nil || r.LeaseDuration < 590 || r.LeaseDuration > 600 {
		t.Fatalf("renew: %+v %v", r, err)
	}
	if err := root.Sys().Revoke(s.LeaseID); err != nil {
		t.Fatal(err)
	}
	if exists(user) {
		t.Fatal("the PostgreSQL role survived the revocation of its lease")
	}
	if _, err := root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": s.LeaseID}); err == nil {
		t.Fatal("a revoked lease is still looked up")
	}

	// Revoking a token revokes the leases it created.
	if err := root.Sys().PutPolicy("dbread", `path "database/creds/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"dbread"}})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ts(root, tok.Auth.ClientToken).Logical().Read("database/creds/ro")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Auth().Token().RevokeTree(tok.Auth.ClientToken); err != nil {
		t.Fatal(err)
	}
	if exists(s2.Data["username"].(string)) {
		t.Fatal("the PostgreSQL role survived the revocation of the token that created it")
	}

	// The CLI revokes by prefix.
	s4, err := root.Logical().Read("database/creds/ro")
	if err != nil {
		t.Fatal(err)
	}
	if r := ward(t, "", "lease", "revoke", "-prefix", "database/creds/ro"); r.code != 0 {
		t.Fatalf("ward lease revoke -prefix: %+v", r)
	}
	if exists(s4.Data["username"].(string)) {
		t.Fatal("the PostgreSQL role survived ward lease revoke -prefix")
	}

	// Expiry revokes too (default_ttl 2s).
	s3, err := root.Logical().Read("database/creds/short")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for exists(s3.Data["username"].(string)) {
		if time.Now().After(deadline) {
			t.Fatal("the expired lease's role was not dropped")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Disabling the engine revokes its leases first, as Vault does; while
	// PostgreSQL is down that cannot happen, so the mount stays, serving.
	s5, err := root.Logical().Read("database/creds/ro")
	if err != nil {
		t.Fatal(err)
	}
	pg.Down()
	err = root.Sys().Unmount("database")
	if err == nil || !strings.Contains(err.Error(), "revoke the leases of database/") {
		t.Fatalf("disable with PostgreSQL down: %v", err)
	}
	if err := pg.Up(); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Read("database/roles/ro"); err != nil {
		t.Fatalf("the mount after a refused disable: %v", err)
	}
	if !exists(s5.Data["username"].(string)) {
		t.Fatal("a refused disable dropped a role")
	}
	if err := root.Sys().Unmount("database"); err != nil {
		t.Fatal(err)
	}
	if exists(s5.Data["username"].(string)) {
		t.Fatal("the PostgreSQL role survived disabling its secret engine")
	}
	if l, err := root.Logical().List("sys/leases/lookup/database/creds/ro"); err != nil || l != nil {
		t.Fatalf("leases left after disable: %v %v", l, err)
	}
}

// ts returns a copy of c that sends token.
func ts(c *api.Client, token string) *api.Client {
	cc, err := c.Clone()
	if err != nil {
		panic(err)
	}
	cc.SetToken(token)
	return cc
}
