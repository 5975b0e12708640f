// Package policy decides whether a token's policies allow an operation on a
// path. This is the minimal ACL of the foundation: the "root" policy allows
// everything; every other token gets only what Vault's built-in "default"
// policy grants. HCL policies with CEL conditions replace the rule source
// later without changing the kernel's call site (ACL.Allowed).
package policy

import (
	"slices"
	"strings"

	"github.com/wardproject/ward/sdk/logical"
)

// Capability is a permission on a path.
type Capability string

const (
	Create Capability = "create"
	Read   Capability = "read"
	Update Capability = "update"
	Patch  Capability = "patch"
	Delete Capability = "delete"
	List   Capability = "list"
	Sudo   Capability = "sudo"
	Deny   Capability = "deny"
)

type rule struct {
	path   string // exact, or prefix when it ends with "*"
	prefix bool
	caps   []Capability
}

// defaultRules mirrors the parts of Vault's "default" policy that concern
// endpoints Ward has.
var defaultRules = []rule{
	{path: "auth/token/lookup-self", caps: []Capability{Read, Update}},
	{path: "auth/token/renew-self", caps: []Capability{Update}},
	{path: "auth/token/revoke-self", caps: []Capability{Update}},
	{path: "sys/capabilities-self", caps: []Capability{Update}},
	{path: "sys/internal/ui/mounts", caps: []Capability{Read}},
	{path: "sys/internal/ui/mounts/", prefix: true, caps: []Capability{Read}},
	{path: "sys/leases/lookup", caps: []Capability{Update}},
	{path: "sys/leases/renew", caps: []Capability{Update}},
	{path: "sys/renew", caps: []Capability{Update}},
	{path: "sys/wrapping/wrap", caps: []Capability{Update}},
	{path: "sys/wrapping/lookup", caps: []Capability{Update}},
	{path: "sys/wrapping/unwrap", caps: []Capability{Update}},
	{path: "sys/tools/hash", caps: []Capability{Update}},
	{path: "sys/tools/hash/", prefix: true, caps: []Capability{Update}},
	{path: "cubbyhole/", prefix: true, caps: []Capability{Create, Read, Update, Delete, List}},
}

// ACL is the compiled set of a token's policies.
type ACL struct {
	root  bool
	rules []rule
}

// New builds the ACL for a token's policy names.
func New(policies []string) *ACL {
	if slices.Contains(policies, "root") {
		return &ACL{root: true}
	}
	a := &ACL{}
	if slices.Contains(policies, "default") {
		a.rules = defaultRules
	}
	return a
}

// IsRoot reports whether the ACL allows everything.
func (a *ACL) IsRoot() bool { return a.root }

// OperationCapability maps an operation to the capability it needs.
func OperationCapability(op logical.Operation) Capability {
	switch op {
	case logical.ReadOperation, logical.HelpOperation:
		return Read
	case logical.CreateOperation:
		return Create
	case logical.PatchOperation:
		return Patch
	case logical.DeleteOperation:
		return Delete
	case logical.ListOperation:
		return List
	}
	return Update
}

// Allowed reports whether op on path is permitted. sudo reports whether the
// path is a root-protected one, which needs the sudo capability.
func (a *ACL) Allowed(path string, op logical.Operation, sudo bool) bool {
	if a.root {
		return true
	}
	want := OperationCapability(op)
	var best *rule
	for i := range a.rules {
		r := &a.rules[i]
		if r.prefix && strings.HasPrefix(path, r.path) || !r.prefix && path == r.path {
			// Vault's precedence: an exact rule beats a prefix; a longer
			// prefix beats a shorter one.
			if best == nil || (!r.prefix && best.prefix) || (r.prefix == best.prefix && len(r.path) > len(best.path)) {
				best = r
			}
		}
	}
	if best == nil || slices.Contains(best.caps, Deny) {
		return false
	}
	if sudo && !slices.Contains(best.caps, Sudo) {
		return false
	}
	return slices.Contains(best.caps, want)
}
