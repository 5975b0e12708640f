package approle

import (
	"context"
	"crypto/subtle"
	"net/netip"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// roleEntry is a role as stored at role/<name>.
type roleEntry struct {
	framework.TokenParams

	// Name is the role's (lowercased) name.
	Name string `json:"name"`
	// RoleID is the login identifier of the role; role_id/<HMAC> points
	// back here.
	RoleID string `json:"role_id"`
	// Instance identifies this incarnation of the role: its secret IDs
	// live under secret_id/<Instance>/, so a role deleted and created again
	// with the same name never inherits the old secret IDs.
	Instance           string        `json:"instance"`
	BindSecretID       bool          `json:"bind_secret_id"`
	SecretIDBoundCIDRs []string      `json:"secret_id_bound_cidrs"`
	SecretIDNumUses    int           `json:"secret_id_num_uses"`
	SecretIDTTL        time.Duration `json:"secret_id_ttl"`
	// LocalSecretIDs is accepted and reported for Vault compatibility; Ward
	// has no performance replication, so it changes nothing.
	LocalSecretIDs bool `json:"local_secret_ids"`
}

// roleIDIndex is stored at role_id/<HMAC of the role ID>.
type roleIDIndex struct {
	Name string `json:"name"`
}

func roleNameField() *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the role."}
}

func (b *backend) rolePaths() []*framework.Path {
	name := "role/" + framework.GenericNameRegex("role_name")
	return []*framework.Path{
		{
			Pattern:      "role/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: b.pathRoleList},
			HelpSynopsis: "Lists the roles.",
		},
		{
			Pattern: name,
			Fields: framework.AddTokenFields(map[string]*framework.FieldSchema{
				"role_name": roleNameField(),
				"bind_secret_id": {Type: framework.TypeBool, Default: true,
					Description: "Require a secret ID at login. Defaults to true."},
				"secret_id_bound_cidrs": {Type: framework.TypeCommaStringSlice,
					Description: "CIDR blocks (or addresses) allowed to log in with this role."},
				"bound_cidr_list": {Type: framework.TypeCommaStringSlice,
					Description: `Deprecated: use "secret_id_bound_cidrs".`},
				"secret_id_num_uses": {Type: framework.TypeInt,
					Description: "Number of logins a secret ID of this role allows; 0 is unlimited."},
				"secret_id_ttl": {Type: framework.TypeDurationSecond,
					Description: "Lifetime of the secret IDs of this role; 0 is unlimited."},
				"policies": {Type: framework.TypeCommaStringSlice,
					Description: `Deprecated: use "token_policies".`},
				"period": {Type: framework.TypeDurationSecond,
					Description: `Deprecated: use "token_period".`},
				"role_id": {Type: framework.TypeString,
					Description: "Role ID to use; a random UUID by default."},
				"local_secret_ids": {Type: framework.TypeBool,
					Description: "Accepted for compatibility; has no effect. Set at creation only."},
			}),
			ExistenceCheck: b.roleExists,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.CreateOperation: b.pathRoleWrite,
				logical.UpdateOperation: b.pathRoleWrite,
				logical.ReadOperation:   b.pathRoleRead,
				logical.DeleteOperation: b.pathRoleDelete,
			},
			HelpSynopsis: "Creates, reads, updates or deletes a role.",
			HelpDescription: `A role needs bind_secret_id or a bound CIDR block. Fields left out of an
update keep their values.`,
		},
		{
			Pattern: name + "/role-id",
			Fields: map[string]*framework.FieldSchema{
				"role_name": roleNameField(),
				"role_id":   {Type: framework.TypeString, Description: "New role ID of the role."},
			},
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   b.pathRoleIDRead,
				logical.UpdateOperation: b.pathRoleIDUpdate,
			},
			HelpSynopsis: "Reads or sets the role ID of a role.",
		},
		{
			Pattern:      name + "/local-secret-ids",
			Fields:       map[string]*framework.FieldSchema{"role_name": roleNameField()},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: b.pathRoleLocalSecretIDs},
			HelpSynopsis: "Reads the local_secret_ids setting of a role.",
		},
	}
}

// roleName returns the validated, lowercased role name of the request
// (Vault lowercases the names of roles it creates).
func roleName(d *framework.FieldData) (string, error) {
	n := strings.ToLower(d.Get("role_name").(string))
	if n == "" || strings.Contains(n, "/") || len(n) > maxCredentialSz {
		return "", logical.InvalidRequest("invalid role name")
	}
	return n, nil
}

