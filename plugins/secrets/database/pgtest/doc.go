// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in a
// fresh temporary directory, then the postgres server on a free loopback
// port (and a private unix socket directory), with fsync off. It is what
// the database engine's tests, and any end-to-end test that needs real
// dynamic credentials, run against; there are no mocks.
//
// # Finding PostgreSQL
//
// The server binaries (initdb and postgres) are looked up in $WARD_PG_BIN
// when set, then in PATH, then in /usr/lib/postgresql/<major>/bin (highest
// major first), which is where Debian's postgresql package puts them.
// When none is found, Start returns an error naming the package to install
// and New fails the test: a missing PostgreSQL is a broken machine, never
// a reason to skip. The project's setup script installs the package.
//
// # Running as root
//
// initdb and postgres refuse to run as root. When the test process is
// root, both run as the unprivileged user "nobody" (syscall.Credential),
// and the temporary directory is handed to that user.
//
// # Lifetime
//
// The postgres process is a direct child of the test process with a
// parent-death signal, so a killed test binary does not leave a server
// behind (its directory is removed by a later Start once it is ten
// minutes old). Stop shuts it down immediately (SIGQUIT, what
// "pg_ctl stop -m immediate" sends) and removes the directory. Down and Up
// stop and restart the same cluster on the same port, for tests of a
// database outage.
//
// What it must never do: listen on anything but the loopback address, or
// accept a connection without a password.
package pgtest
