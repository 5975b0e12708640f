package transit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

func (b *backend) pathListKeys() *framework.Path {
	return &framework.Path{
		Pattern: "keys/?",
		Fields: map[string]*framework.FieldSchema{
			"after": {Type: framework.TypeString, Description: "List names sorted after this one (need not exist)."},
			"limit": {Type: framework.TypeInt, Description: "Return at most this many names; 0 (default) returns all."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ListOperation: b.keysList,
		},
		HelpSynopsis: "List the named keys.",
	}
}

func (b *backend) pathKeys() *framework.Path {
	return &framework.Path{
		Pattern: "keys/" + framework.GenericNameRegex("name"),
		Fields: map[string]*framework.FieldSchema{
			"name": nameField("to create, read or delete"),
			"type": {Type: framework.TypeString, Default: "aes256-gcm96",
				Description: "Key type: " + strings.Join(keyTypeList(), ", ") + "."},
			"derived": {Type: framework.TypeBool,
				Description: "Derive a key per request from a context (symmetric types and ed25519)."},
			"convergent_encryption": {Type: framework.TypeBool,
				Description: "Deterministic encryption: the same plaintext and context give the same ciphertext. Requires derived."},
			"exportable": {Type: framework.TypeBool,
				Description: "Allow export/ of the key material. Cannot be unset."},
			"allow_plaintext_backup": {Type: framework.TypeBool,
				Description: "Allow backup/ of the key (with exportable). Cannot be unset."},
			"auto_rotate_period": {Type: framework.TypeDurationSecond,
				Description: "Rotate the key when its newest version is this old (at its next use); 0 disables, else at least 1h."},
			"key_size": {Type: framework.TypeInt,
				Description: fmt.Sprintf("HMAC keys only: key length in bytes, %d to %d (default %d).", hmacMinKeySize, hmacMaxKeySize, hmacDefaultKeySize)},
			"context": {Type: framework.TypeString,
				Description: "Read of a derived ed25519 key: base64 context whose derived public keys to show."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.keysWrite,
			logical.ReadOperation:   b.keysRead,
			logical.DeleteOperation: b.keysDelete,
		},
		HelpSynopsis: "Create, read or delete a named key.",
		HelpDescription: `A write creates the key (writing an existing key changes nothing and
warns). The type and derivation settings cannot change afterwards; see
keys/<name>/config for the settings that can. Deleting requires
deletion_allowed.`,
	}
}

func (b *backend) keysList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	names, err := s.List(ctx, policyPrefix)
	if err != nil {
		return nil, fmt.Errorf("transit: storage list: %w", err)
	}
	sort.Strings(names)
	if after := d.Get("after").(string); after != "" {
		i := sort.SearchStrings(names, after)
		if i < len(names) && names[i] == after {
			i++
		}
		names = names[i:]
	}
	if limit := d.Get("limit").(int); limit > 0 && limit < len(names) {
		names = names[:limit]
	}
	return logical.ListResponse(names), nil
}

// createParams are the settings of a new key.
type createParams struct {
	name                 string
	typ                  keyType
	derived, convergent  bool
	exportable           bool
	allowPlaintextBackup bool
	autoRotatePeriod     int64 // seconds
	keySize              int
}

// validate applies Vault's rules for a new key.
func (p *createParams) validate() error {
	if p.autoRotatePeriod != 0 && p.autoRotatePeriod < 3600 {
		return logical.InvalidRequest("auto rotate period must be 0 to disable or at least an hour")
	}
	if p.convergent && !p.derived {
		return logical.InvalidRequest("convergent encryption requires derivation to be enabled")
	}
	if p.keySize != 0 {
		if p.typ != typeHMAC {
			return logical.InvalidRequest("key_size is not valid for algorithm %v", p.typ)
		}
		if p.keySize < hmacMinKeySize || p.keySize > hmacMaxKeySize {
			return logical.InvalidRequest("invalid key_size %d", p.keySize)
		}
	}
	switch {
	case p.typ == typeED25519 && p.convergent:
		return logical.InvalidRequest("convergent encryption not supported for keys of type %v", p.typ)
	case !p.typ.derivation() && (p.derived || p.convergent):
		return logical.InvalidRequest("key derivation and convergent encryption not supported for keys of type %v", p.typ)
	}
	return nil
}

// createKey creates a key unless one of that name exists; created reports
// which. The caller validated p.
func (b *backend) createKey(ctx context.Context, s logical.Storage, p createParams) (kr *keyring, created bool, err error) {
	if kr, err := b.getKey(ctx, s, p.name); err != nil || kr != nil {
		return kr, false, err
	}
	// Generate before taking the lock: an RSA-4096 key takes a while, and
	// the lock's stripe is shared with other names.
	now := b.clock()
	if p.typ == typeHMAC && p.keySize == 0 {
		p.keySize = hmacDefaultKeySize
	}
	e, err := newEntry(p.typ, p.keySize, now)
	if err != nil {
		return nil, false, internalErr("transit: %v", err)
	}
	b.locks.Lock(p.name)
	defer b.locks.Unlock(p.name)
	if kr, err := b.getKey(ctx, s, p.name); err != nil || kr != nil {
		return kr, false, err // created meanwhile
	}
	rec := &policyRecord{
		Name: p.name, Type: p.typ.String(),
		Derived: p.derived, ConvergentEncryption: p.convergent,
		Exportable: p.exportable, AllowPlaintextBackup: p.allowPlaintextBackup,
		LatestVersion: 1, MinDecryptionVersion: 1,
		AutoRotatePeriod: p.autoRotatePeriod, KeySize: p.keySize,
		Keys: map[string]*keyEntry{"1": e},
	}
	if p.typ != typeHMAC {
		rec.KeySize = 0
	}
	if p.derived {
		rec.KDF = kdfHKDFSHA256
	}
	if p.convergent {
		rec.ConvergentVersion = convergentVersion
	}
	kr, err = b.putKeyLocked(ctx, s, rec, nil)
	if err != nil {
		return nil, false, err
	}
	return kr, true, nil
}

func (b *backend) keysWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	typName := d.Get("type").(string)
	t, ok := parseKeyType(typName)
	if !ok {
		return nil, logical.InvalidRequest("unknown key type %v", typName)
	}
	p := createParams{
		name: d.Get("name").(string), typ: t,
		derived: d.Get("derived").(bool), convergent: d.Get("convergent_encryption").(bool),
		exportable: d.Get("exportable").(bool), allowPlaintextBackup: d.Get("allow_plaintext_backup").(bool),
		autoRotatePeriod: int64(d.Get("auto_rotate_period").(int)), keySize: d.Get("key_size").(int),
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	kr, created, err := b.createKey(ctx, s, p)
	if err != nil {
		return nil, err
	}
	resp, err := formatKey(kr, nil)
	if err != nil {
		return nil, err
	}
	if !created {
		resp.AddWarning(fmt.Sprintf("key %s already existed", p.name))
	}
	return resp, nil
}

func (b *backend) keysRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	kr, err := b.getKey(ctx, s, d.Get("name").(string))
	if err != nil || kr == nil {
		return nil, err
	}
	var context []byte
	if c := d.Get("context").(string); c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return nil, logical.InvalidRequest("failed to base64-decode context")
		}
	}
	return formatKey(kr, context)
}

