package approle

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// secretIDEntry is a secret ID as stored at
// secret_id/<role instance>/<HMAC of the secret ID>. The secret ID itself
// is never stored.
type secretIDEntry struct {
	// RoleName lets tidy find the role of an entry.
	RoleName string `json:"role_name"`
	Accessor string `json:"secret_id_accessor"`
	// NumUses is the number of logins left; 0 is unlimited. An entry whose
	// last use is spent is deleted, so a stored entry never goes from a
	// positive count to 0.
	NumUses         int               `json:"secret_id_num_uses"`
	TTL             time.Duration     `json:"secret_id_ttl"`
	CreationTime    time.Time         `json:"creation_time"`
	LastUpdatedTime time.Time         `json:"last_updated_time"`
	ExpirationTime  time.Time         `json:"expiration_time"` // zero: never
	Metadata        map[string]string `json:"metadata"`
	CIDRList        []string          `json:"cidr_list"`
	TokenBoundCIDRs []string          `json:"token_bound_cidrs"`
}

// expiredAt reports whether the entry's TTL has run out at now.
func (e *secretIDEntry) expiredAt(now time.Time) bool {
	return !e.ExpirationTime.IsZero() && !now.Before(e.ExpirationTime)
}

// accessorEntry is stored at accessor/<role instance>/<accessor>.
type accessorEntry struct {
	// SecretIDHMAC names the secret ID's entry in the same instance folder.
	SecretIDHMAC string `json:"secret_id_hmac"`
}

func secretKey(inst, hmacHex string) string    { return secretIDPrefix + inst + "/" + hmacHex }
func accessorKey(inst, accessor string) string { return accessorPrefix + inst + "/" + accessor }

// deleteOps removes a secret ID entry before its accessor, so the secret ID
// stops working first if the writes are not atomic.
func deleteOps(inst, hmacHex, accessor string) []logical.StorageOp {
	ops := []logical.StorageOp{{Key: secretKey(inst, hmacHex), Delete: true}}
	if accessor != "" {
		ops = append(ops, logical.StorageOp{Key: accessorKey(inst, accessor), Delete: true})
	}
	return ops
}

func (b *backend) secretIDPaths() []*framework.Path {
	name := "role/" + framework.GenericNameRegex("role_name")
	genFields := func(custom bool) map[string]*framework.FieldSchema {
		f := map[string]*framework.FieldSchema{
			"role_name": roleNameField(),
			"metadata": {Type: framework.TypeString,
				Description: "JSON object of string values, added to the metadata of tokens issued with this secret ID."},
			"cidr_list": {Type: framework.TypeCommaStringSlice,
				Description: "CIDR blocks allowed to log in with this secret ID; within the role's secret_id_bound_cidrs."},
			"token_bound_cidrs": {Type: framework.TypeCommaStringSlice,
				Description: "CIDR blocks that may use tokens issued with this secret ID; within the role's token_bound_cidrs."},
			"ttl": {Type: framework.TypeDurationSecond,
				Description: "Lifetime of the secret ID; at most the role's secret_id_ttl when that is set."},
			"num_uses": {Type: framework.TypeInt,
				Description: "Number of logins allowed; at most the role's secret_id_num_uses when that is set."},
		}
		if custom {
			f["secret_id"] = &framework.FieldSchema{Type: framework.TypeString, Required: true,
				Description: "The secret ID to register."}
		}
		return f
	}
	secretField := map[string]*framework.FieldSchema{
		"role_name": roleNameField(),
		"secret_id": {Type: framework.TypeString, Description: "The secret ID."},
	}
	accessorField := map[string]*framework.FieldSchema{
		"role_name":          roleNameField(),
		"secret_id_accessor": {Type: framework.TypeString, Description: "Accessor of the secret ID."},
	}
	return []*framework.Path{
		{
			Pattern: name + "/secret-id/?",
			Fields:  genFields(false),
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: b.pathSecretIDGenerate,
				logical.ListOperation:   b.pathSecretIDList,
			},
			HelpSynopsis: "Generates a secret ID for the role, or lists the accessors of its secret IDs.",
		},
		{
			Pattern:      name + "/custom-secret-id",
			Fields:       genFields(true),
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathCustomSecretID},
			HelpSynopsis: "Registers a secret ID chosen by the caller.",
		},
		{
			Pattern:      name + "/secret-id/lookup",
			Fields:       secretField,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathSecretIDLookup},
			HelpSynopsis: "Reads the properties of a secret ID (never the secret ID itself).",
		},
		{
			Pattern: name + "/secret-id/destroy",
			Fields:  secretField,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: b.pathSecretIDDestroy,
				logical.DeleteOperation: b.pathSecretIDDestroy,
			},
			HelpSynopsis: "Destroys a secret ID.",
		},
		{
			Pattern:      name + "/secret-id-accessor/lookup",
			Fields:       accessorField,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathAccessorLookup},
			HelpSynopsis: "Reads the properties of a secret ID given its accessor.",
		},
		{
			Pattern: name + "/secret-id-accessor/destroy",
			Fields:  accessorField,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: b.pathAccessorDestroy,
				logical.DeleteOperation: b.pathAccessorDestroy,
			},
			HelpSynopsis: "Destroys a secret ID given its accessor.",
		},
	}
}