func errRoleNotFound(name string) error {
	return logical.Errorf(logical.CodeNotFound, "role %q does not exist", name)
}

// loadRole reads role/<name>; nil when missing.
func loadRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	var r roleEntry
	found, err := getJSON(ctx, s, rolePrefix+name, "a role", &r)
	if err != nil || !found {
		return nil, err
	}
	if r.Type == "" {
		r.Type = "default"
	}
	return &r, nil
}

// mustRole loads the request's role, answering 404 when it is missing.
func (b *backend) mustRole(ctx context.Context, req *logical.Request, d *framework.FieldData) (logical.Storage, *roleEntry, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if r == nil {
		return nil, nil, errRoleNotFound(name)
	}
	return s, r, nil
}

func (b *backend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := roleName(d)
	if err != nil {
		return false, err
	}
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	r, err := loadRole(ctx, s, name)
	return r != nil, err
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(ctx, rolePrefix)
	if err != nil {
		return nil, storageErr("listing roles", err)
	}
	return logical.ListResponse(keys), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	data := map[string]any{
		"bind_secret_id":        r.BindSecretID,
		"secret_id_bound_cidrs": nonNil(r.SecretIDBoundCIDRs),
		"secret_id_num_uses":    r.SecretIDNumUses,
		"secret_id_ttl":         int64(r.SecretIDTTL / time.Second),
		"local_secret_ids":      r.LocalSecretIDs,
	}
	r.TokenParams.ResponseData(data)
	// The legacy names, as Vault still reports them.
	data["policies"] = data["token_policies"]
	data["period"] = data["token_period"]
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.roleLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()

	old, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	var r roleEntry
	if old != nil {
		r = *old
	} else {
		inst, err := newUUID()
		if err != nil {
			return nil, err
		}
		r = roleEntry{Name: name, Instance: inst, BindSecretID: true}
	}
	if err := applyRoleFields(&r, d, old == nil); err != nil {
		return nil, err
	}

	newRoleID := r.RoleID
	if v, ok := d.GetOk("role_id"); ok {
		if newRoleID, err = checkRoleID(v.(string)); err != nil {
			return nil, err
		}
	} else if old == nil {
		if newRoleID, err = newUUID(); err != nil {
			return nil, err
		}
	}
	if old != nil && newRoleID == old.RoleID {
		return nil, putJSON(ctx, s, rolePrefix+name, "a role", &r)
	}
	oldRoleID := ""
	if old != nil {
		oldRoleID = old.RoleID
	}
	return nil, b.saveWithRoleID(ctx, s, &r, oldRoleID, newRoleID)
}

