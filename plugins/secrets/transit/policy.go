package transit

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// policyRecord is a named key as stored at policy/<name> (JSON): its
// settings and every version from max(1, min_available_version) to
// latest_version. It is the unit of persistence, backup and restore.
//
// A record reachable from a published keyring is never modified: writers
// clone it (clone shares the immutable keyEntry values) and publish a new
// keyring.
type policyRecord struct {
	Name string `json:"name"`
	Type string `json:"type"`

	Derived bool `json:"derived"`
	// KDF is "hkdf_sha256" for derived keys (the only one Ward implements).
	KDF                  string `json:"kdf,omitempty"`
	ConvergentEncryption bool   `json:"convergent_encryption"`
	ConvergentVersion    int    `json:"convergent_version,omitempty"`

	Exportable           bool `json:"exportable"`
	AllowPlaintextBackup bool `json:"allow_plaintext_backup"`
	DeletionAllowed      bool `json:"deletion_allowed"`

	LatestVersion        int `json:"latest_version"`
	MinAvailableVersion  int `json:"min_available_version"`
	MinDecryptionVersion int `json:"min_decryption_version"`
	MinEncryptionVersion int `json:"min_encryption_version"`

	// AutoRotatePeriod is in seconds; 0 disables automatic rotation.
	AutoRotatePeriod int64 `json:"auto_rotate_period"`
	// KeySize is the HMAC key length in bytes (type hmac only).
	KeySize int `json:"key_size,omitempty"`

	Keys map[string]*keyEntry `json:"keys"`

	BackupInfo  *versionInfo `json:"backup_info,omitempty"`
	RestoreInfo *versionInfo `json:"restore_info,omitempty"`
}

// versionInfo records when a backup was taken or restored, and the
// latest version at that moment.
type versionInfo struct {
	Time    time.Time `json:"time"`
	Version int       `json:"version"`
}

// keyEntry is one version of a key. It holds key material: it must never
// be logged or put in an error, and it has no String method on purpose.
type keyEntry struct {
	// Key is the symmetric key, the HMAC key of an hmac key, or the 64-byte
	// Ed25519 private key.
	Key []byte `json:"key,omitempty"`
	// HMACKey is the version's key for hmac/ (every type has one, as in
	// Vault; for type hmac it equals Key).
	HMACKey []byte `json:"hmac_key"`
	// PrivateKey is the PKCS #8 DER private key of an ECDSA or RSA key.
	PrivateKey []byte `json:"private_key,omitempty"`
	// PublicKey is what a key read shows: PEM (PKIX) for ECDSA and RSA,
	// base64 for Ed25519.
	PublicKey    string    `json:"public_key,omitempty"`
	CreationTime time.Time `json:"time"`
}

const (
	kdfHKDFSHA256 = "hkdf_sha256"
	// convergentVersion is the nonce derivation of convergent keys (see
	// crypto.go); Vault's current scheme is also numbered 3.
	convergentVersion = 3
)

// clone returns a copy of r whose maps may be changed; the key entries
// themselves are shared (they are immutable).
func (r *policyRecord) clone() *policyRecord {
	c := *r
	c.Keys = make(map[string]*keyEntry, len(r.Keys)+1)
	for k, v := range r.Keys {
		c.Keys[k] = v
	}
	if r.BackupInfo != nil {
		bi := *r.BackupInfo
		c.BackupInfo = &bi
	}
	if r.RestoreInfo != nil {
		ri := *r.RestoreInfo
		c.RestoreInfo = &ri
	}
	return &c
}

