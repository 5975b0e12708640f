package approle

import (
	"context"
	"crypto/subtle"
	"maps"
	"slices"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

func (b *backend) pathLogin() *framework.Path {
	return &framework.Path{
		Pattern: "login",
		Fields: map[string]*framework.FieldSchema{
			"role_id":   {Type: framework.TypeString, Description: "Role ID of the role."},
			"secret_id": {Type: framework.TypeString, Description: "Secret ID issued for the role (if it binds secret IDs)."},
		},
		Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathLoginUpdate},
		HelpSynopsis: "Logs in with a role ID and a secret ID.",
	}
}

// pathLoginUpdate serves a login. Every credential failure answers
// errInvalidCredentials, whichever part was wrong.
func (b *backend) pathLoginUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleID := d.Get("role_id").(string)
	secret := d.Get("secret_id").(string)
	if roleID == "" || len(roleID) > maxCredentialSz || len(secret) > maxCredentialSz {
		return nil, errInvalidCredentials
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	key, err := b.hmacKey(ctx, s)
	if err != nil {
		return nil, err
	}
	r, err := roleByRoleID(ctx, s, key, roleID)
	if err != nil {
		return nil, err
	}
	if r == nil || !framework.CIDRsContain(r.SecretIDBoundCIDRs, req.RemoteAddr) {
		return nil, errInvalidCredentials
	}
	var e *secretIDEntry
	if r.BindSecretID {
		if secret == "" {
			return nil, errInvalidCredentials
		}
		if e, err = b.useSecretID(ctx, s, r.Instance, mac(key, domainSecretID, secret), req.RemoteAddr); err != nil {
			return nil, err
		}
	}

	md := map[string]string{}
	if e != nil {
		maps.Copy(md, e.Metadata)
	}
	md["role_name"] = r.Name // after the secret ID's metadata: it cannot be overridden
	auth := &logical.Auth{
		DisplayName: r.Name,
		Metadata:    md,
		Alias:       &logical.Alias{Name: r.RoleID, Metadata: maps.Clone(md)},
		InternalData: map[string]any{
			"role_name": r.Name,
			"role_id":   r.RoleID,
		},
	}
	if e != nil {
		auth.InternalData["secret_id_accessor"] = e.Accessor
	}
	r.TokenParams.PopulateAuth(auth)
	if e != nil && len(e.TokenBoundCIDRs) > 0 {
		// Checked at issue to lie within the role's token_bound_cidrs.
		auth.BoundCIDRs = slices.Clone(e.TokenBoundCIDRs)
	}
	return &logical.Response{Auth: auth}, nil
}

// useSecretID checks the secret ID with HMAC h in role instance inst for a
// login from addr and spends one of its uses. Unlimited secret IDs are only
// read; limited ones are re-read and updated under the key's lock, so two
// logins can never spend the same last use. A spent secret ID is deleted.
func (b *backend) useSecretID(ctx context.Context, s logical.Storage, inst, h, addr string) (*secretIDEntry, error) {
	sk := secretKey(inst, h)
	var e secretIDEntry
	found, err := getJSON(ctx, s, sk, "a secret ID", &e)
	if err != nil {
		return nil, err
	}
	now := b.clock()
	if !found || e.expiredAt(now) || !framework.CIDRsContain(e.CIDRList, addr) {
		return nil, errInvalidCredentials
	}
	if e.NumUses == 0 {
		return &e, nil
	}

	lock := b.secretLocks.forKey(sk)
	lock.Lock()
	defer lock.Unlock()
	found, err = getJSON(ctx, s, sk, "a secret ID", &e)
	if err != nil {
		return nil, err
	}
	if !found || e.expiredAt(now) || e.NumUses <= 0 {
		return nil, errInvalidCredentials
	}
	if e.NumUses == 1 {
		if err := apply(ctx, s, "deleting a spent secret ID", deleteOps(inst, h, e.Accessor)); err != nil {
			return nil, err
		}
		e.NumUses = 0
		return &e, nil
	}
	e.NumUses--
	e.LastUpdatedTime = now
	if err := putJSON(ctx, s, sk, "a secret ID", &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// renew re-reads the token's role: it must still exist, with the role ID
// and the token policies the token was issued with. The renewed Auth
// takes the role's current TTL, max TTL and period.
func (b *backend) renew(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	a := req.Auth
	name, _ := a.InternalData["role_name"].(string)
	roleID, _ := a.InternalData["role_id"].(string)
	if name == "" || roleID == "" {
		return nil, logical.InvalidRequest("the token carries no AppRole role information; cannot renew")
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.InvalidRequest("role %q no longer exists; cannot renew", name)
	}
	if subtle.ConstantTimeCompare([]byte(r.RoleID), []byte(roleID)) != 1 {
		return nil, logical.InvalidRequest("the role ID of role %q changed since login; cannot renew", name)
	}
	if !slices.Equal(framework.NormalizePolicies(a.Policies), framework.NormalizePolicies(r.Policies)) {
		return nil, logical.InvalidRequest("the policies of role %q changed since login; cannot renew", name)
	}
	out := *a
	out.Policies = slices.Clone(a.Policies)
	out.BoundCIDRs = slices.Clone(a.BoundCIDRs)
	out.Metadata = maps.Clone(a.Metadata)
	out.InternalData = maps.Clone(a.InternalData)
	if a.Alias != nil {
		al := *a.Alias
		al.Metadata = maps.Clone(a.Alias.Metadata)
		out.Alias = &al
	}
	out.TTL = r.TTL
	out.MaxTTL = r.MaxTTL
	out.Period = r.Period
	return &logical.Response{Auth: &out}, nil
}