// applyRoleFields sets the fields present in d on r and checks the result.
func applyRoleFields(r *roleEntry, d *framework.FieldData, create bool) error {
	if v, ok := d.GetOk("bind_secret_id"); ok {
		r.BindSecretID = v.(bool)
	}
	cidrs, ok := d.GetOk("secret_id_bound_cidrs")
	if !ok {
		cidrs, ok = d.GetOk("bound_cidr_list")
	}
	if ok {
		parsed, err := framework.ParseCIDRs(cidrs.([]string))
		if err != nil {
			return logical.InvalidRequest("secret_id_bound_cidrs: %v", err)
		}
		r.SecretIDBoundCIDRs = parsed
	}
	if v, ok := d.GetOk("secret_id_num_uses"); ok {
		if v.(int) < 0 {
			return logical.InvalidRequest("secret_id_num_uses cannot be negative")
		}
		r.SecretIDNumUses = v.(int)
	}
	if v, ok := d.GetOk("secret_id_ttl"); ok {
		r.SecretIDTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("local_secret_ids"); ok {
		if !create && v.(bool) != r.LocalSecretIDs {
			return logical.InvalidRequest("local_secret_ids can only be set during role creation")
		}
		r.LocalSecretIDs = v.(bool)
	}
	if err := r.TokenParams.ParseTokenFields(d); err != nil {
		return err
	}
	if _, ok := d.GetOk("token_policies"); !ok {
		if v, ok := d.GetOk("policies"); ok {
			r.Policies = framework.NormalizePolicies(v.([]string))
		}
	}
	if _, ok := d.GetOk("token_period"); !ok {
		if v, ok := d.GetOk("period"); ok {
			r.Period = time.Duration(v.(int)) * time.Second
		}
	}
	if !r.BindSecretID && len(r.SecretIDBoundCIDRs) == 0 && len(r.BoundCIDRs) == 0 {
		return logical.InvalidRequest("at least one constraint should be enabled on the role: " +
			"bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs")
	}
	return nil
}

// checkRoleID validates a caller-chosen role ID.
func checkRoleID(id string) (string, error) {
	if strings.TrimSpace(id) == "" {
		return "", logical.InvalidRequest("role_id must not be empty")
	}
	if len(id) > maxCredentialSz {
		return "", logical.InvalidRequest("role_id must not be longer than %d bytes", maxCredentialSz)
	}
	return id, nil
}

// saveWithRoleID stores r with role ID newID (replacing oldID, "" for a
// new role) and moves the role_id index. The new index entry is written
// before the role and the old one deleted after it: a crash in between
// leaves an index entry whose role does not carry that role ID, which
// login and the uniqueness check both treat as absent.
func (b *backend) saveWithRoleID(ctx context.Context, s logical.Storage, r *roleEntry, oldID, newID string) error {
	key, err := b.hmacKey(ctx, s)
	if err != nil {
		return err
	}
	b.roleIDMu.Lock()
	defer b.roleIDMu.Unlock()
	owner, err := roleIDOwner(ctx, s, key, newID)
	if err != nil {
		return err
	}
	if owner != "" && owner != r.Name {
		return logical.InvalidRequest("role_id is already in use by another role")
	}
	newIdx := roleIDPrefix + mac(key, domainRoleID, newID)
	if err := putJSON(ctx, s, newIdx, "the role_id index", roleIDIndex{Name: r.Name}); err != nil {
		return err
	}
	r.RoleID = newID
	if err := putJSON(ctx, s, rolePrefix+r.Name, "a role", r); err != nil {
		return err
	}
	if oldID != "" && oldID != newID {
		if err := s.Delete(ctx, roleIDPrefix+mac(key, domainRoleID, oldID)); err != nil {
			return storageErr("deleting the old role_id index", err)
		}
	}
	return nil
}

// roleIDOwner returns the name of the role whose role ID is id, "" for
// none. An index entry is trusted only if its role still has that ID.
func roleIDOwner(ctx context.Context, s logical.Storage, key []byte, id string) (string, error) {
	r, err := roleByRoleID(ctx, s, key, id)
	if err != nil || r == nil {
		return "", err
	}
	return r.Name, nil
}

// roleByRoleID finds the role whose role ID is id; nil when none.
func roleByRoleID(ctx context.Context, s logical.Storage, key []byte, id string) (*roleEntry, error) {
	var idx roleIDIndex
	found, err := getJSON(ctx, s, roleIDPrefix+mac(key, domainRoleID, id), "the role_id index", &idx)
	if err != nil || !found {
		return nil, err
	}
	r, err := loadRole(ctx, s, idx.Name)
	if err != nil || r == nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(r.RoleID), []byte(id)) != 1 {
		return nil, nil
	}
	return r, nil
}

// pathRoleDelete deletes the role first, which ends every login with it
// at once, then its index entry and its secret IDs. A crash part way
// leaves records that no login reaches and that tidy/secret-id removes.
func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.roleLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := loadRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	if err := s.Delete(ctx, rolePrefix+name); err != nil {
		return nil, storageErr("deleting a role", err)
	}
	key, err := b.hmacKey(ctx, s)
	if err != nil {
		return nil, err
	}
	b.roleIDMu.Lock()
	err = s.Delete(ctx, roleIDPrefix+mac(key, domainRoleID, r.RoleID))
	b.roleIDMu.Unlock()
	if err != nil {
		return nil, storageErr("deleting the role_id index", err)
	}
	return nil, b.purgeSecretIDs(ctx, s, r.Instance)
}

func (b *backend) pathRoleIDRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"role_id": r.RoleID}}, nil
}

func (b *backend) pathRoleIDUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	id, err := checkRoleID(d.Get("role_id").(string))
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.roleLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errRoleNotFound(name)
	}
	if r.RoleID == id {
		return nil, nil
	}
	return nil, b.saveWithRoleID(ctx, s, r, r.RoleID, id)
}

func (b *backend) pathRoleLocalSecretIDs(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"local_secret_ids": r.LocalSecretIDs}}, nil
}

// cidrsWithin reports whether every block of inner lies inside some block
// of outer. An empty outer allows anything.
func cidrsWithin(inner, outer []string) bool {
	if len(outer) == 0 {
		return true
	}
	for _, in := range inner {
		p, err := netip.ParsePrefix(in)
		if err != nil {
			return false
		}
		ok := false
		for _, out := range outer {
			q, err := netip.ParsePrefix(out)
			if err == nil && q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
