package policy

import (
	"context"
	"slices"

	"github.com/wardproject/ward/sdk/logical"
)

// This file keeps the foundation's API, which the kernel calls until it
// switches to NewACL and Authorize. It is implemented on the engine.

// Capability is a permission on a path.
type Capability string

// The capabilities a path block may grant.
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

// New builds the ACL for a token's policy names from the built-in policies
// only: root if "root" is among them, else the default policy if "default"
// is, else an ACL that denies everything. Other names are ignored.
func New(policies []string) *ACL {
	switch {
	case slices.Contains(policies, RootPolicyName):
		return rootACL
	case slices.Contains(policies, DefaultPolicyName):
		return defaultACL
	}
	return emptyACL
}

// OperationCapability maps an operation to the capability it needs (update
// for renew, revoke and any operation it does not know).
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
// path is a root-protected one, which needs the sudo capability. It is
// Authorize without request data or condition inputs.
func (a *ACL) Allowed(path string, op logical.Operation, sudo bool) bool {
	return a.Authorize(context.Background(), &Input{Path: path, Operation: op}, sudo).Allowed
}
