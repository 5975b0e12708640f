package database

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// TestCredsLoginRevoke is the acceptance path: a generated user can log in
// and do what the role grants, and nothing more; revocation ends its
// session and drops it; a second revocation succeeds.
func TestCredsLoginRevoke(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int); INSERT INTO "+ident(table)+" VALUES (42)")
	e.ok(logical.UpdateOperation, "roles/readonly", readOnlyRole(table))

	user, pw, sec := e.creds("readonly")
	if !strings.HasPrefix(user, "v-readonly-") || len(user) > 63 {
		t.Fatalf("username %q: want v-readonly-... of at most 63 bytes", user)
	}
	if len(pw) != defaultPasswordLength {
		t.Fatalf("password length %d, want %d", len(pw), defaultPasswordLength)
	}
	if sec.TTL != time.Hour || sec.MaxTTL != 24*time.Hour || !sec.Renewable {
		t.Fatalf("secret %+v: want TTL 1h, MaxTTL 24h, renewable", sec)
	}
	want := map[string]any{"db_name": "pg", "role": "readonly", "username": user}
	for k, v := range want {
		if sec.InternalData[k] != v {
			t.Fatalf("InternalData[%q] = %v, want %v", k, sec.InternalData[k], v)
		}
	}
	mustLogin(t, user, pw, "SELECT x FROM "+ident(table))
	if err := login(user, pw, "INSERT INTO "+ident(table)+" VALUES (1)"); err == nil {
		t.Fatal("the read-only user could insert")
	}

	// A live session is terminated by the revocation.
	ctx := context.Background()
	conn, err := srv.Connect(ctx, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	if err := e.revoke(sec); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if roleExists(t, user) {
		t.Fatal("the user still exists after revocation")
	}
	mustNotLogin(t, user, pw)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the user's session survived the revocation")
	}
	if err := e.revoke(sec); err != nil {
		t.Fatalf("second revoke (idempotent): %v", err)
	}
	if strings.Contains(e.log.text(), pw) || strings.Contains(e.log.text(), user) {
		t.Fatal("a log line holds the generated credentials")
	}
}

// TestRenew: renewal moves VALID UNTIL, is capped at max_ttl from issue,
// and is refused after it.
func TestRenew(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	role := readOnlyRole(table)
	role["max_ttl"] = "2h"
	e.ok(logical.UpdateOperation, "roles/r", role)
	user, pw, sec := e.creds("r")

	near := func(got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -3*time.Second || d > 3*time.Second {
			t.Fatalf("VALID UNTIL %v, want about %v", got, want)
		}
	}
	near(validUntil(t, user), e.clock.Now().Add(time.Hour))

	resp, err := e.renew(sec, 90*time.Minute)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if resp.Secret.TTL != 90*time.Minute || resp.Secret.InternalData["username"] != user {
		t.Fatalf("renew answered %+v", resp.Secret)
	}
	near(validUntil(t, user), e.clock.Now().Add(90*time.Minute))

	// Renewing with no TTL uses the role's default.
	resp, err = e.renew(sec, 0)
	if err != nil || resp.Secret.TTL != time.Hour {
		t.Fatalf("renew with TTL 0: %+v, %v; want the default 1h", resp, err)
	}

	// An hour later only an hour of max_ttl is left.
	e.clock.Advance(time.Hour)
	resp, err = e.renew(sec, 2*time.Hour)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if d := resp.Secret.TTL; d > time.Hour || d < time.Hour-5*time.Second {
		t.Fatalf("renewal TTL %v, want capped at about 1h", d)
	}
	near(validUntil(t, user), sec.IssueTime.Add(2*time.Hour))
	mustLogin(t, user, pw, "")

	e.clock.Advance(time.Hour + time.Second)
	if _, err := e.renew(sec, time.Hour); err == nil || !strings.Contains(err.Error(), "max_ttl") {
		t.Fatalf("renew past max_ttl: %v, want a refusal", err)
	}

	// A gone user cannot be renewed.
	e.clock.Advance(-2 * time.Hour)
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.renew(sec, time.Minute); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("renew of a revoked user: %v", err)
	}
}

