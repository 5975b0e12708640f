package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/wardproject/ward/sdk/logical"
)

// New and Allowed are shorthands the tests use: an ACL from the built-in
// policies only, and Authorize without data or condition inputs.
func New(policies []string) *ACL {
	switch {
	case slices.Contains(policies, RootPolicyName):
		return rootACL
	case slices.Contains(policies, DefaultPolicyName):
		return mustACL(defaultPolicy)
	}
	return mustACL()
}

func (a *ACL) Allowed(path string, op logical.Operation, sudo bool) bool {
	return a.Authorize(context.Background(), &Input{Path: path, Operation: op}, sudo).Allowed
}

func mustACL(ps ...*Policy) *ACL {
	a, err := NewACL(ps)
	if err != nil {
		panic(fmt.Sprintf("policy: built-in ACL: %v", err))
	}
	return a
}
