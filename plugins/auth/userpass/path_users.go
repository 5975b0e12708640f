package userpass

import (
	"context"
	"maps"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

func (b *backend) paths() []*framework.Path {
	usernameField := &framework.FieldSchema{Type: framework.TypeString, Description: "Username of the user (case-insensitive)."}
	passwordField := &framework.FieldSchema{Type: framework.TypeString, Description: "Password of the user, at most 72 bytes."}
	return []*framework.Path{
		{
			Pattern:         "users/?",
			Operations:      map[logical.Operation]framework.OperationFunc{logical.ListOperation: b.pathUserList},
			HelpSynopsis:    "List the users.",
			HelpDescription: "Lists the usernames registered with this auth method.",
		},
		{
			Pattern: "users/" + framework.GenericNameRegex("username"),
			Fields: framework.AddTokenFields(map[string]*framework.FieldSchema{
				"username": usernameField,
				"password": passwordField,
				// Deprecated aliases kept for Vault clients; see legacyAliases.
				"policies":    {Type: framework.TypeCommaStringSlice, Description: "Deprecated: use token_policies."},
				"bound_cidrs": {Type: framework.TypeCommaStringSlice, Description: "Deprecated: use token_bound_cidrs."},
				"ttl":         {Type: framework.TypeDurationSecond, Description: "Deprecated: use token_ttl."},
				"max_ttl":     {Type: framework.TypeDurationSecond, Description: "Deprecated: use token_max_ttl."},
			}),
			ExistenceCheck: b.userExists,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.CreateOperation: b.pathUserWrite,
				logical.UpdateOperation: b.pathUserWrite,
				logical.ReadOperation:   b.pathUserRead,
				logical.DeleteOperation: b.pathUserDelete,
			},
			HelpSynopsis: "Manage a user.",
			HelpDescription: "Creates, updates, reads or deletes a user. A password is required on creation. " +
				"Reads return the token settings, never the password.",
		},
		{
			Pattern: "users/" + framework.GenericNameRegex("username") + "/password",
			Fields: map[string]*framework.FieldSchema{
				"username": usernameField,
				"password": passwordField,
			},
			Operations:      map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathUserPassword},
			HelpSynopsis:    "Change a user's password.",
			HelpDescription: "Replaces the password of an existing user.",
		},
		{
			Pattern: "users/" + framework.GenericNameRegex("username") + "/policies",
			Fields: map[string]*framework.FieldSchema{
				"username":       usernameField,
				"token_policies": framework.TokenFields()["token_policies"],
				"policies":       {Type: framework.TypeCommaStringSlice, Description: "Deprecated: use token_policies."},
			},
			Operations:      map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathUserPolicies},
			HelpSynopsis:    "Change a user's token policies.",
			HelpDescription: "Replaces the token_policies of an existing user.",
		},
		{
			Pattern: "login/" + framework.GenericNameRegex("username"),
			Fields: map[string]*framework.FieldSchema{
				"username": usernameField,
				"password": passwordField,
			},
			Operations:      map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathLogin},
			HelpSynopsis:    "Log in with a username and password.",
			HelpDescription: "Returns a token carrying the user's token settings when the password matches.",
		},
	}
}

func (b *backend) pathUserList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(ctx, userPrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(keys), nil
}

func (b *backend) userExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return false, err
	}
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	u, err := getUser(ctx, s, name)
	return u != nil, err
}

func (b *backend) pathUserRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	u, err := getUser(ctx, s, name)
	if err != nil || u == nil {
		return nil, err
	}
	data := map[string]any{}
	u.TokenParams.ResponseData(data)
	// Vault echoes a deprecated key when the user was written with it.
	if u.Legacy.Policies && len(u.Policies) > 0 {
		data["policies"] = data["token_policies"]
	}
	if u.Legacy.BoundCIDRs && len(u.BoundCIDRs) > 0 {
		data["bound_cidrs"] = data["token_bound_cidrs"]
	}
	if u.Legacy.TTL && u.TTL > 0 {
		data["ttl"] = data["token_ttl"]
	}
	if u.Legacy.MaxTTL && u.MaxTTL > 0 {
		data["max_ttl"] = data["token_max_ttl"]
	}
	return &logical.Response{Data: data}, nil
}