// newEntry generates version material of type t (keySize: HMAC key bytes).
func newEntry(t keyType, keySize int, now time.Time) (*keyEntry, error) {
	e := &keyEntry{CreationTime: now, HMACKey: randomBytes(32)}
	switch {
	case t.symmetric():
		e.Key = randomBytes(t.keyBytes())
	case t == typeHMAC:
		e.Key = randomBytes(keySize)
		e.HMACKey = e.Key
	case t == typeED25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		e.Key = priv
		e.PublicKey = base64.StdEncoding.EncodeToString(pub)
	case t.isECDSA():
		priv, err := ecdsa.GenerateKey(t.curve(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ecdsa key: %w", err)
		}
		if err := e.setPKCS8(priv); err != nil {
			return nil, err
		}
	case t.isRSA():
		priv, err := rsa.GenerateKey(rand.Reader, t.rsaBits())
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		if err := e.setPKCS8(priv); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported key type %v", t)
	}
	return e, nil
}

func (e *keyEntry) setPKCS8(priv crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	pub, err := pemPublicKey(priv.Public())
	if err != nil {
		return err
	}
	e.PrivateKey, e.PublicKey = der, pub
	return nil
}

func pemPublicKey(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// randomBytes returns n bytes from crypto/rand (which never fails: Go
// aborts the program if the system's generator is unusable).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// keyring is a parsed, immutable snapshot of a named key: its record and
// ready-to-use material per version. Handlers take a snapshot from the
// cache and use it without locks; writers publish a new one.
type keyring struct {
	rec      *policyRecord
	typ      keyType
	versions map[int]*keyVersion
}

// keyVersion is one parsed version. All fields are set before the keyring
// is published and never change; the private key of an ECDSA or RSA
// version is parsed on first use (parsing RSA keys is slow) and memoised.
type keyVersion struct {
	n     int
	entry *keyEntry
	// aead is set for symmetric keys that are not derived; a cipher.AEAD is
	// safe for concurrent use.
	aead cipher.AEAD
	// signer returns the parsed *ecdsa.PrivateKey or *rsa.PrivateKey.
	signer func() (crypto.Signer, error)
}

// newKeyring parses rec (which it takes ownership of), reusing the parsed
// versions of prev that rec still holds unchanged.
func newKeyring(rec *policyRecord, prev *keyring) (*keyring, error) {
	t, ok := parseKeyType(rec.Type)
	if !ok {
		return nil, fmt.Errorf("unknown key type %q", rec.Type)
	}
	kr := &keyring{rec: rec, typ: t, versions: make(map[int]*keyVersion, len(rec.Keys))}
	for k, e := range rec.Keys {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || e == nil {
			return nil, fmt.Errorf("invalid key version %q", k)
		}
		if prev != nil && prev.typ == t {
			if v := prev.versions[n]; v != nil && v.entry == e {
				kr.versions[n] = v
				continue
			}
		}
		v, err := parseVersion(t, rec, n, e)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", n, err)
		}
		kr.versions[n] = v
	}
	if err := kr.check(); err != nil {
		return nil, err
	}
	return kr, nil
}

// check verifies the record's invariants, so that a corrupt or crafted
// record (a restore) cannot make a handler index out of range.
func (kr *keyring) check() error {
	r := kr.rec
	first := max(1, r.MinAvailableVersion)
	switch {
	case r.LatestVersion < 1:
		return fmt.Errorf("latest_version must be at least 1")
	case r.MinAvailableVersion < 0 || r.MinAvailableVersion > r.LatestVersion:
		return fmt.Errorf("min_available_version out of range")
	case r.MinDecryptionVersion < first || r.MinDecryptionVersion > r.LatestVersion:
		return fmt.Errorf("min_decryption_version out of range")
	case r.MinEncryptionVersion < 0 || r.MinEncryptionVersion > r.LatestVersion:
		return fmt.Errorf("min_encryption_version out of range")
	case r.MinEncryptionVersion < r.MinAvailableVersion:
		return fmt.Errorf("min_encryption_version below min_available_version")
	case r.AutoRotatePeriod < 0:
		return fmt.Errorf("auto_rotate_period must not be negative")
	case r.ConvergentEncryption && !r.Derived:
		return fmt.Errorf("convergent encryption requires derivation")
	case r.Derived && !kr.typ.derivation():
		return fmt.Errorf("derivation is not supported for key type %v", kr.typ)
	case r.ConvergentEncryption && !kr.typ.symmetric():
		return fmt.Errorf("convergent encryption is not supported for key type %v", kr.typ)
	case r.Derived && r.KDF != kdfHKDFSHA256:
		return fmt.Errorf("unsupported key derivation function %q", r.KDF)
	case r.ConvergentEncryption && r.ConvergentVersion != convergentVersion:
		return fmt.Errorf("unsupported convergent encryption version %d", r.ConvergentVersion)
	case len(kr.versions) != r.LatestVersion-first+1:
		return fmt.Errorf("versions %d to %d must all be present", first, r.LatestVersion)
	}
	for n := first; n <= r.LatestVersion; n++ {
		if kr.versions[n] == nil {
			return fmt.Errorf("version %d is missing", n)
		}
	}
	return nil
}

// parseVersion checks one entry's material and prepares it for use.
func parseVersion(t keyType, rec *policyRecord, n int, e *keyEntry) (*keyVersion, error) {
	v := &keyVersion{n: n, entry: e}
	if len(e.HMACKey) < hmacMinKeySize {
		return nil, fmt.Errorf("hmac key too short")
	}
	switch {
	case t.symmetric():
		if len(e.Key) != t.keyBytes() {
			return nil, fmt.Errorf("key has the wrong length")
		}
		if !rec.Derived {
			aead, err := newAEAD(t, e.Key)
			if err != nil {
				return nil, err
			}
			v.aead = aead
		}
	case t == typeHMAC:
		if len(e.Key) < hmacMinKeySize || len(e.Key) > hmacMaxKeySize {
			return nil, fmt.Errorf("hmac key has the wrong length")
		}
	case t == typeED25519:
		if len(e.Key) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("ed25519 key has the wrong length")
		}
	case t.isECDSA() || t.isRSA():
		if len(e.PrivateKey) == 0 {
			return nil, fmt.Errorf("private key missing")
		}
		v.signer = sync.OnceValues(func() (crypto.Signer, error) { return parseSigner(t, e.PrivateKey) })
	}
	return v, nil
}

