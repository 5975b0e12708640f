package policy

import "fmt"

// Names of the built-in policies.
const (
	RootPolicyName    = "root"
	DefaultPolicyName = "default"
)

// DefaultPolicyText is the initial text of the "default" policy: Vault's
// (vault/policy_store.go defaultPolicy) without the identity-templated
// entity paths, which Ward cannot serve yet, and with two Ward additions
// kept from the foundation's built-in rules: update on
// auth/token/lookup-self (the token backend answers POST there too, as
// Vault's does) and read on sys/internal/ui/mounts, which Vault Agent and
// consul-template probe to learn a mount's KV version.
const DefaultPolicyText = `
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read", "update"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to learn which mounts it can see, and a mount's type and
# options (the KV version), as clients probe before using a KV mount
path "sys/internal/ui/mounts" {
    capabilities = ["read"]
}
path "sys/internal/ui/mounts/*" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow checking the status of a Control Group request if the user has the
# accessor
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
`

var (
	rootPolicy    = &Policy{Name: RootPolicyName}
	defaultPolicy = mustParse(DefaultPolicyName, DefaultPolicyText)
)

// Root returns the built-in root policy: no rules, but an ACL holding it
// allows everything (sudo included) and skips every condition.
func Root() *Policy { return rootPolicy }

// Default returns the built-in default policy, parsed from
// DefaultPolicyText. The store uses it until an operator rewrites
// "default". Callers must not modify it.
func Default() *Policy { return defaultPolicy }

func mustParse(name, text string) *Policy {
	p, err := Parse(name, text, ParseOptions{})
	if err != nil {
		panic(fmt.Sprintf("policy: built-in policy %q: %v", name, err))
	}
	return p
}