// TestRevokeCustomStatementsAndDeletedRole: revocation runs the role's
// statements, and the defaults once the role is deleted.
func TestRevokeCustomStatementsAndDeletedRole(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	role := readOnlyRole(table)
	// The user creates a table; the revocation must hand it over first.
	role["creation_statements"] = []any{
		`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		`GRANT CREATE ON SCHEMA public TO "{{name}}";`,
	}
	role["revocation_statements"] = `REASSIGN OWNED BY "{{name}}" TO CURRENT_USER; DROP OWNED BY "{{name}}"; DROP ROLE "{{name}}";`
	e.ok(logical.UpdateOperation, "roles/owner", role)
	user, pw, sec := e.creds("owner")
	owned := uniqueName(t, "owned")
	mustLogin(t, user, pw, "CREATE TABLE "+ident(owned)+" (y int)")
	if err := e.revoke(sec); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if roleExists(t, user) {
		t.Fatal("user survived")
	}
	sqlExec(t, "SELECT * FROM "+ident(owned)) // reassigned, not lost

	// Default revocation after the role is gone.
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))
	user2, _, sec2 := e.creds("ro")
	e.ok(logical.DeleteOperation, "roles/ro", nil)
	if err := e.revoke(sec2); err != nil {
		t.Fatalf("revoke after role delete: %v", err)
	}
	if roleExists(t, user2) {
		t.Fatal("user survived the default revocation")
	}
	// Renewal needs the role.
	if _, err := e.renew(sec2, time.Minute); err == nil {
		t.Fatal("renewal of a deleted role's lease succeeded")
	}
}

// TestDefaultRevocationPrivileges: the default revocation takes away every
// kind of privilege it knows (database, schema, table, column, function)
// in its single transaction, with users of one table revoked at once;
// a user owning an object makes DROP ROLE fail after the REVOKEs ran one
// by one, and the user stays, unable to log in, for the next attempt.
func TestDefaultRevocationPrivileges(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	table, fn := uniqueName(t, "t"), uniqueName(t, "f")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int, y int)")
	sqlExec(t, "CREATE FUNCTION "+ident(fn)+"() RETURNS int LANGUAGE sql AS 'SELECT 1'")
	var dbname string
	if err := srv.QueryRow(context.Background(), []any{&dbname}, "SELECT current_database()"); err != nil {
		t.Fatal(err)
	}
	role := readOnlyRole(table)
	role["creation_statements"] = []any{
		`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		`GRANT CONNECT, TEMPORARY ON DATABASE ` + ident(dbname) + ` TO "{{name}}";`,
		`GRANT USAGE, CREATE ON SCHEMA public TO "{{name}}";`,
		`GRANT SELECT ON ` + ident(table) + ` TO "{{name}}";`,
		`GRANT UPDATE (y) ON ` + ident(table) + ` TO "{{name}}";`,
		`GRANT EXECUTE ON FUNCTION ` + ident(fn) + `() TO "{{name}}";`,
	}
	e.ok(logical.UpdateOperation, "roles/all", role)
	const n = 6
	users := make([]string, n)
	secs := make([]*logical.Secret, n)
	for i := range n {
		users[i], _, secs[i] = e.creds("all")
	}
	errs := make(chan error, n)
	for _, sec := range secs {
		go func() { errs <- e.revoke(sec) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	for _, u := range users {
		if roleExists(t, u) {
			t.Fatalf("user %s survived the default revocation", u)
		}
	}

	// A user that owns a table cannot be dropped without statements that
	// hand it over: the revocation fails, and its privileges (pg_shdepend
	// rows of kind 'a') are gone anyway.
	user, pw, sec := e.creds("all")
	owned := uniqueName(t, "owned")
	mustLogin(t, user, pw, "CREATE TABLE "+ident(owned)+" (z int)")
	err := e.revoke(sec)
	if err == nil || !strings.Contains(err.Error(), "DROP ROLE") {
		t.Fatalf("revoking the owner of a table: %v, want a DROP ROLE failure", err)
	}
	if !roleExists(t, user) {
		t.Fatal("the owner was dropped")
	}
	mustNotLogin(t, user, pw)
	var grants int
	if err := srv.QueryRow(context.Background(), []any{&grants},
		`SELECT count(*) FROM pg_shdepend WHERE deptype = 'a' AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
		user); err != nil {
		t.Fatal(err)
	}
	if grants != 0 {
		t.Fatalf("%d privileges left after the failed revocation", grants)
	}
	sqlExec(t, "DROP TABLE "+ident(owned))
	if err := e.revoke(sec); err != nil || roleExists(t, user) {
		t.Fatalf("revocation once the table is gone: %v", err)
	}
}

// TestRevokeRetriesWhileConfigMissing: revocation fails while the
// configuration is missing and succeeds once it is back, so the kernel's
// retries drop the user.
func TestRevokeRetriesWhileConfigMissing(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))
	user, _, sec := e.creds("ro")
	stored, _ := e.s.Get(context.Background(), "config/pg")
	e.ok(logical.DeleteOperation, "config/pg", nil)
	if err := e.revoke(sec); err == nil {
		t.Fatal("revoke without a configuration succeeded")
	}
	if !roleExists(t, user) {
		t.Fatal("user gone without a revocation")
	}
	if err := e.s.Put(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	if err := e.revoke(sec); err != nil {
		t.Fatalf("revoke once the configuration is back: %v", err)
	}
	if roleExists(t, user) {
		t.Fatal("user survived")
	}
}

// TestAllowedRoles: a configuration serves only the roles it allows.
func TestAllowedRoles(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", map[string]any{"allowed_roles": []any{"app-*", "exact"}})
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	for _, r := range []string{"app-1", "exact", "other", "exact2"} {
		e.ok(logical.UpdateOperation, "roles/"+r, readOnlyRole(table))
	}
	for _, r := range []string{"app-1", "exact"} {
		_, _, sec := e.creds(r)
		if err := e.revoke(sec); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []string{"other", "exact2"} {
		e.fails(logical.ReadOperation, "creds/"+r, nil, logical.CodeInvalidRequest, "allowed_roles")
	}
	// An empty allowed_roles allows nothing.
	e.ok(logical.UpdateOperation, "config/pg", map[string]any{"allowed_roles": []any{}})
	e.fails(logical.ReadOperation, "creds/app-1", nil, logical.CodeInvalidRequest, "allowed_roles")
	e.fails(logical.ReadOperation, "creds/missing", nil, logical.CodeInvalidRequest, "unknown role")
}

// TestBadStatements: statements the server rejects answer 400 with the
// server's reason and no credentials; a failing statement rolls back the
// ones before it.
func TestBadStatements(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	e.ok(logical.UpdateOperation, "roles/bad", map[string]any{
		"db_name": "pg",
		"creation_statements": []any{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}';`,
			`GRANT SELECT ON no_such_table_xyz TO "{{name}}";`,
		},
	})
	msg := e.fails(logical.ReadOperation, "creds/bad", nil, logical.CodeInvalidRequest, "creation statement 2")
	if !strings.Contains(msg, "no_such_table_xyz") || !strings.Contains(msg, "42P01") {
		t.Fatalf("error %q should name the server's reason", msg)
	}
	var n int
	if err := srv.QueryRow(context.Background(), []any{&n},
		"SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-bad-%'"); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d users left behind by a failed creation", n)
	}

	// A syntax error quoting the password is redacted.
	e.ok(logical.UpdateOperation, "roles/syntax", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' '{{password}}';`,
	})
	msg = e.fails(logical.ReadOperation, "creds/syntax", nil, logical.CodeInvalidRequest, "42601")
	if !strings.Contains(msg, "<redacted>") {
		t.Fatalf("error %q: want the password redacted", msg)
	}

	// Templates that do not lex are refused when the role is written.
	e.fails(logical.UpdateOperation, "roles/unterminated", map[string]any{
		"db_name": "pg", "creation_statements": `CREATE ROLE "{{name}}" PASSWORD '{{password}};`,
	}, logical.CodeInvalidRequest, "unterminated quoted string")
	e.fails(logical.UpdateOperation, "roles/nostmt", map[string]any{"db_name": "pg"},
		logical.CodeInvalidRequest, "creation_statements are required")
	e.fails(logical.UpdateOperation, "roles/ttl", map[string]any{
		"db_name": "pg", "creation_statements": "SELECT 1", "default_ttl": "2h", "max_ttl": "1h",
	}, logical.CodeInvalidRequest, "default_ttl")
}

