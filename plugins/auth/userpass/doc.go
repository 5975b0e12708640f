// Package userpass is Ward's username and password auth method, compatible
// with the HTTP API of Vault's and OpenBao's "userpass" method. Factory is
// the only export.
//
// Paths, relative to the mount:
//
//	users/                    list: the usernames
//	users/<username>          create, update, read, delete a user: password
//	                          and the token_* settings (legacy aliases
//	                          policies, bound_cidrs, ttl, max_ttl)
//	users/<username>/password update: change the password
//	users/<username>/policies update: change token_policies
//	login/<username>          update, without a token: password -> token
//
// Usernames are case-insensitive: every path lowercases them, as Vault does.
//
// # What it owns and what it must never do
//
// The package owns the layout of its mount's storage view: one JSON record
// per user at user/<username> holding the bcrypt hash of the password and
// the user's token parameters. It keeps no state in memory besides locks and
// a dummy hash, so it needs no invalidation. It must never store a password
// in clear, and never put a password or a hash in an error, a log line or a
// read response.
//
// # Login
//
// A login compares the password with the stored bcrypt hash. An unknown
// user still costs one bcrypt comparison, against a dummy hash of the same
// cost, so response time does not reveal which usernames exist; an unknown
// user, a wrong password and a client address outside token_bound_cidrs all
// answer the same "invalid username or password". Passwords longer than 72
// bytes are refused when set (bcrypt would silently ignore the rest) and can
// never log in.
//
// # Renewal
//
// A token is renewed only while its user exists and the user's token
// policies are those the token was issued with ("default" aside, as in
// Vault); the renewal takes the user's current token_ttl, token_max_ttl and
// token_period.
package userpass
