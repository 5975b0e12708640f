package transit

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"regexp"
	"strconv"
	"strings"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Export types (Vault's).
const (
	exportEncryptionKey = "encryption-key"
	exportSigningKey    = "signing-key"
	exportHMACKey       = "hmac-key"
	exportPublicKey     = "public-key"
)

func (b *backend) pathExport() *framework.Path {
	return &framework.Path{
		Pattern: "export/" + framework.GenericNameRegex("type") + "/" + framework.GenericNameRegex("name") + `(/(?P<version>[^/]+))?`,
		Fields: map[string]*framework.FieldSchema{
			"type": {Type: framework.TypeString,
				Description: "encryption-key, signing-key, hmac-key or public-key."},
			"name":    nameField("to export"),
			"version": {Type: framework.TypeString, Description: `Version to export, "latest", or empty for all.`},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation: b.exportRead,
		},
		HelpSynopsis: "Export key material of an exportable key (public keys of any asymmetric key).",
		HelpDescription: `Symmetric and HMAC keys and Ed25519 private keys are base64; ECDSA private
keys PEM (SEC 1, "EC PRIVATE KEY"); RSA private keys PEM (PKCS #1); public
keys PEM (PKIX) or, for Ed25519, base64.`,
	}
}

func (b *backend) exportRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	exportType := d.Get("type").(string)
	switch exportType {
	case exportEncryptionKey, exportSigningKey, exportHMACKey, exportPublicKey:
	default:
		return nil, logical.InvalidRequest("invalid export type: %s", exportType)
	}
	kr, err := b.getKey(ctx, s, d.Get("name").(string))
	if err != nil || kr == nil {
		return nil, err
	}
	r := kr.rec
	if !r.Exportable && exportType != exportPublicKey {
		return nil, logical.InvalidRequest("private key material is not exportable")
	}
	switch {
	case exportType == exportEncryptionKey && !kr.typ.encryption():
		return nil, logical.InvalidRequest("encryption not supported for the key")
	case exportType == exportSigningKey && !kr.typ.signing():
		return nil, logical.InvalidRequest("signing not supported for the key")
	case exportType == exportPublicKey && !kr.typ.signing():
		return nil, logical.InvalidRequest("public key export not supported for the key")
	}
	first, last := r.MinDecryptionVersion, r.LatestVersion
	if v := d.Get("version").(string); v != "" {
		n := r.LatestVersion
		if v != "latest" {
			if n, err = strconv.Atoi(strings.TrimPrefix(v, "v")); err != nil {
				return nil, logical.InvalidRequest("invalid key version")
			}
		}
		if n < r.MinDecryptionVersion {
			return nil, logical.InvalidRequest("version for export is below minimum decryption version")
		}
		if n > r.LatestVersion {
			return nil, logical.InvalidRequest("version does not exist or cannot be found")
		}
		first, last = n, n
	}
	keys := make(map[string]string, last-first+1)
	for n := first; n <= last; n++ {
		k, err := exportKey(kr, kr.versions[n], exportType)
		if err != nil {
			return nil, err
		}
		keys[strconv.Itoa(n)] = k
	}
	return &logical.Response{Data: map[string]any{"name": r.Name, "type": kr.typ.String(), "keys": keys}}, nil
}

// exportKey encodes one version's material as Vault's default format does.
func exportKey(kr *keyring, v *keyVersion, exportType string) (string, error) {
	e := v.entry
	switch exportType {
	case exportHMACKey:
		return base64.StdEncoding.EncodeToString(e.HMACKey), nil
	case exportPublicKey:
		if kr.typ == typeED25519 && kr.rec.Derived {
			return "", logical.InvalidRequest("the public keys of a derived ed25519 key depend on the context: read keys/<name> with a context")
		}
		return e.PublicKey, nil
	}
	switch {
	case kr.typ.symmetric():
		return base64.StdEncoding.EncodeToString(e.Key), nil
	case kr.typ == typeED25519:
		return base64.StdEncoding.EncodeToString(e.Key), nil
	}
	s, err := v.signer()
	if err != nil {
		return "", internalErr("%v", err)
	}
	switch k := s.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return "", internalErr("transit: encode ecdsa key")
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), nil
	case *rsa.PrivateKey:
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})), nil
	}
	return "", internalErr("transit: unexpected private key type")
}

// backupFormat marks Ward's backup documents: base64 of
// {"format": backupFormat, "policy": <the key's record>}. Vault's backups
// ({"policy": ..., "archived_keys": ...} in Vault's record layout) are a
// different format; neither engine restores the other's.
const backupFormat = "ward-transit-backup-v1"