// pathUserWrite serves create and update alike: the record is re-read
// under the user's lock, so a user deleted or created since the existence
// check is handled as what it is now.
func (b *backend) pathUserWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	// Hash before locking: bcrypt is deliberately slow.
	var hash []byte
	if pw, ok := d.GetOk("password"); ok {
		if hash, err = b.hashPassword(pw.(string)); err != nil {
			return nil, err
		}
	}

	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	u, err := getUser(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if u == nil {
		if hash == nil {
			return nil, logical.InvalidRequest("missing password")
		}
		u = &userEntry{}
	}
	if hash != nil {
		u.PasswordHash = hash
	}
	if err := u.TokenParams.ParseTokenFields(resolveAliases(d, &u.Legacy)); err != nil {
		return nil, err
	}
	return nil, putUser(ctx, s, name, u)
}

// legacyAliases pairs each deprecated field of users/<username> with the
// token_* field it stands for.
var legacyAliases = []struct {
	oldKey, newKey string
	flag           func(*legacyFields) *bool
}{
	{"policies", "token_policies", func(l *legacyFields) *bool { return &l.Policies }},
	{"bound_cidrs", "token_bound_cidrs", func(l *legacyFields) *bool { return &l.BoundCIDRs }},
	{"ttl", "token_ttl", func(l *legacyFields) *bool { return &l.TTL }},
	{"max_ttl", "token_max_ttl", func(l *legacyFields) *bool { return &l.MaxTTL }},
}

// resolveAliases returns d with each deprecated field copied to its token_*
// name when only the deprecated one is given, and records in legacy which
// deprecated keys reads should echo, following Vault's tokenutil.UpgradeValue:
// the token_* field wins when both are given; giving only the token_* field
// drops the echo; giving neither leaves it as it was.
func resolveAliases(d *framework.FieldData, legacy *legacyFields) *framework.FieldData {
	raw := maps.Clone(d.Raw)
	for _, a := range legacyAliases {
		_, hasNew := d.GetOk(a.newKey)
		oldVal, hasOld := d.GetOk(a.oldKey)
		switch {
		case hasNew:
			*a.flag(legacy) = hasOld
		case hasOld:
			raw[a.newKey] = oldVal
			*a.flag(legacy) = true
		}
	}
	return &framework.FieldData{Raw: raw, Schema: d.Schema}
}

func (b *backend) pathUserDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	return nil, s.Delete(ctx, userPrefix+name)
}

func (b *backend) pathUserPassword(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	hash, err := b.hashPassword(d.Get("password").(string))
	if err != nil {
		return nil, err
	}
	return nil, b.updateUser(ctx, s, name, func(u *userEntry) error {
		u.PasswordHash = hash
		return nil
	})
}

func (b *backend) pathUserPolicies(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := usernameFrom(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	newVal, hasNew := d.GetOk("token_policies")
	oldVal, hasOld := d.GetOk("policies")
	if !hasNew && !hasOld {
		return nil, logical.InvalidRequest("must provide token_policies")
	}
	return nil, b.updateUser(ctx, s, name, func(u *userEntry) error {
		if hasNew {
			u.Policies = framework.NormalizePolicies(newVal.([]string))
			u.Legacy.Policies = hasOld
		} else {
			u.Policies = framework.NormalizePolicies(oldVal.([]string))
			u.Legacy.Policies = true
		}
		return nil
	})
}

// updateUser applies change to an existing user under the user's lock.
func (b *backend) updateUser(ctx context.Context, s logical.Storage, name string, change func(*userEntry) error) error {
	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	u, err := getUser(ctx, s, name)
	if err != nil {
		return err
	}
	if u == nil {
		return logical.Errorf(logical.CodeNotFound, "username does not exist")
	}
	if err := change(u); err != nil {
		return err
	}
	return putUser(ctx, s, name, u)
}
