// Command ward is Ward's single binary: the server (ward server), the plugin
// launcher the server execs (ward plugin exec) and the operator CLI.
//
// The CLI half owns argument parsing, client construction and output. It talks
// to a server only through the OpenBao Go client (github.com/openbao/openbao/api),
// over the Vault-compatible /v1 HTTP API, so every command it runs works the
// same against Vault or OpenBao; flags, output shapes and exit codes follow
// the Vault CLI so operators' scripts keep working.
//
// What the CLI must never do:
//   - print a token, unseal key or secret value anywhere but stdout, and there
//     only as the output the user asked for (errors never echo values);
//   - import the kernel for anything but `ward server` and the offline audit
//     log verifier (kernel/audit): every other command is a client of the
//     HTTP API like any other;
//   - write to os.Stdout/os.Stderr directly: it writes to the package-level
//     stdout/stderr writers (and reads stdin) so tests can capture them.
//
// Exit codes follow Vault: 0 success, 1 local error (bad flags or arguments,
// unreadable input files), 2 error reported by or while reaching the server.
// `ward status` returns 2 when the server is sealed and 1 on error, as Vault.
package main