// formatKey is Vault's key read response (also answered by create,
// config, rotate and trim). keys maps each version from
// min_decryption_version to its creation time (Unix seconds) for
// symmetric and HMAC keys, or to {name, public_key, creation_time,
// certificate_chain} for asymmetric keys.
func formatKey(kr *keyring, context []byte) (*logical.Response, error) {
	r := kr.rec
	t := kr.typ
	data := map[string]any{
		"name":                   r.Name,
		"type":                   t.String(),
		"derived":                r.Derived,
		"deletion_allowed":       r.DeletionAllowed,
		"min_available_version":  r.MinAvailableVersion,
		"min_decryption_version": r.MinDecryptionVersion,
		"min_encryption_version": r.MinEncryptionVersion,
		"latest_version":         r.LatestVersion,
		"exportable":             r.Exportable,
		"allow_plaintext_backup": r.AllowPlaintextBackup,
		"supports_encryption":    t.encryption(),
		"supports_decryption":    t.encryption(),
		"supports_signing":       t.signing(),
		"supports_derivation":    t.derivation(),
		"auto_rotate_period":     r.AutoRotatePeriod,
		"imported_key":           false,
	}
	if r.KeySize != 0 {
		data["key_size"] = r.KeySize
	}
	if r.BackupInfo != nil {
		data["backup_info"] = map[string]any{"time": r.BackupInfo.Time.Format(time.RFC3339Nano), "version": r.BackupInfo.Version}
	}
	if r.RestoreInfo != nil {
		data["restore_info"] = map[string]any{"time": r.RestoreInfo.Time.Format(time.RFC3339Nano), "version": r.RestoreInfo.Version}
	}
	if r.Derived {
		data["kdf"] = r.KDF
		data["convergent_encryption"] = r.ConvergentEncryption
		if r.ConvergentEncryption {
			data["convergent_encryption_version"] = r.ConvergentVersion
		}
	}
	if t.symmetric() || t == typeHMAC {
		keys := make(map[string]int64, len(kr.versions))
		for n := r.MinDecryptionVersion; n <= r.LatestVersion; n++ {
			keys[strconv.Itoa(n)] = kr.versions[n].entry.CreationTime.Unix()
		}
		data["keys"] = keys
		return &logical.Response{Data: data}, nil
	}
	keys := make(map[string]any, len(kr.versions))
	for n := r.MinDecryptionVersion; n <= r.LatestVersion; n++ {
		v := kr.versions[n]
		pub := v.entry.PublicKey
		name := t.String()
		switch {
		case t.isECDSA():
			name = t.curve().Params().Name
		case t == typeED25519 && r.Derived:
			pub = ""
			if len(context) > 0 {
				k, err := kr.ed25519Key(v, context)
				if err != nil {
					return nil, err
				}
				pub = base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
			}
		}
		keys[strconv.Itoa(n)] = map[string]any{
			"name":              name,
			"public_key":        pub,
			"creation_time":     v.entry.CreationTime.Format(time.RFC3339Nano),
			"certificate_chain": "",
		}
	}
	data["keys"] = keys
	return &logical.Response{Data: data}, nil
}

