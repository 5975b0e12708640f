package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PluginName is the name Vault gives the PostgreSQL plugin; configurations
// name it in plugin_name.
const PluginName = "postgresql-database-plugin"

// Password authentication modes (Config.PasswordAuthentication).
const (
	// AuthPassword sends passwords to the server in the statements, as
	// written (Vault's default).
	AuthPassword = "password"
	// AuthSCRAM replaces {{password}} by a SCRAM-SHA-256 verifier computed
	// here, so the server never sees the password.
	AuthSCRAM = "scram-sha-256"
)

// Default statement templates, used when a role or configuration sets none.
var (
	DefaultRenewStatements    = []string{`ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';`}
	DefaultRotationStatements = []string{`ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';`}
)

// ExpirationFormat is how {{expiration}} is written (always UTC), as Vault
// writes it.
const ExpirationFormat = "2006-01-02 15:04:05-0700"

// Markers stand for the {{username}} and {{password}} placeholders of a
// connection URL while it is parsed, so credentials never need escaping for
// the URL or key=value syntax: they are set on the parsed configuration.
const (
	userMarker = "wardusermarker0c9d2f"
	passMarker = "wardpassmarker0c9d2f"
)

// defaultConnectTimeout applies when the connection URL sets none.
const defaultConnectTimeout = 10 * time.Second

// Config is how to reach a server.
type Config struct {
	// ConnectionURL is a PostgreSQL URL or key=value string; {{username}}
	// and {{password}} stand for Username and Password.
	ConnectionURL         string
	Username              string
	Password              string
	MaxOpenConnections    int           // 0: 4
	MaxConnectionLifetime time.Duration // 0: an hour
	// PasswordAuthentication is AuthPassword ("" too) or AuthSCRAM.
	PasswordAuthentication string
}

// Validate checks the configuration without connecting.
func (c Config) Validate() error {
	_, err := c.poolConfig()
	return err
}

// UsesPasswordPlaceholder reports whether the URL takes its password from
// Password, which is what lets the root password be rotated.
func (c Config) UsesPasswordPlaceholder() bool {
	return strings.Contains(c.ConnectionURL, "{{password}}")
}

func (c Config) poolConfig() (*pgxpool.Config, error) {
	if strings.TrimSpace(c.ConnectionURL) == "" {
		return nil, &Error{Kind: KindConfig, msg: "connection_url is required"}
	}
	if strings.Contains(c.ConnectionURL, "{{username}}") && c.Username == "" {
		return nil, &Error{Kind: KindConfig, msg: "connection_url uses {{username}} but username is not set"}
	}
	if strings.Contains(c.ConnectionURL, "{{password}}") && c.Password == "" {
		return nil, &Error{Kind: KindConfig, msg: "connection_url uses {{password}} but password is not set"}
	}
	switch c.PasswordAuthentication {
	case "", AuthPassword, AuthSCRAM:
	default:
		return nil, &Error{Kind: KindConfig, msg: fmt.Sprintf("password_authentication must be %q or %q", AuthPassword, AuthSCRAM)}
	}
	if c.MaxOpenConnections < 0 || c.MaxConnectionLifetime < 0 {
		return nil, &Error{Kind: KindConfig, msg: "max_open_connections and max_connection_lifetime must not be negative"}
	}
	s := strings.ReplaceAll(c.ConnectionURL, "{{username}}", userMarker)
	s = strings.ReplaceAll(s, "{{password}}", passMarker)
	pc, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, &Error{Kind: KindConfig, msg: "connection_url could not be parsed as a PostgreSQL URL or key=value string"}
	}
	cc := pc.ConnConfig
	cc.User = strings.ReplaceAll(cc.User, userMarker, c.Username)
	cc.Password = strings.ReplaceAll(cc.Password, passMarker, c.Password)
	if strings.Contains(cc.Host, userMarker) || strings.Contains(cc.Host, passMarker) ||
		strings.Contains(cc.Database, userMarker) || strings.Contains(cc.Database, passMarker) {
		return nil, &Error{Kind: KindConfig, msg: "{{username}} and {{password}} may only stand for the user name and password in connection_url"}
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "ward"
	}
	pc.MinConns = 0
	pc.MaxConns = 4
	if c.MaxOpenConnections > 0 {
		pc.MaxConns = int32(min(c.MaxOpenConnections, 1<<20))
	}
	if c.MaxConnectionLifetime > 0 {
		pc.MaxConnLifetime = c.MaxConnectionLifetime
	}
	return pc, nil
}

// secrets are the configuration's credentials, redacted from errors.
func (c Config) secrets() []string { return []string{c.Username, c.Password} }