func (b *backend) pathSecretIDGenerate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.createSecretID(ctx, req, d, "")
}

func (b *backend) pathCustomSecretID(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	secret := d.Get("secret_id").(string)
	if strings.TrimSpace(secret) == "" {
		return nil, logical.InvalidRequest("secret_id must not be empty")
	}
	if len(secret) > maxCredentialSz {
		return nil, logical.InvalidRequest("secret_id must not be longer than %d bytes", maxCredentialSz)
	}
	return b.createSecretID(ctx, req, d, secret)
}

// createSecretID registers secret (a new random one when "") for the
// request's role.
func (b *backend) createSecretID(ctx context.Context, req *logical.Request, d *framework.FieldData, secret string) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	// The role's read lock keeps a concurrent delete from missing the new
	// entry while it purges the role's secret IDs.
	lock := b.roleLocks.forKey(name)
	lock.RLock()
	defer lock.RUnlock()
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errRoleNotFound(name)
	}
	if !r.BindSecretID {
		return nil, logical.InvalidRequest("bind_secret_id is not set on the role")
	}
	now := b.clock()
	e := &secretIDEntry{RoleName: name, CreationTime: now, LastUpdatedTime: now,
		NumUses: r.SecretIDNumUses, TTL: r.SecretIDTTL}
	if err := e.applyFields(d, r); err != nil {
		return nil, err
	}
	if e.TTL > 0 {
		e.ExpirationTime = now.Add(e.TTL)
	}
	custom := secret != ""
	if !custom {
		if secret, err = newUUID(); err != nil {
			return nil, err
		}
	}
	if e.Accessor, err = newUUID(); err != nil {
		return nil, err
	}
	key, err := b.hmacKey(ctx, s)
	if err != nil {
		return nil, err
	}
	h := mac(key, domainSecretID, secret)
	sk := secretKey(r.Instance, h)
	slock := b.secretLocks.forKey(sk)
	slock.Lock()
	defer slock.Unlock()
	if custom {
		existing, err := s.Get(ctx, sk)
		if err != nil {
			return nil, storageErr("reading a secret ID", err)
		}
		if existing != nil {
			return nil, logical.InvalidRequest("secret ID is already registered")
		}
	}
	acc, err := json.Marshal(accessorEntry{SecretIDHMAC: h})
	if err != nil {
		return nil, err
	}
	val, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	// The accessor goes first: without batches a crash leaves at worst an
	// accessor with no secret ID, which tidy removes.
	if err := apply(ctx, s, "writing a secret ID", []logical.StorageOp{
		{Key: accessorKey(r.Instance, e.Accessor), Value: acc},
		{Key: sk, Value: val},
	}); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"secret_id":          secret,
		"secret_id_accessor": e.Accessor,
		"secret_id_ttl":      int64(e.TTL / time.Second),
		"secret_id_num_uses": e.NumUses,
	}}, nil
}