func (b *backend) keysDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	name := d.Get("name").(string)
	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	kr, err := b.getKey(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if kr == nil {
		return nil, logical.InvalidRequest("error deleting policy %s: could not delete key; not found", name)
	}
	if !kr.rec.DeletionAllowed {
		return nil, logical.InvalidRequest("error deleting policy %s: deletion is not allowed for this policy", name)
	}
	err = s.Delete(ctx, policyPrefix+name)
	b.cache.Remove(name) // whether or not the delete landed
	if err != nil {
		return nil, fmt.Errorf("transit: storage delete: %w", err)
	}
	return nil, nil
}

func (b *backend) pathKeysConfig() *framework.Path {
	return &framework.Path{
		Pattern: "keys/" + framework.GenericNameRegex("name") + "/config",
		Fields: map[string]*framework.FieldSchema{
			"name": nameField("to configure"),
			"min_decryption_version": {Type: framework.TypeInt,
				Description: "Oldest version that may decrypt (or verify); older ciphertexts are refused."},
			"min_encryption_version": {Type: framework.TypeInt,
				Description: "Oldest version that may encrypt, sign or HMAC; 0 means the latest only by default."},
			"deletion_allowed": {Type: framework.TypeBool, Description: "Whether the key may be deleted."},
			"exportable":       {Type: framework.TypeBool, Description: "Allow export/ (cannot be unset)."},
			"allow_plaintext_backup": {Type: framework.TypeBool,
				Description: "Allow backup/ (cannot be unset)."},
			"auto_rotate_period": {Type: framework.TypeDurationSecond,
				Description: "Rotation period; 0 disables, else at least 1h. Unchanged when absent."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.keysConfigWrite,
		},
		HelpSynopsis: "Change a key's settings.",
	}
}

// mutateKey runs fn on a copy of the named key's record under the key's
// lock and persists the result; fn returns nil (no error) to change
// nothing. A missing key fails with notFound.
func (b *backend) mutateKey(ctx context.Context, s logical.Storage, name string, notFound error,
	fn func(kr *keyring, rec *policyRecord) (*policyRecord, error)) (*keyring, error) {
	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	kr, err := b.getKey(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if kr == nil {
		return nil, notFound
	}
	rec, err := fn(kr, kr.rec.clone())
	if err != nil || rec == nil {
		return kr, err
	}
	return b.putKeyLocked(ctx, s, rec, kr)
}

func (b *backend) keysConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	name := d.Get("name").(string)
	var warning string
	kr, err := b.mutateKey(ctx, s, name, logical.InvalidRequest("no existing key named %s could be found", name),
		func(kr *keyring, rec *policyRecord) (*policyRecord, error) {
			changed := false
			if v, ok := d.GetOk("min_decryption_version"); ok {
				n := v.(int)
				switch {
				case n < 0:
					return nil, logical.InvalidRequest("min decryption version cannot be negative")
				case n == 0:
					n = 1
					warning = "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
				}
				if n != rec.MinDecryptionVersion {
					if n > rec.LatestVersion {
						return nil, logical.InvalidRequest("cannot set min decryption version of %d, latest key version is %d", n, rec.LatestVersion)
					}
					rec.MinDecryptionVersion, changed = n, true
				}
			}
			if v, ok := d.GetOk("min_encryption_version"); ok {
				n := v.(int)
				if n < 0 {
					return nil, logical.InvalidRequest("min encryption version cannot be negative")
				}
				if n != rec.MinEncryptionVersion {
					if n > rec.LatestVersion {
						return nil, logical.InvalidRequest("cannot set min encryption version of %d, latest key version is %d", n, rec.LatestVersion)
					}
					rec.MinEncryptionVersion, changed = n, true
				}
			}
			if rec.MinEncryptionVersion > 0 && rec.MinEncryptionVersion < rec.MinDecryptionVersion {
				return nil, logical.InvalidRequest("cannot set min encryption/decryption values; min encryption version of %d must be greater than or equal to min decryption version of %d",
					rec.MinEncryptionVersion, rec.MinDecryptionVersion)
			}
			if v, ok := d.GetOk("deletion_allowed"); ok && v.(bool) != rec.DeletionAllowed {
				rec.DeletionAllowed, changed = v.(bool), true
			}
			if v, ok := d.GetOk("exportable"); ok && v.(bool) && !rec.Exportable {
				rec.Exportable, changed = true, true
			}
			if v, ok := d.GetOk("allow_plaintext_backup"); ok && v.(bool) && !rec.AllowPlaintextBackup {
				rec.AllowPlaintextBackup, changed = true, true
			}
			if v, ok := d.GetOk("auto_rotate_period"); ok {
				p := int64(v.(int))
				if p != 0 && p < 3600 {
					return nil, logical.InvalidRequest("auto rotate period must be 0 to disable or at least an hour")
				}
				if p != rec.AutoRotatePeriod {
					rec.AutoRotatePeriod, changed = p, true
				}
			}
			if !changed {
				return nil, nil
			}
			switch {
			case rec.MinAvailableVersion > rec.MinEncryptionVersion:
				return nil, logical.InvalidRequest("min encryption version should not be less than min available version")
			case rec.MinAvailableVersion > rec.MinDecryptionVersion:
				return nil, logical.InvalidRequest("min decryption version should not be less then min available version")
			}
			return rec, nil
		})
	if err != nil {
		return nil, err
	}
	resp, err := formatKey(kr, nil)
	if err == nil && warning != "" {
		resp.AddWarning(warning)
	}
	return resp, err
}

func (b *backend) pathRotate() *framework.Path {
	return &framework.Path{
		Pattern: "keys/" + framework.GenericNameRegex("name") + "/rotate",
		Fields:  map[string]*framework.FieldSchema{"name": nameField("to rotate")},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.rotateWrite,
		},
		HelpSynopsis: "Add a new version to a key; new output uses it, older versions still decrypt and verify.",
	}
}