// Verify opens one connection with the configuration and pings the server.
func Verify(ctx context.Context, c Config) error {
	pc, err := c.poolConfig()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return classify(err, "could not connect", c.secrets()...)
	}
	defer conn.Close(context.Background())
	if err := conn.Ping(ctx); err != nil {
		return classify(err, "could not connect", c.secrets()...)
	}
	return nil
}

// DB is a connection pool to one server, safe for concurrent use. It
// connects lazily.
type DB struct {
	pool *pgxpool.Pool
	cfg  Config
}

// Open builds a pool for the configuration without connecting.
func Open(c Config) (*DB, error) {
	pc, err := c.poolConfig()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, classify(err, "could not open a connection pool", c.secrets()...)
	}
	return &DB{pool: pool, cfg: c}, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that a connection can be had.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return classify(err, "could not connect", db.cfg.secrets()...)
	}
	return nil
}

// Warm opens up to n of the pool's connections at once (no more than its
// maximum) and runs the revocation's catalog query on each, so that the
// requests that follow find connections open and the server backends'
// catalog caches filled: on a cold pool the first revocations each wait
// for a connection (and its password exchange) and run several times
// slower on a fresh backend. It returns the first error.
func (db *DB) Warm(ctx context.Context, n int) error {
	n = min(n, int(db.pool.Config().MaxConns))
	conns := make(chan *pgxpool.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := db.acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			conns <- c // held until all are open, so that they are distinct
			var sessions int64
			var schemas []string
			var onDB bool
			var dbname string
			err = c.QueryRow(ctx, fmt.Sprintf(revokeInfoQuery, "pg_backend_pid()"), "").Scan(&sessions, &schemas, &onDB, &dbname)
			if err != nil {
				errs <- classify(err, "warming a connection", db.cfg.secrets()...)
			}
		})
	}
	wg.Wait()
	close(conns)
	for c := range conns {
		c.Release()
	}
	close(errs)
	return <-errs // nil when closed and empty
}

// User is a database user to create.
type User struct {
	Name       string
	Password   string
	Expiration time.Time
}

// CreateUser runs the creation statement templates for u in one
// transaction: all of them or none.
func (db *DB) CreateUser(ctx context.Context, tmpls []string, u User) error {
	pw, err := db.passwordValue(u.Password)
	if err != nil {
		return err
	}
	stmts, err := RenderAll(tmpls, map[string]string{
		"name": u.Name, "password": pw, "expiration": u.Expiration.UTC().Format(ExpirationFormat),
	})
	if err != nil {
		return err
	}
	return db.inTx(ctx, "creation", stmts, u.Name, u.Password, pw)
}

// RenewUser runs the renewal templates (DefaultRenewStatements when
// empty) with the new expiration. It returns ErrUserNotFound when the user
// no longer exists.
func (db *DB) RenewUser(ctx context.Context, tmpls []string, name string, expiration time.Time) error {
	if len(tmpls) == 0 {
		tmpls = DefaultRenewStatements
	}
	stmts, err := RenderAll(tmpls, map[string]string{
		"name": name, "expiration": expiration.UTC().Format(ExpirationFormat),
	})
	if err != nil {
		return err
	}
	c, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	ok, err := userExists(ctx, c, name)
	if err != nil {
		return classify(err, "renewal", name)
	}
	if !ok {
		return ErrUserNotFound
	}
	return execTx(ctx, c, "renewal", stmts, name)
}

// SetPassword runs the rotation templates (DefaultRotationStatements when
// empty) to give an existing user a new password, in one transaction.
func (db *DB) SetPassword(ctx context.Context, tmpls []string, name, password string) error {
	if len(tmpls) == 0 {
		tmpls = DefaultRotationStatements
	}
	pw, err := db.passwordValue(password)
	if err != nil {
		return err
	}
	stmts, err := RenderAll(tmpls, map[string]string{"name": name, "password": pw})
	if err != nil {
		return err
	}
	return db.inTx(ctx, "rotation", stmts, name, password, pw)
}

