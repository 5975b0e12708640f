// Package postgres is the PostgreSQL backend of the database secret
// engine: connection pools (pgx), statement templates, and the user
// operations the engine needs — create, renew, revoke, set password.
//
// # What it owns and what it must never do
//
// It owns the SQL that reaches the server. It must never put a user name
// or password in an error or log line (every error is an *Error whose text
// is redacted, with no cause attached), never build SQL by pasting a value
// without escaping it for its context (see Render), and never hold
// credentials beyond the Config it was given. It knows nothing of Ward's
// storage, leases or paths.
//
// Passwords do reach the server inside CREATE/ALTER ROLE statements, as in
// Vault, unless the configuration sets password_authentication to
// "scram-sha-256": then {{password}} expands to a SCRAM-SHA-256 verifier
// computed here and the server (and its statement log) never sees the
// password.
package postgres