func (b *backend) rotateWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	now := b.clock()
	kr, err := b.mutateKey(ctx, s, d.Get("name").(string), logical.InvalidRequest("key not found"),
		func(kr *keyring, rec *policyRecord) (*policyRecord, error) {
			next, err := rotated(rec, kr.typ, now)
			if err != nil {
				return nil, internalErr("transit: %v", err)
			}
			return next, nil
		})
	if err != nil {
		return nil, err
	}
	return formatKey(kr, nil)
}

func (b *backend) pathTrim() *framework.Path {
	return &framework.Path{
		Pattern: "keys/" + framework.GenericNameRegex("name") + "/trim",
		Fields: map[string]*framework.FieldSchema{
			"name": nameField("to trim"),
			"min_available_version": {Type: framework.TypeInt,
				Description: "Delete every version below this one, for good. At most the lesser of min_decryption_version and min_encryption_version."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.trimWrite,
		},
		HelpSynopsis: "Permanently delete old versions of a key.",
	}
}

func (b *backend) trimWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	raw, ok := d.GetOk("min_available_version")
	if !ok {
		return nil, logical.InvalidRequest("missing min_available_version")
	}
	minAvail := raw.(int)
	kr, err := b.mutateKey(ctx, s, d.Get("name").(string), logical.InvalidRequest("invalid key name"),
		func(kr *keyring, rec *policyRecord) (*policyRecord, error) {
			switch {
			case minAvail < rec.MinAvailableVersion:
				return nil, logical.InvalidRequest("minimum available version cannot be decremented")
			case rec.MinEncryptionVersion == 0:
				return nil, logical.InvalidRequest("minimum available version cannot be set when minimum encryption version is not set")
			case rec.MinDecryptionVersion == 0:
				return nil, logical.InvalidRequest("minimum available version cannot be set when minimum decryption version is not set")
			case minAvail > rec.MinEncryptionVersion:
				return nil, logical.InvalidRequest("minimum available version cannot be greater than minmum encryption version")
			case minAvail > rec.MinDecryptionVersion:
				return nil, logical.InvalidRequest("minimum available version cannot be greater than minimum decryption version")
			case minAvail <= 0:
				return nil, logical.InvalidRequest("minimum available version should be positive")
			case minAvail == rec.MinAvailableVersion:
				return nil, nil
			}
			rec.MinAvailableVersion = minAvail
			for n := 1; n < minAvail; n++ {
				delete(rec.Keys, strconv.Itoa(n))
			}
			return rec, nil
		})
	if err != nil {
		return nil, err
	}
	return formatKey(kr, nil)
}

