// Package database is Ward's database secret engine, compatible with the
// HTTP API of Vault's and OpenBao's "database" engine for its PostgreSQL
// plugin (plugin_name "postgresql-database-plugin"; the SQL lives in the
// postgres subpackage). Factory is the only export.
//
// # Paths
//
//	config/                  LIST the connection configurations
//	config/<name>            create, update, read, delete a connection
//	reset/<name>             update: close the connection's pool
//	rotate-root/<name>       update: give the root user a password only Ward knows
//	roles/                   LIST the dynamic roles
//	roles/<name>             create, update, read, delete a dynamic role
//	creds/<name>             read: a new database user, under a lease
//	static-roles/            LIST the static roles
//	static-roles/<name>      create, update, read, delete a static role
//	static-creds/<name>      read: a static role's current password
//	rotate-role/<name>       update: rotate a static role's password now
//	rotate-due               update: rotate every static role that is due
//
// # Leases
//
// creds/<name> answers a Secret (TTL default_ttl, MaxTTL max_ttl, 0 for
// the mount's values; renewable) whose InternalData is {"db_name",
// "role", "username"}. The kernel sends it back:
//
//   - RenewOperation: Secret.TTL is the TTL asked for (the increment, or
//     the lease's TTL); 0 means the role's default_ttl. It is capped at
//     max_ttl from Secret.IssueTime; the user's VALID UNTIL moves to
//     now + TTL (renew_statements) and the answer's Secret.TTL is the TTL
//     granted. Renewal is refused once the role is deleted, the max TTL is
//     reached or the user is gone.
//   - RevokeOperation: the user's login is disabled, its sessions are
//     terminated, then the role's revocation_statements run (the defaults
//     when the role sets none or was deleted). A user that does not exist
//     is revoked (idempotent). While the configuration is missing or the
//     database is unreachable it fails, and the kernel retries.
//
// Static roles have no lease. A plugin has no background work of its own,
// so a static password rotates when static-creds/<name> is read after it
// fell due, on rotate-role/<name>, on rotate-due, and on the host's
// periodic call (RollbackOperation, about once a minute).
//
// # What it owns and what it must never do
//
// The package owns the layout of its mount's storage view and the pools
// to the configured databases. It must never put a password — root,
// static or dynamic — or a generated user name in an error or log line
// (errors from the database are redacted by the postgres package; errors
// here name configurations and roles only), nor return a root password
// from a read. Passwords are drawn from crypto/rand without modulo bias.
//
// # Storage layout
//
//	config/<name>       connection configuration (JSON), root password included
//	role/<name>         dynamic role (JSON)
//	static-role/<name>  static role (JSON), current password included
//
// A root or static password being rotated is stored as pending before the
// database changes and promoted after, so a crash between the two never
// leaves a password nobody knows: a pending root password is settled by
// trying both on the next connection, a pending static password makes the
// role due for a fresh rotation.
//
// # Pools
//
// Each configuration has one pgx pool (max_open_connections, default 4),
// built on first use and cached. When the mount is initialized (at unseal)
// a background goroutine, stopped by Clean, builds the pool of every
// configuration and opens up to 16 of its connections, so that the
// revocations of leases that came due while the server was down do not
// each wait for a connection; it skips a configuration with an
// interrupted root rotation (its first request settles it) and only logs
// failures. A configuration write, delete, reset, root rotation or
// InvalidateKey("config/<name>") drops a pool; requests already using the
// old pool finish on it, and the last one closes it.
package database
