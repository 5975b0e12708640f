package userpass

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// errBadCredentials is the one answer to every refused login, so a client
// cannot tell an unknown user from a wrong password or a refused address.
func errBadCredentials() error { return logical.InvalidRequest("invalid username or password") }

func (b *backend) pathLogin(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return nil, err
	}
	password := d.Get("password").(string)
	if password == "" {
		return nil, logical.InvalidRequest("missing password")
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}

	u, getErr := getUser(ctx, s, name)
	hash := b.dummyHash()
	if getErr == nil && u != nil && len(u.PasswordHash) > 0 {
		hash = u.PasswordHash
	}
	// Always pay for one bcrypt comparison, even when the answer is already
	// known, so that every refusal takes as long as a wrong password.
	match := b.compare(hash, []byte(password)) == nil
	if getErr != nil {
		return nil, getErr
	}
	// bcrypt reads only the first 72 bytes, and no longer password is ever
	// set, so a longer one cannot be the user's.
	ok := u != nil && len(u.PasswordHash) > 0 && match && len(password) <= maxPasswordBytes
	if !ok || !framework.CIDRsContain(u.BoundCIDRs, req.RemoteAddr) {
		return nil, errBadCredentials()
	}

	auth := &logical.Auth{
		DisplayName:  name,
		Metadata:     map[string]string{"username": name},
		Alias:        &logical.Alias{Name: name},
		InternalData: map[string]any{"username": name},
	}
	u.TokenParams.PopulateAuth(auth)
	return &logical.Response{Auth: auth}, nil
}

// renew serves the kernel's renewal of a token issued by pathLogin.
func (b *backend) renew(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	name := renewUsername(req.Auth)
	if name == "" {
		return nil, logical.InvalidRequest("token has no username, not renewing")
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	u, err := getUser(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, logical.InvalidRequest("user %q no longer exists, not renewing", name)
	}
	if !equivalentPolicies(u.Policies, req.Auth.Policies) {
		return nil, logical.InvalidRequest("policies have changed, not renewing")
	}
	a := cloneAuth(req.Auth)
	a.TTL = u.TTL
	a.MaxTTL = u.MaxTTL
	a.Period = u.Period
	return &logical.Response{Auth: a}, nil
}

// renewUsername finds the user a token was issued to: InternalData as set
// at login, else the metadata (also set at login, and what Vault reads).
func renewUsername(a *logical.Auth) string {
	if v, ok := a.InternalData["username"].(string); ok && v != "" {
		return strings.ToLower(v)
	}
	return strings.ToLower(a.Metadata["username"])
}

// equivalentPolicies compares policy sets ignoring order, case, duplicates
// and "default", which the kernel may add (Vault's EquivalentPolicies).
func equivalentPolicies(a, b []string) bool {
	strip := func(p []string) []string {
		return slices.DeleteFunc(framework.NormalizePolicies(p), func(s string) bool { return s == "default" })
	}
	return slices.Equal(strip(a), strip(b))
}

// cloneAuth deep-copies a so the answer shares nothing with the request.
func cloneAuth(a *logical.Auth) *logical.Auth {
	c := *a
	c.Policies = slices.Clone(a.Policies)
	c.BoundCIDRs = slices.Clone(a.BoundCIDRs)
	c.Metadata = maps.Clone(a.Metadata)
	c.InternalData = maps.Clone(a.InternalData)
	if a.Alias != nil {
		al := *a.Alias
		al.Metadata = maps.Clone(a.Alias.Metadata)
		c.Alias = &al
	}
	return &c
}