// RevokeUser removes a user. It is idempotent: a user that does not exist
// is already revoked. Otherwise it first stops the user from logging in
// (ALTER ROLE ... NOLOGIN, committed on its own) and terminates the user's
// sessions, so that no session outlives the revocation, then runs the
// revocation templates in one transaction or, when there are none, the
// default revocation: revoke the user's privileges in every schema where
// it holds any and on the database, then DROP ROLE. Objects the user owns
// make DROP ROLE fail; revocation statements with REASSIGN OWNED / DROP
// OWNED handle them.
//
// The default revocation takes three round trips: NOLOGIN; one query that
// terminates the sessions and lists the privileges; one multi-statement
// transaction with the REVOKEs and DROP ROLE. It revokes on the database
// only when the user holds a privilege there: a REVOKE rewrites the
// database's catalog row even when it changes nothing, and concurrent
// revocations would queue on that one row (and retry "tuple concurrently
// updated"). When the single transaction fails for a reason other than a
// lost race, the REVOKEs are run one by one, best effort, as before.
func (db *DB) RevokeUser(ctx context.Context, tmpls []string, name string) error {
	var stmts []string
	if len(tmpls) > 0 {
		var err error
		if stmts, err = RenderAll(tmpls, map[string]string{"name": name}); err != nil {
			return err
		}
	}
	c, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := c.Exec(ctx, "ALTER ROLE "+ident+" NOLOGIN"); err != nil {
		if e := classify(err, "revocation: disabling login", name); e.SQLState == codeUndefinedObject {
			return nil // no such user: already revoked
		}
		return classify(err, "revocation: disabling login", name)
	}
	if len(stmts) > 0 {
		if err := terminateSessions(ctx, c, name); err != nil {
			return err
		}
		return execTx(ctx, c, "revocation", stmts, name)
	}
	return defaultRevoke(ctx, c, name)
}

// codeUndefinedObject is the SQLSTATE of ALTER ROLE on a missing role.
const codeUndefinedObject = "42704"

func (db *DB) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, classify(err, "could not connect", db.cfg.secrets()...)
	}
	// Templates are escaped for standard-conforming strings; pgx refuses
	// to work without them too, but say so plainly.
	if c.Conn().PgConn().ParameterStatus("standard_conforming_strings") != "on" {
		c.Release()
		return nil, &Error{Kind: KindConfig, msg: "the server must run with standard_conforming_strings=on"}
	}
	return c, nil
}

// passwordValue is what {{password}} expands to: the password, or its
// SCRAM verifier.
func (db *DB) passwordValue(password string) (string, error) {
	if db.cfg.PasswordAuthentication != AuthSCRAM {
		return password, nil
	}
	v, err := scramVerifier(password)
	if err != nil {
		return "", &Error{Kind: KindConfig, msg: "computing the SCRAM verifier failed"}
	}
	return v, nil
}

func (db *DB) inTx(ctx context.Context, what string, stmts []string, secrets ...string) error {
	c, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return execTx(ctx, c, what, stmts, secrets...)
}

// txAttempts bounds the retries of a transaction that lost a race.
const txAttempts = 6

// execTx runs stmts in one transaction, retrying it (after a short random
// pause) when it lost a race that rolled it back: a serialization failure,
// a deadlock, or "tuple concurrently updated", which concurrent GRANTs on
// one object raise. Statements run through the simple protocol (no
// arguments), so one may hold several commands.
func execTx(ctx context.Context, c *pgxpool.Conn, what string, stmts []string, secrets ...string) error {
	return retryRaces(ctx, func() *Error { return execTxOnce(ctx, c, what, stmts, secrets...) })
}

// retryRaces runs once up to txAttempts times, while it fails with an
// Error that lost a race (after a short random pause).
func retryRaces(ctx context.Context, once func() *Error) error {
	var err *Error
	for attempt := range txAttempts {
		if attempt > 0 {
			select {
			case <-time.After(retryPause(attempt)):
			case <-ctx.Done():
				return err
			}
		}
		if err = once(); err == nil || !err.retryable {
			break
		}
	}
	if err == nil {
		return nil
	}
	return err
}

// retryPause is a random pause growing with the attempt: up to 10 ms,
// 20 ms, 40 ms, ...
func retryPause(attempt int) time.Duration {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return time.Duration(int(b[0])+1) * (10 * time.Millisecond << (attempt - 1)) / 256
}

func execTxOnce(ctx context.Context, c *pgxpool.Conn, what string, stmts []string, secrets ...string) *Error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return classify(err, what, secrets...)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	for i, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return classify(err, fmt.Sprintf("%s statement %d", what, i+1), secrets...)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(err, what+": commit", secrets...)
	}
	return nil
}

func userExists(ctx context.Context, c *pgxpool.Conn, name string) (bool, error) {
	var ok bool
	err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&ok)
	return ok, err
}

// terminateSessions ends the user's sessions, waiting up to 5 s for each
// on PostgreSQL 14 and later.
func terminateSessions(ctx context.Context, c *pgxpool.Conn, name string) error {
	q := "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()"
	if serverMajor(c) >= 14 {
		q = "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()"
	}
	rows, err := c.Query(ctx, q, name)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		return classify(err, "revocation: terminating sessions", name)
	}
	return nil
}