// parseSigner decodes a PKCS #8 private key of type t. Its errors never
// quote the key.
func parseSigner(t keyType, der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("stored private key does not parse")
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if t.isECDSA() && k.Curve == t.curve() {
			return k, nil
		}
	case *rsa.PrivateKey:
		if t.isRSA() && k.N.BitLen() == t.rsaBits() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("stored private key does not match the key type")
}

// newAEAD returns the AEAD of a symmetric key type.
func newAEAD(t keyType, key []byte) (cipher.AEAD, error) {
	switch t {
	case typeAES128GCM96, typeAES256GCM96:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("aes: invalid key")
		}
		return cipher.NewGCM(block)
	case typeChaCha20Poly1305:
		return chacha20poly1305.New(key)
	case typeXChaCha20Poly1305:
		return chacha20poly1305.NewX(key)
	}
	return nil, fmt.Errorf("key type %v is not an AEAD", t)
}

// latest returns the newest version.
func (kr *keyring) latest() *keyVersion { return kr.versions[kr.rec.LatestVersion] }

// rotationDue reports whether auto_rotate_period has passed since the
// newest version was created.
func (kr *keyring) rotationDue(now time.Time) bool {
	p := kr.rec.AutoRotatePeriod
	if p <= 0 {
		return false
	}
	return !now.Before(kr.latest().entry.CreationTime.Add(time.Duration(p) * time.Second))
}

// rotated returns a copy of rec with one more version.
func rotated(rec *policyRecord, t keyType, now time.Time) (*policyRecord, error) {
	e, err := newEntry(t, rec.KeySize, now)
	if err != nil {
		return nil, err
	}
	c := rec.clone()
	c.LatestVersion++
	c.Keys[strconv.Itoa(c.LatestVersion)] = e
	return c, nil
}

// encodeRecord is the stored form of a record.
func encodeRecord(rec *policyRecord) ([]byte, error) { return json.Marshal(rec) }

// decodeRecord parses a stored or backed-up record. Its error never quotes
// the input.
func decodeRecord(b []byte) (*policyRecord, error) {
	var rec policyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("record does not decode")
	}
	return &rec, nil
}