// TestCredsConcurrent is a hammer: 20 parallel reads of creds, all
// distinct and usable, then 20 parallel revocations.
func TestCredsConcurrent(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", nil)
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))

	const n = 20
	type cred struct {
		user, pw string
		sec      *logical.Secret
	}
	creds := make([]cred, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := e.do(logical.ReadOperation, "creds/ro", nil)
			if err != nil {
				errs <- err
				return
			}
			creds[i] = cred{resp.Data["username"].(string), resp.Data["password"].(string), resp.Secret}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent creds: %v", err)
	}
	seen := map[string]bool{}
	for _, c := range creds {
		if seen[c.user] {
			t.Fatalf("duplicate username")
		}
		seen[c.user] = true
		mustLogin(t, c.user, c.pw, "SELECT * FROM "+ident(table))
	}
	errs = make(chan error, n)
	for _, c := range creds {
		wg.Go(func() {
			if err := e.revoke(c.sec); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent revoke: %v", err)
	}
	for _, c := range creds {
		if roleExists(t, c.user) {
			t.Fatal("a user survived its revocation")
		}
	}
}

// TestQuotingHostileValues: passwords made of quote characters, and a
// static user whose name holds quotes, go through the templates intact.
func TestQuotingHostileValues(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", map[string]any{
		"password_policy": map[string]any{"length": 40, "charset": `ab'"\$;-)(*/`},
	})
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	role := readOnlyRole(table)
	// Bare placeholders are quoted by the engine.
	role["creation_statements"] = `CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}; GRANT SELECT ON ` + ident(table) + ` TO {{name}};`
	e.ok(logical.UpdateOperation, "roles/q", role)
	for range 5 {
		user, pw, sec := e.creds("q")
		mustLogin(t, user, pw, "SELECT * FROM "+ident(table))
		if err := e.revoke(sec); err != nil {
			t.Fatal(err)
		}
	}
	// E'' strings escape backslashes too.
	role["creation_statements"] = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD E'{{password}}';`
	e.ok(logical.UpdateOperation, "roles/e", role)
	user, pw, sec := e.creds("e")
	mustLogin(t, user, pw, "")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}
}

// TestSCRAMVerifier: with password_authentication scram-sha-256 the server
// receives a verifier, and the password still logs in.
func TestSCRAMVerifier(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", map[string]any{"password_authentication": "scram-sha-256"})
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/s", readOnlyRole(table))
	user, pw, sec := e.creds("s")
	mustLogin(t, user, pw, "SELECT * FROM "+ident(table))
	mustNotLogin(t, user, pw+"x")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}
}

// TestUsernameTemplate: a configuration's template names the users.
func TestUsernameTemplate(t *testing.T) {
	e := newEnv(t)
	e.configure("pg", map[string]any{"username_template": `app_{{.DBName}}_{{.RoleName | uppercase}}_{{random 8}}`})
	table := uniqueName(t, "t")
	sqlExec(t, "CREATE TABLE "+ident(table)+" (x int)")
	e.ok(logical.UpdateOperation, "roles/ro", readOnlyRole(table))
	user, pw, sec := e.creds("ro")
	if !strings.HasPrefix(user, "app_pg_RO_") || len(user) != len("app_pg_RO_")+8 {
		t.Fatalf("username %q does not follow the template", user)
	}
	mustLogin(t, user, pw, "")
	if err := e.revoke(sec); err != nil {
		t.Fatal(err)
	}
	e.fails(logical.UpdateOperation, "config/pg", map[string]any{"username_template": `{{random 70}}`},
		logical.CodeInvalidRequest, "username_template")
	e.fails(logical.UpdateOperation, "config/pg", map[string]any{"username_template": `{{.Nope}}`},
		logical.CodeInvalidRequest, "username_template")
}
