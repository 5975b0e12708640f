// Package token owns Ward's token store and the auth/token/ backend.
//
// It owns: minting service tokens and accessors, their storage (keyed by an
// HMAC of the token, never the token itself), validity (TTL, explicit max
// TTL, period, number of uses, the parent chain), renewal, revocation of a
// token and its descendants, the expiry sweeper, token roles, and the
// HTTP-facing auth/token/ paths (create, lookup, renew, revoke, accessors,
// roles) with Vault's field names and response shapes.
//
// It must never: store, log or put in an error message a token or an
// accessor (Entry redacts itself when formatted; errors name no values);
// decide ACL questions (the kernel's ACL gates paths before the backend runs;
// handlers only enforce rules that depend on the caller itself, such as
// "only a root token may choose a token's ID"); or import anything from the
// kernel beyond the SDK.
//
// # Storage layout (all keys relative to the view given to NewStore)
//
//	salt                              32 random bytes: the HMAC key
//	id/<hashed>                       JSON Entry (never the token); hashed = hex HMAC-SHA256(salt, token)
//	accessor/<hex HMAC(salt, "accessor/"+accessor)>
//	                                  JSON {"hashed_id", "accessor"}
//	parent/<parent hashed>/<child hashed>
//	                                  "{}": the parent→child index used to revoke a tree
//	expiry/<%020d unix seconds>/<hashed>
//	                                  "{}": the expiry index the sweeper walks in key order
//	roles/<name>                      JSON token role (OpenBao's field names)
//
// # Validity and revocation
//
// An entry is valid when it exists, has not passed ExpireTime, is not marked
// for revocation (NumUses < 0) and every ancestor up the Parent chain is valid
// too. Checking the chain on every lookup is what makes a revoked or expired
// parent disable all descendants at once, before the (possibly long) tree
// revocation has deleted them.
//
// Revocation first marks a token (NumUses = -1, as Vault does), then revokes
// its children depth first, and deletes the token's indexes and entry last. A
// crash mid-way leaves marked entries that fail every lookup and are finished
// by the sweeper or by the background revoker that lookups feed.
//
// Spending the last use of a use-limited token (SpendUse) marks it the same
// way; the kernel revokes it once the request that spent the use is done,
// as Vault does, so that request still sees what is keyed by the token
// (its cubbyhole: that is how a wrapping token is unwrapped). UseToken
// spends and revokes at once. Revoked, the hook, is called for every token
// a revocation deletes: the kernel drops the token's leases and cubbyhole.
//
// Create writes the indexes before the entry and then re-checks the parent:
// either a concurrent tree revocation sees the new child in the parent index,
// or Create sees the parent marked and revokes what it wrote.
//
// Writes that read-modify-write one entry (renew, use counting, re-parenting)
// hold a per-token lock (striped, never two at once) so none of them can
// resurrect an entry that revocation deleted.
//
// # Decisions
//
//   - "root" in a policy list collapses it to exactly ["root"] (OpenBao's
//     SanitizePolicies); IsRoot is "policies contain root".
//   - Tokens with no expiry are never renewable (Vault does not advertise
//     them as renewable); Renew leaves them unchanged.
//   - Renew follows Vault's CalculateTTL: a periodic token renews by its
//     period (increment ignored), each period capped by the system, mount
//     and explicit max TTLs, its lifetime only by its explicit max TTL; other
//     tokens renew by the increment or else their creation TTL, capped by
//     CreationTime + min(MaxTTL, ExplicitMaxTTL). Root tokens are exempt from
//     MaxTTL, at creation and renewal.
//   - Policy inheritance follows OpenBao's resolveTokenPolicies: a child
//     asking for no policies gets its parent's; "default" is added only when
//     the caller is root or already holds "default" (a caller must not be
//     able to grant a policy it lacks), and never with no_default_policy.
//   - Caller-dependent rules answer 403 ("root or sudo privileges required
//     to ..."): id, no_parent, period, revoke-orphan, accessors. OpenBao
//     answers 400 for these; 403 is the status of every other permission
//     refusal in Ward. A bad token in lookup answers 403 "bad token" and an
//     unknown accessor 400 "invalid accessor", as OpenBao does.
//   - Tokens expire to the nanosecond (Lookup compares ExpireTime with the
//     clock); the expiry index is bucketed by whole seconds. The sweeper
//     remembers the earliest bucket it has not processed and lists the
//     index only when that is due (and at least once a minute).
//   - The backend uses the Store's storage view, not Request.Storage.
//
// # Token roles
//
// Roles follow OpenBao's token store (auth/token/roles/<name>,
// auth/token/create/<name>); the ACL decides who may write a role or
// create through one, the handlers only apply the role:
//
//   - A role with policy lists (allowed_policies, disallowed_policies or
//     their _glob forms) replaces the subset-of-the-caller rule: the caller
//     need not hold the policies it grants. Requested policies (none: the
//     role's allowed_policies, or the caller's when the role only
//     disallows) must be allowed (when an allowed list is set) and not
//     disallowed. "default" is added unless no_default_policy (request or
//     role) or the role disallows it. A role without lists keeps the usual
//     rules, and then, as in OpenBao, its token_no_default_policy is not
//     consulted. A non-root caller still cannot obtain "root".
//   - The role decides orphan-ness (no_parent is ignored), caps renewable
//     and num_uses, appends its name and path_suffix to the token's path,
//     and merges its period and explicit max TTL with the request's (the
//     lesser wins). A period in the request still needs a root caller; the
//     role's does not.
//   - At renewal a role token takes the role's current period and the
//     lesser of its own and the role's current explicit max TTL. OpenBao
//     takes the role's explicit max as it is, which can outlive the limit
//     the token was created with; Ward never lets a renewal do that. If
//     the role was deleted the renewal fails with 400 and OpenBao's text
//     (OpenBao answers 500).
//   - token_type accepts "service" and "default-service" (the default);
//     batch types answer 400 as on create. bound_cidrs/token_bound_cidrs
//     must be empty (only login tokens can be bound to CIDRs).
//     allowed_entity_aliases is stored and checked against entity_alias,
//     which is then ignored (no identity store).
//   - path_suffix must match \w[\w-.]+\w as a whole (OpenBao matches it
//     anywhere in the value) and contain no "..".
package token
