// Package approle is Ward's AppRole auth method, compatible with the HTTP
// API of Vault's and OpenBao's "approle" method. A machine logs in at
// login with a role ID and, when the role binds secret IDs, a secret ID
// issued for that role; the token it gets carries the role's token_*
// parameters. Factory is the only export.
//
// # Paths
//
//	role/                                   LIST the roles
//	role/<role_name>                        create, update, read, delete a role
//	role/<role_name>/role-id                read or set the role ID
//	role/<role_name>/local-secret-ids       read (accepted for compatibility)
//	role/<role_name>/secret-id              update: issue a secret ID; LIST: its accessors
//	role/<role_name>/custom-secret-id       update: register a caller-chosen secret ID
//	role/<role_name>/secret-id/lookup       update: properties of a secret ID
//	role/<role_name>/secret-id/destroy      update or delete: destroy a secret ID
//	role/<role_name>/secret-id-accessor/lookup, .../destroy  the same, by accessor
//	tidy/secret-id                          remove expired and orphaned secret IDs
//	login                                   unauthenticated: role_id, secret_id
//
// # What it owns and what it must never do
//
// The package owns the layout of its mount's storage view. It must never
// store a secret ID: only its HMAC-SHA256 under a random per-mount key. It
// must never put a secret ID, a role ID, an HMAC or the key in an error, a
// log line or a read response (role-id read and the answers that issue a
// secret ID are the only places those values appear). Every login failure
// answers the same "invalid role ID or secret ID".
//
// # Storage layout
//
//	salt                                   the mount's HMAC key (JSON)
//	role/<name>                            a role (JSON), name lowercased
//	role_id/<HMAC(role ID)>                {"name": <role name>}: login's index
//	secret_id/<instance>/<HMAC(secret ID)> a secret ID's properties and uses left
//	accessor/<instance>/<accessor>         {"secret_id_hmac": ...}
//
// <instance> is a random UUID given to a role when it is created. Keying
// secret IDs by it rather than by name means a role deleted and created
// again never inherits the secret IDs of its predecessor, even those a
// crash left behind; tidy/secret-id removes such leftovers.
//
// # Concurrency
//
// Storage has no compare-and-swap, so a secret ID's remaining uses are
// counted under a per-key lock (striped) inside this process: two logins
// here with a single-use secret ID cannot both succeed. Across kernel
// replicas serving one mount this is not atomic. Unlimited secret IDs are
// only read at login, without a lock.
package approle