// applyFields sets the request's metadata, CIDR lists, TTL and uses on e,
// checking them against the role's limits.
func (e *secretIDEntry) applyFields(d *framework.FieldData, r *roleEntry) error {
	if raw := d.Get("metadata").(string); strings.TrimSpace(raw) != "" {
		var md map[string]string
		if err := json.Unmarshal([]byte(raw), &md); err != nil {
			return logical.InvalidRequest("metadata must be a JSON object of string values")
		}
		e.Metadata = md
	}
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	cidrs, err := framework.ParseCIDRs(d.Get("cidr_list").([]string))
	if err != nil {
		return logical.InvalidRequest("cidr_list: %v", err)
	}
	if !cidrsWithin(cidrs, r.SecretIDBoundCIDRs) {
		return logical.InvalidRequest("cidr_list must lie within the role's secret_id_bound_cidrs")
	}
	e.CIDRList = cidrs
	tcidrs, err := framework.ParseCIDRs(d.Get("token_bound_cidrs").([]string))
	if err != nil {
		return logical.InvalidRequest("token_bound_cidrs: %v", err)
	}
	if !cidrsWithin(tcidrs, r.BoundCIDRs) {
		return logical.InvalidRequest("token_bound_cidrs must lie within the role's token_bound_cidrs")
	}
	e.TokenBoundCIDRs = tcidrs
	if v, ok := d.GetOk("num_uses"); ok {
		n := v.(int)
		switch {
		case n < 0:
			return logical.InvalidRequest("num_uses cannot be negative")
		case r.SecretIDNumUses > 0 && (n == 0 || n > r.SecretIDNumUses):
			return logical.InvalidRequest("num_uses cannot be higher than the role's secret_id_num_uses (%d)", r.SecretIDNumUses)
		}
		e.NumUses = n
	}
	if v, ok := d.GetOk("ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if r.SecretIDTTL > 0 && (ttl == 0 || ttl > r.SecretIDTTL) {
			return logical.InvalidRequest("ttl cannot be longer than the role's secret_id_ttl (%d seconds)",
				int64(r.SecretIDTTL/time.Second))
		}
		e.TTL = ttl
	}
	return nil
}

// lookupData is the Vault-shaped description of a secret ID.
func lookupData(e *secretIDEntry) map[string]any {
	md := e.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return map[string]any{
		"secret_id_accessor": e.Accessor,
		"secret_id_num_uses": e.NumUses,
		"secret_id_ttl":      int64(e.TTL / time.Second),
		"creation_time":      formatTime(e.CreationTime),
		"last_updated_time":  formatTime(e.LastUpdatedTime),
		"expiration_time":    formatTime(e.ExpirationTime),
		"metadata":           md,
		"cidr_list":          nonNil(e.CIDRList),
		"token_bound_cidrs":  nonNil(e.TokenBoundCIDRs),
	}
}

// formatTime renders t as Vault does (a zero time is "0001-01-01T00:00:00Z").
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (b *backend) pathSecretIDList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, r, err := b.mustRole(ctx, req, d)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(ctx, accessorPrefix+r.Instance+"/")
	if err != nil {
		return nil, storageErr("listing secret ID accessors", err)
	}
	return logical.ListResponse(keys), nil
}

// secretIDFor returns the storage key (and HMAC) of the request's
// secret_id within role r.
func (b *backend) secretIDFor(ctx context.Context, s logical.Storage, r *roleEntry, d *framework.FieldData) (key, h string, err error) {
	secret := d.Get("secret_id").(string)
	if secret == "" {
		return "", "", logical.InvalidRequest("missing secret_id")
	}
	mk, err := b.hmacKey(ctx, s)
	if err != nil {
		return "", "", err
	}
	h = mac(mk, domainSecretID, secret)
	return secretKey(r.Instance, h), h, nil
}

// pathSecretIDLookup answers nothing (204) for an unknown secret ID, as
// Vault does.
func (b *backend) pathSecretIDLookup(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, r, err := b.mustRole(ctx, req, d)
	if err != nil {
		return nil, err
	}
	sk, _, err := b.secretIDFor(ctx, s, r, d)
	if err != nil {
		return nil, err
	}
	var e secretIDEntry
	found, err := getJSON(ctx, s, sk, "a secret ID", &e)
	if err != nil || !found {
		return nil, err
	}
	return &logical.Response{Data: lookupData(&e)}, nil
}

