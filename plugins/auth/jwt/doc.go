// Package jwt is Ward's JWT auth method, compatible with the "jwt" half of
// Vault's and OpenBao's JWT/OIDC method: a client presents a JWT signed by
// a trusted issuer and a role; if the token verifies and satisfies the
// role's bindings, the kernel issues a Ward token. Factory is the only
// export. The OIDC browser flow (role_type "oidc", oidc/auth_url,
// oidc/callback) is not supported.
//
// # Paths
//
//	config        read, update   key source (exactly one of jwt_validation_pubkeys,
//	                             jwks_url [+ jwks_ca_pem], oidc_discovery_url
//	                             [+ oidc_discovery_ca_pem]), bound_issuer,
//	                             jwt_supported_algs, default_role. A write replaces
//	                             the whole config; remote sources are fetched and
//	                             must yield a usable key set, or the write is a 400.
//	role/         list
//	role/<name>   create, update, read, delete; names are case-insensitive.
//	login         update, unauthenticated: role (or default_role) and jwt.
//
// # What a login checks
//
// The signature, with a configured alg ("none" and HMAC are never
// allowed) and a key whose own alg, if any, is the token's: PEM keys are
// all tried; JWKS keys are chosen by kid (all of them when the token has
// none). Then exp (required), nbf and iat with clock_skew_leeway (0 means
// 60s, negative none) plus expiration_leeway / not_before_leeway as extra
// leeway on exp / nbf (0 or negative: none; Vault only uses those two when
// the claim is missing, which here is never accepted for exp). iss equals
// bound_issuer and, with discovery, the discovered issuer; aud intersects
// bound_audiences, and a token with an aud is refused by a role that binds
// none; sub equals bound_subject; bound_claims match ("string": exact,
// "glob": "*" wildcards) against a scalar claim or any element of a list
// claim; the client address is in token_bound_cidrs. Every refusal answers
// the same 400 "invalid JWT or role"; the reason goes to the debug log,
// never the token.
//
// Claim names in bound_claims, claim_mappings and groups_claim are JSON
// pointers when they start with "/" (Vault); user_claim is one only with
// user_claim_json_pointer. Numbers keep the token's spelling when turned
// into text.
//
// # What a login returns
//
// DisplayName and Alias.Name are the user claim (a non-empty string or a
// number). Alias.Metadata holds the mapped claims: strings as they are,
// numbers and booleans stringified; a mapped claim that is an object or a
// list refuses the login; an absent one is skipped. Metadata holds "role"
// plus the mapped claims plus, with groups_claim, "groups": the groups
// joined with commas (there is no identity store for group aliases).
// InternalData {"role": name}; the role's token_* settings apply. As in
// Vault, token TTLs come from the role, not from the JWT's exp.
//
// Renewal refuses when the role is gone or its token_policies differ from
// the token's; otherwise it applies the role's current TTLs.
//
// # State and what it must never do
//
// Storage holds "config" and "role/<name>" (JSON). The only process state
// is the last key set fetched from the configured remote source (5 minute
// TTL; an unknown kid refetches, but never more than one fetch attempt per
// 10 s, so a stream of bad tokens cannot hammer the issuer; a failed
// refresh keeps the previous set and logs a warning). It is keyed by the
// source, so a config change never reuses another source's keys, and
// Invalidate("config") and Cleanup drop it. Fetches use a 10 s timeout,
// TLS 1.2+ with the configured CA, a 1 MiB body limit and same-host
// redirects only. The package must never log or return a JWT.
package jwt
