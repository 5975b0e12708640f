package seal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Mechanisms of the PKCS#11 seal.
const (
	// MechanismAESGCM: an AES-256 secret key on the token encrypts with
	// CKM_AES_GCM (the default).
	MechanismAESGCM = "aes-gcm"
	// MechanismRSAOAEP: an RSA key pair on the token; the public key
	// encrypts with CKM_RSA_PKCS_OAEP, the private key decrypts.
	MechanismRSAOAEP = "rsa-oaep"
)

// PKCS11Config configures the PKCS#11 seal: the `seal "pkcs11"` stanza.
type PKCS11Config struct {
	// Lib is the path of the PKCS#11 module (a shared library).
	Lib string
	// Slot selects the token by slot number; TokenLabel by label. Exactly
	// one of them is set.
	Slot       *uint
	TokenLabel string
	// PIN is the token's user PIN. It is never logged, printed or
	// encoded as JSON.
	PIN string `json:"-"`
	// KeyLabel is the CKA_LABEL of the key (of both halves of an RSA
	// pair).
	KeyLabel string
	// Mechanism is MechanismAESGCM (default) or MechanismRSAOAEP. Vault's
	// names are accepted too: "CKM_AES_GCM", "CKM_RSA_PKCS_OAEP" and their
	// hexadecimal values "0x1087", "0x0009".
	Mechanism string
	// RSAOAEPHash is the OAEP hash: sha1, sha224, sha256 (default), sha384
	// or sha512. SoftHSM2 2.6 supports only sha1.
	RSAOAEPHash string
	// RSABits is the size of a generated RSA key; default 3072.
	RSABits int
	// GenerateKey lets initialisation (and migration to this seal) create
	// the key when the token has none with KeyLabel.
	GenerateKey bool
	// MaxSessions bounds the pooled sessions; default 8.
	MaxSessions int
}

// Format prints the configuration without the PIN, for every verb.
func (c PKCS11Config) Format(f fmt.State, verb rune) {
	slot := "-"
	if c.Slot != nil {
		slot = fmt.Sprint(*c.Slot)
	}
	_, _ = io.WriteString(f, fmt.Sprintf("seal.PKCS11Config{lib=%q slot=%s token_label=%q key_label=%q mechanism=%q generate_key=%t pin=redacted}",
		c.Lib, slot, c.TokenLabel, c.KeyLabel, c.Mechanism, c.GenerateKey))
}

// ErrInvalidPKCS11Config is returned by PKCS11Config.Validate.
var ErrInvalidPKCS11Config = errors.New("pkcs11 seal: invalid configuration")

// Validate checks the configuration and fills in defaults.
func (c *PKCS11Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPKCS11Config, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Lib == "":
		return bad("lib (the PKCS#11 module path) is required")
	case c.Slot == nil && c.TokenLabel == "":
		return bad("slot or token_label is required")
	case c.Slot != nil && c.TokenLabel != "":
		return bad("set only one of slot and token_label")
	case c.PIN == "":
		return bad("pin is required (or the WARD_HSM_PIN environment variable)")
	case c.KeyLabel == "":
		return bad("key_label is required")
	}
	switch strings.ToLower(c.Mechanism) {
	case "", MechanismAESGCM, "ckm_aes_gcm", "0x1087", "4231":
		c.Mechanism = MechanismAESGCM
	case MechanismRSAOAEP, "ckm_rsa_pkcs_oaep", "0x0009", "0x9", "9":
		c.Mechanism = MechanismRSAOAEP
	default:
		return bad("mechanism %q: use %q or %q", c.Mechanism, MechanismAESGCM, MechanismRSAOAEP)
	}
	switch strings.ToLower(c.RSAOAEPHash) {
	case "":
		c.RSAOAEPHash = "sha256"
	case "sha1", "sha224", "sha256", "sha384", "sha512":
		c.RSAOAEPHash = strings.ToLower(c.RSAOAEPHash)
	default:
		return bad("rsa_oaep_hash %q: use sha1, sha224, sha256, sha384 or sha512", c.RSAOAEPHash)
	}
	if c.RSABits == 0 {
		c.RSABits = 3072
	}
	if c.RSABits < 2048 || c.RSABits > 8192 {
		return bad("rsa_bits %d: use 2048 to 8192", c.RSABits)
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 8
	}
	if c.MaxSessions < 1 {
		return bad("max_sessions must be positive")
	}
	return nil
}

// pkcs11Blob is what the PKCS#11 seal stores: envelope encryption, so the
// HSM only ever encrypts a fresh 32-byte data key (an RSA-OAEP key could
// not encrypt a long keyring directly) and the payload is AES-256-GCM from
// the standard library under that data key.
//
//	{"v":1,"type":"pkcs11","key_id":"<key label>","mechanism":"aes-gcm",
//	 "hsm_iv":"<b64: GCM IV of the HSM encryption, aes-gcm only>",
//	 "wrapped_key":"<b64: data key encrypted by the HSM>",
//	 "nonce":"<b64>","ciphertext":"<b64: payload under the data key>"}
//
// The additional data binds both layers: the HSM's GCM (aes-gcm) and the
// payload's GCM.
type pkcs11Blob struct {
	Version    int    `json:"v"`
	Type       string `json:"type"`
	KeyID      string `json:"key_id"`
	Mechanism  string `json:"mechanism"`
	OAEPHash   string `json:"oaep_hash,omitempty"`
	HSMIV      []byte `json:"hsm_iv,omitempty"`
	WrappedKey []byte `json:"wrapped_key"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

const pkcs11BlobVersion = 1

func parsePKCS11Blob(raw []byte) (*pkcs11Blob, error) {
	var b pkcs11Blob
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: not a pkcs11 seal blob", ErrCorrupt)
	}
	if b.Version != pkcs11BlobVersion || b.Type != TypePKCS11 || len(b.WrappedKey) == 0 || len(b.Nonce) != nonceSize {
		return nil, fmt.Errorf("%w: not a pkcs11 seal blob", ErrCorrupt)
	}
	return &b, nil
}