func serverMajor(c *pgxpool.Conn) int {
	v := c.Conn().PgConn().ParameterStatus("server_version")
	if i := strings.IndexAny(v, ". "); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// grantSchemasQuery lists the schemas where the role holds a privilege: on
// the schema, or on a table, column or routine in it.
const grantSchemasQuery = `
WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1)
SELECT DISTINCT nspname FROM (
  SELECT n.nspname FROM pg_namespace n, aclexplode(n.nspacl) a, r WHERE a.grantee = r.oid
  UNION SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
    aclexplode(c.relacl) a, r WHERE a.grantee = r.oid
  UNION SELECT n.nspname FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(t.attacl) a, r WHERE a.grantee = r.oid
  UNION SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
    aclexplode(p.proacl) a, r WHERE a.grantee = r.oid
) s`

// revokeInfoQuery terminates the role's sessions (%s is the call of
// pg_terminate_backend for the server's version) and answers the schemas
// where it holds a privilege, whether it holds one on the current
// database, and that database's name: one round trip. The privileges a
// role holds are in pg_shdepend (deptype 'a'), which DROP ROLE checks and
// which is indexed by role; grantSchemasQuery, which scans the catalogs,
// runs only when that index shows a privilege on something other than the
// database (most dynamic users hold none, or only CONNECT).
const revokeInfoQuery = `
WITH acl AS (
  SELECT s.classid, s.objid FROM pg_shdepend s
  WHERE s.refclassid = 'pg_authid'::regclass AND s.deptype = 'a'
    AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)
    AND s.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())))
SELECT (SELECT count(%s) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()),
  CASE WHEN EXISTS (SELECT 1 FROM acl WHERE classid <> 'pg_database'::regclass)
    THEN ARRAY(` + grantSchemasQuery + `) ELSE '{}' END,
  EXISTS (SELECT 1 FROM acl WHERE classid = 'pg_database'::regclass
    AND objid = (SELECT oid FROM pg_database WHERE datname = current_database())),
  current_database()`

// defaultRevoke is the revocation without statements, after Vault's, once
// login is disabled: it terminates the user's sessions, then runs the
// REVOKEs of the privileges the user holds and DROP ROLE as one
// transaction in one round trip. If that transaction fails for a reason
// other than a lost race, it falls back to the REVOKEs one by one, best
// effort (failures other than lost races ignored, so that as much access
// as possible goes), and DROP ROLE, which must succeed.
func defaultRevoke(ctx context.Context, c *pgxpool.Conn, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	term := "pg_terminate_backend(pid)"
	if serverMajor(c) >= 14 {
		term = "pg_terminate_backend(pid, 5000)" // wait up to 5 s for each
	}
	var (
		sessions int64
		schemas  []string
		onDB     bool
		dbname   string
	)
	if err := c.QueryRow(ctx, fmt.Sprintf(revokeInfoQuery, term), name).Scan(&sessions, &schemas, &onDB, &dbname); err != nil {
		return classify(err, "revocation: terminating sessions and listing privileges", name)
	}
	var revokes []string
	for _, s := range schemas {
		sch := pgx.Identifier{s}.Sanitize()
		revokes = append(revokes,
			"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA "+sch+" FROM "+ident,
			"REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA "+sch+" FROM "+ident,
			"REVOKE ALL PRIVILEGES ON ALL FUNCTIONS IN SCHEMA "+sch+" FROM "+ident,
			"REVOKE ALL PRIVILEGES ON SCHEMA "+sch+" FROM "+ident)
	}
	if onDB {
		revokes = append(revokes, "REVOKE ALL PRIVILEGES ON DATABASE "+pgx.Identifier{dbname}.Sanitize()+" FROM "+ident)
	}
	drop := "DROP ROLE IF EXISTS " + ident
	// The statements of one simple-protocol query run as one transaction.
	err := retryRaces(ctx, func() *Error {
		if _, err := c.Exec(ctx, strings.Join(append(revokes, drop), ";\n")); err != nil {
			return classify(err, "revocation", name)
		}
		return nil
	})
	if err == nil || len(revokes) == 0 || ctx.Err() != nil {
		return err
	}
	for _, q := range revokes {
		// Each REVOKE is its own transaction, retried when it races another
		// change of the same object's privileges (concurrent revocations of
		// users granted on one table do).
		if err := execTx(ctx, c, "revocation", []string{q}, name); err != nil && ctx.Err() != nil {
			return err
		}
	}
	return execTx(ctx, c, "revocation: DROP ROLE", []string{drop}, name)
}