type backupDoc struct {
	Format string          `json:"format"`
	Policy json.RawMessage `json:"policy"`
}

func (b *backend) pathBackup() *framework.Path {
	return &framework.Path{
		Pattern: "backup/" + framework.GenericNameRegex("name"),
		Fields:  map[string]*framework.FieldSchema{"name": nameField("to back up")},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation: b.backupRead,
		},
		HelpSynopsis: "Back up a key, material included (exportable and allow_plaintext_backup keys only).",
	}
}

func (b *backend) backupRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	kr, err := b.getKey(ctx, s, d.Get("name").(string))
	if err != nil || kr == nil {
		return nil, err
	}
	if !kr.rec.Exportable {
		return nil, logical.InvalidRequest("exporting is disallowed on the policy")
	}
	if !kr.rec.AllowPlaintextBackup {
		return nil, logical.InvalidRequest("plaintext backup is disallowed on the policy")
	}
	// Vault also records backup_info on the live key. A backup is a read,
	// and reads may run beside a write of the same key in another WASM
	// instance, so Ward records it only in the backup (the restored key
	// shows it) and never writes from a read.
	rec := kr.rec.clone()
	rec.BackupInfo = &versionInfo{Time: b.clock(), Version: rec.LatestVersion}
	pol, err := encodeRecord(rec)
	if err != nil {
		return nil, internalErr("transit: encode backup")
	}
	doc, err := json.Marshal(backupDoc{Format: backupFormat, Policy: pol})
	if err != nil {
		return nil, internalErr("transit: encode backup")
	}
	return &logical.Response{Data: map[string]any{"backup": base64.StdEncoding.EncodeToString(doc)}}, nil
}

func (b *backend) pathRestore() *framework.Path {
	return &framework.Path{
		Pattern: "restore(/" + framework.GenericNameRegex("name") + ")?",
		Fields: map[string]*framework.FieldSchema{
			"backup": {Type: framework.TypeString, Description: "Output of backup/."},
			"name":   {Type: framework.TypeString, Description: "Name of the restored key (URL); default: the backed-up name."},
			"force":  {Type: framework.TypeBool, Description: "Replace an existing key of that name."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.restoreWrite,
		},
		HelpSynopsis: "Restore a key from a backup.",
	}
}

var keyNameRE = regexp.MustCompile("^" + framework.GenericNameRegex("name") + "$")

// errInvalidBackup is returned for a backup that does not decode or holds
// an inconsistent key; it never quotes the backup.
var errInvalidBackup = logical.InvalidRequest("invalid backup: not a Ward transit backup, or corrupt")

func (b *backend) restoreWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	raw := d.Get("backup").(string)
	if raw == "" {
		return nil, logical.InvalidRequest("'backup' must be supplied")
	}
	blob, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errInvalidBackup
	}
	var doc backupDoc
	if err := json.Unmarshal(blob, &doc); err != nil || doc.Format != backupFormat || len(doc.Policy) == 0 {
		return nil, errInvalidBackup
	}
	rec, err := decodeRecord(doc.Policy)
	if err != nil {
		return nil, errInvalidBackup
	}
	name := d.Get("name").(string)
	if name == "" {
		name = rec.Name
	}
	if !keyNameRE.MatchString(name) {
		return nil, logical.InvalidRequest("invalid key name in backup or request")
	}
	if !rec.AllowPlaintextBackup || !rec.Exportable {
		return nil, logical.InvalidRequest("the backed-up key does not allow plaintext backup")
	}
	rec.Name = name
	rec.RestoreInfo = &versionInfo{Time: b.clock(), Version: rec.LatestVersion}
	kr, err := newKeyring(rec, nil)
	if err != nil {
		return nil, logical.InvalidRequest("invalid backup: %v", err)
	}
	for _, v := range kr.versions { // parse what is otherwise parsed on first use
		if v.signer != nil {
			if _, err := v.signer(); err != nil {
				return nil, logical.InvalidRequest("invalid backup: version %d: %v", v.n, err)
			}
		}
	}
	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	cur, err := b.getKey(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cur != nil && !d.Get("force").(bool) {
		return nil, logical.InvalidRequest("key %q already exists", name)
	}
	if _, err := b.putKeyLocked(ctx, s, rec, kr); err != nil {
		return nil, err
	}
	return nil, nil
}
