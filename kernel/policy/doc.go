// Package policy is Ward's ACL engine: it parses Vault-compatible policies
// (HCL or JSON), compiles a token's policies into an ACL, and decides
// whether a request may proceed.
//
// It owns policy syntax, matching, precedence, merging and the evaluation of
// CEL conditions. It never stores policies (the policy store does), never
// resolves a token to its policies (the kernel does), never does I/O, and
// never puts request data into an error or a decision. An ACL is immutable
// and safe for concurrent use.
//
// # Policies
//
// A policy is a list of path blocks, in Vault's syntax:
//
//	path "secret/data/+/config" {
//	  capabilities        = ["read", "update"]
//	  allowed_parameters  = { "ttl" = [] "mode" = ["fast", "sl*"] }
//	  denied_parameters   = { "admin" = [] }
//	  required_parameters = ["mode"]
//	  min_wrapping_ttl    = "1m"
//	  max_wrapping_ttl    = "1h"
//	  condition           = "cidrContains(\"10.0.0.0/8\", request.remote_addr)"
//	}
//
// The same in JSON: {"path": {"secret/data/+/config": {"capabilities":
// [...], ...}}}. The keys of a path block are those above plus "comment"
// (ignored) and the legacy "policy" shorthand: "read" adds read and list;
// "write" adds create, read, update, delete and list; "sudo" adds those and
// sudo; "deny" is deny. Vault's mfa_methods, control_group and
// subscribe_event_types are rejected, not ignored: ignoring them would
// grant without the MFA or approval the author required.
//
// Capabilities: create, read, update, patch, delete, list, sudo, deny. A
// block with deny denies, whatever else it lists. Parse rejects unknown
// capabilities, unknown keys, a "*" anywhere but at the end of a pattern,
// "+*", bad durations and max_wrapping_ttl < min_wrapping_ttl, with a
// *ParseError naming the line (HCL only: the HCL library's JSON parser keeps
// no positions). Every Parse error wraps ErrInvalidPolicy (HTTP 400).
// Duplicate attributes in a block are an error. Booleans and nested lists
// in JSON parameter value lists are rejected because the HCL library's JSON
// parser silently drops them. Patterns using identity templating
// ("{{identity.entity.id}}") are accepted, flagged Templated, and match
// nothing until Ward has an identity store.
//
// Names are lower-cased (NormalizeName). "root" is built in (Root) and, with
// Vault's "response-wrapping" and "control-group", reserved
// (IsReservedName): the store refuses to write them. "default" is built in
// (Default, DefaultPolicyText: Vault's default policy minus the identity
// paths) and may be rewritten but not deleted.
//
// # Patterns and precedence
//
// A pattern is exact ("sys/mounts"), a prefix ending in "*" ("secret/*",
// "secret/fo*" — the "*" matches any characters, "/" included), or has "+"
// segments, each matching exactly one path segment ("secret/+/config",
// "secret/+/data/*"). A leading "/" is ignored.
//
// For a request path, exactly one pattern decides (Vault's rule; conditions
// play no part in the choice):
//
//  1. an exact pattern equal to the path; for list requests, also the path
//     without its trailing slash;
//  2. otherwise, among the matching "*" and "+" patterns, the most precise
//     one by Vault's priority rules
//     (https://developer.hashicorp.com/vault/docs/concepts/policies#priority-matching):
//     (1) the one whose first wildcard ("+" or "*") comes later wins;
//     (2) then the one that does not end in "*"; (3) then the one with
//     fewer "+" segments; (4) then the longer one; (5) then the
//     lexicographically greater one. For list requests the path without
//     its trailing slash is tried first.
//
// The deciding pattern's rules alone grant: a more precise pattern replaces
// a less precise one entirely, with no union across patterns, inside a
// policy and across the token's policies alike. So "secret/*" read plus
// "secret/admin" update gives update only on secret/admin, and a deny on
// "secret/*" does not stop a read granted on "secret/open".
//
// # Merging
//
// The rules written with the same pattern — in one policy or in several of
// the token's policies — merge, as in Vault:
//
//   - capabilities are the union, and deny wins over everything (parameter
//     constraints of the other rules are dropped);
//   - allowed_parameters and denied_parameters are unioned name by name; an
//     empty list (any value) on either side stays empty, otherwise the value
//     lists are concatenated. A rule without parameter constraints does not
//     lift the constraints of another rule on the same pattern;
//   - required_parameters are the union;
//   - of the wrapping TTLs that are set, the smaller max and the smaller min
//     are kept.
//
// # Operations
//
// read and help need read (Vault always allows help; Ward does not show a
// path's help to a token that may not read it), list needs list, create
// create, update update, patch patch (never update: a PATCH needs the patch
// capability, as in Vault), delete delete, renew and revoke update. Any
// other operation is denied. A root-protected path (needSudo) also needs
// sudo. Parameter constraints apply to read, create, update and patch (reads
// carry query parameters): required parameters must be present; with no
// data, nothing else is checked; a denied "*" denies any data; a parameter
// whose value matches its denied list denies; then, unless
// allowed_parameters is absent or holds only "*", every parameter must be
// allowed by name or by "*", and a parameter listed by name must have an
// allowed value. Names compare case-insensitively. A value matches a list
// element when it is equal, or, for strings, by glob: "foo*", "*foo" and
// "*foo*" (a lone "*" only matches "*"). A list value is allowed when each
// element is allowed and denied when any element is denied; a string is
// also split on commas and treated the same way (Vault assumes it may be a
// comma-separated list). Two deliberate deviations from Vault: numbers
// compare by value (the HCL 30 matches the JSON 30, which Vault's
// reflect.DeepEqual never does), and an empty list or empty string is not
// vacuously allowed by a non-empty allowed list.
//
// min_wrapping_ttl and max_wrapping_ttl are enforced as in Vault: a path
// with either needs the response wrapped (Input.WrapTTL > 0) within the
// bounds; the merged bounds are also reported in the Decision.
//
// # Conditions
//
// A path block may carry condition = "<CEL expression>". Parse compiles it
// and type-checks it against these variables:
//
//	request.path         string               the request path, no leading "/"
//	request.operation    string               "read", "list", "create", "update", "patch", "delete", "help", ...
//	request.data         map(string, dyn)     the request data (JSON body, or query parameters of a read)
//	request.headers      map(string, list(string))  the headers the kernel exposes, names lower-cased
//	request.remote_addr  string               the client IP, without port ("10.1.2.3", "2001:db8::1")
//	request.time         timestamp            the decision time (= now)
//	token.policies       list(string)
//	token.meta           map(string, string)
//	token.display_name   string
//	token.entity_id      string
//	token.ttl            duration
//	token.creation_time  timestamp
//	mount.path           string               with trailing slash, "secret/"
//	mount.type           string
//	mount.accessor       string
//	now                  timestamp            the decision time (Input.Now, else the clock)
//	cidrContains(cidr string, ip string) bool   false on malformed input
//
// request, token and mount are typed objects (cel-go native types: CEL
// types ward.Request, ward.Token, ward.Mount), so request.pth is a compile
// error and request.path + 1 a type error. The expression must be of type
// bool (a dyn such as request.data.flag must be compared: request.data.flag
// == true). CEL's standard library is available, with the strings
// extension (lowerAscii, split, ...) and optional syntax
// (token.meta[?"mfa"].orValue("") == "true"). Timestamp accessors without a
// time zone argument use UTC: now.getHours() >= 9 && now.getHours() < 17
// means 09:00–17:00 UTC; now.getHours("+01:00") takes an offset and
// now.getHours("Europe/Paris") a zone name (which needs the time zone
// database on the host; without it the condition errors, so it denies).
//
// Parse rejects a condition whose cost, as estimated by cel-go with input
// sizes bounded at 1,024 for strings and 128 entries for lists and maps,
// exceeds ParseOptions.MaxConditionCost (DefaultMaxConditionCost, 10,000):
// a nested comprehension over request.data does. Errors carry cel-go's
// message with line:column inside the expression. Compiled programs are
// cached by the SHA-256 of the expression, so an expression shared by many
// policies compiles once. An evaluation stops at ConditionCostLimit
// (100,000) actual cost, and when the context passed to Authorize is done.
//
// Semantics. At the deciding pattern the capabilities (and the parameter
// and wrapping constraints) are the merge of its unconditional rules and of
// its conditional rules whose condition holds. Conditions never change
// which pattern decides: if a more precise pattern's conditional rules do
// not hold, the request is decided by that pattern with what remains —
// usually nothing, so it is denied — and never falls back to a less precise
// pattern. An evaluation error (a missing map key, a division by zero, a
// type mismatch in data, the cost limit, a cancelled context) resolves to
// the less permissive side: a rule that grants a capability does not apply;
// a restrictive rule (capabilities = ["deny"], or no capability at all, only
// parameter constraints) applies.
//
// Why this design, rather than "if no conditional rule holds at the
// winning pattern, fall back to the next matching pattern": authors write a
// more precise pattern to narrow what a broader one grants ("reads on
// secret/prod/* only from the office network" under "read, update on
// secret/*"). With a fall back, a false condition would hand prod the
// broader read and update: the condition failing would grant more than it
// holding. Here a false condition can only remove grants, a conditional
// rule never grants more than it says, and an unconditional broader rule is
// never silently re-enabled. It is also exactly Vault's model when no
// conditions are present, so the precedence rules stay the ones operators
// know. An author who wants "read for all, update with MFA" on one path
// writes both rules with the same pattern; they union. The cost — a
// conditional precise rule shadows the broad rule even when false — fails
// closed.
//
// Decision.Conditions records every condition evaluated (policy, pattern,
// expression, result, and a fixed error class that never quotes request
// data) for audit. The root policy skips ACLs and conditions altogether;
// the default policy has no conditions.
//
// # Performance
//
// NewACL indexes the rules: exact patterns in a map, "*" prefixes in a
// radix tree (longest match), "+" patterns in a trie keyed by segment with
// a "+" edge. A decision walks the path's segments and never looks at rules
// that cannot match; with 1,000 policies and 10,000 rules it takes well
// under a microsecond without conditions and about 2 µs with one condition
// evaluated. NewACL over such a set takes about 10 ms: the kernel should
// cache ACLs per policy set.
package policy