// mountConfig is the mount-wide config/keys record.
type mountConfig struct {
	DisableUpsert bool `json:"disable_upsert"`
}

func (b *backend) pathConfigKeys() *framework.Path {
	return &framework.Path{
		Pattern: "config/keys",
		Fields: map[string]*framework.FieldSchema{
			"disable_upsert": {Type: framework.TypeBool,
				Description: "If true, encrypt/ never creates a missing key."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.configKeysRead,
			logical.UpdateOperation: b.configKeysWrite,
		},
		HelpSynopsis: "Mount-wide key settings.",
	}
}

func (b *backend) readConfigKeys(ctx context.Context, s logical.Storage) (mountConfig, error) {
	var c mountConfig
	e, err := s.Get(ctx, configKeysKey)
	if err != nil {
		return c, fmt.Errorf("transit: storage get: %w", err)
	}
	if e != nil {
		if err := e.DecodeJSON(&c); err != nil {
			return c, internalErr("transit: stored config/keys is corrupt")
		}
	}
	return c, nil
}

func (b *backend) configKeysRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c, err := b.readConfigKeys(ctx, s)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"disable_upsert": c.DisableUpsert}}, nil
}

func (b *backend) configKeysWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c := mountConfig{DisableUpsert: d.Get("disable_upsert").(bool)}
	e, err := logical.StorageEntryJSON(configKeysKey, c)
	if err != nil {
		return nil, internalErr("transit: encode config/keys")
	}
	if err := s.Put(ctx, e); err != nil {
		return nil, fmt.Errorf("transit: storage put: %w", err)
	}
	return &logical.Response{Data: map[string]any{"disable_upsert": c.DisableUpsert}}, nil
}