func (b *backend) pathSecretIDDestroy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, r, err := b.mustRole(ctx, req, d)
	if err != nil {
		return nil, err
	}
	sk, h, err := b.secretIDFor(ctx, s, r, d)
	if err != nil {
		return nil, err
	}
	return nil, b.destroySecretID(ctx, s, r.Instance, sk, h, "")
}

// destroySecretID deletes the secret ID at sk and its accessor. accessor,
// when known, is deleted even if the secret ID entry is already gone.
func (b *backend) destroySecretID(ctx context.Context, s logical.Storage, inst, sk, h, accessor string) error {
	lock := b.secretLocks.forKey(sk)
	lock.Lock()
	defer lock.Unlock()
	var e secretIDEntry
	found, err := getJSON(ctx, s, sk, "a secret ID", &e)
	if err != nil {
		return err
	}
	if found {
		accessor = e.Accessor
	} else if accessor == "" {
		return nil
	}
	return apply(ctx, s, "deleting a secret ID", deleteOps(inst, h, accessor))
}

// accessorFor loads the request's accessor entry in role r.
func (b *backend) accessorFor(ctx context.Context, s logical.Storage, r *roleEntry, d *framework.FieldData) (string, *accessorEntry, error) {
	acc := d.Get("secret_id_accessor").(string)
	if acc == "" {
		return "", nil, logical.InvalidRequest("missing secret_id_accessor")
	}
	// Accessors are UUIDs we issued; anything else cannot name an entry
	// and must not reach a storage key.
	if _, err := uuid.Parse(acc); err != nil || len(acc) != 36 {
		return "", nil, errAccessorNotFound
	}
	var a accessorEntry
	found, err := getJSON(ctx, s, accessorKey(r.Instance, acc), "a secret ID accessor", &a)
	if err != nil {
		return "", nil, err
	}
	if !found {
		return "", nil, errAccessorNotFound
	}
	return acc, &a, nil
}

var errAccessorNotFound = &logical.Error{Code: logical.CodeNotFound, Message: "failed to find accessor entry for secret_id_accessor"}

func (b *backend) pathAccessorLookup(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, r, err := b.mustRole(ctx, req, d)
	if err != nil {
		return nil, err
	}
	_, a, err := b.accessorFor(ctx, s, r, d)
	if err != nil {
		return nil, err
	}
	var e secretIDEntry
	found, err := getJSON(ctx, s, secretKey(r.Instance, a.SecretIDHMAC), "a secret ID", &e)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errAccessorNotFound
	}
	return &logical.Response{Data: lookupData(&e)}, nil
}

func (b *backend) pathAccessorDestroy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, r, err := b.mustRole(ctx, req, d)
	if err != nil {
		return nil, err
	}
	acc, a, err := b.accessorFor(ctx, s, r, d)
	if err != nil {
		return nil, err
	}
	return nil, b.destroySecretID(ctx, s, r.Instance, secretKey(r.Instance, a.SecretIDHMAC), a.SecretIDHMAC, acc)
}

// purgeSecretIDs deletes every secret ID and accessor of a role instance.
func (b *backend) purgeSecretIDs(ctx context.Context, s logical.Storage, inst string) error {
	hs, err := s.List(ctx, secretIDPrefix+inst+"/")
	if err != nil {
		return storageErr("listing secret IDs", err)
	}
	for _, h := range hs {
		if strings.HasSuffix(h, "/") {
			continue
		}
		if err := b.destroySecretID(ctx, s, inst, secretKey(inst, h), h, ""); err != nil {
			return err
		}
	}
	accs, err := s.List(ctx, accessorPrefix+inst+"/")
	if err != nil {
		return storageErr("listing secret ID accessors", err)
	}
	for _, acc := range accs {
		if err := s.Delete(ctx, accessorKey(inst, acc)); err != nil {
			return storageErr("deleting a secret ID accessor", err)
		}
	}
	return nil
}
