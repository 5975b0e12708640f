package transit

import (
	"crypto/elliptic"
	"sort"
)

// keyType is the algorithm of a named key. Its String form is Vault's name,
// which is also how the stored record spells it.
type keyType int

const (
	typeAES128GCM96 keyType = iota + 1
	typeAES256GCM96
	typeChaCha20Poly1305
	typeXChaCha20Poly1305
	typeED25519
	typeECDSAP256
	typeECDSAP384
	typeECDSAP521
	typeRSA2048
	typeRSA3072
	typeRSA4096
	typeHMAC
)

var keyTypeNames = map[keyType]string{
	typeAES128GCM96:       "aes128-gcm96",
	typeAES256GCM96:       "aes256-gcm96",
	typeChaCha20Poly1305:  "chacha20-poly1305",
	typeXChaCha20Poly1305: "xchacha20-poly1305",
	typeED25519:           "ed25519",
	typeECDSAP256:         "ecdsa-p256",
	typeECDSAP384:         "ecdsa-p384",
	typeECDSAP521:         "ecdsa-p521",
	typeRSA2048:           "rsa-2048",
	typeRSA3072:           "rsa-3072",
	typeRSA4096:           "rsa-4096",
	typeHMAC:              "hmac",
}

// parseKeyType maps Vault's name of a key type to the type; ok is false for
// an unknown name.
func parseKeyType(s string) (keyType, bool) {
	for t, n := range keyTypeNames {
		if n == s {
			return t, true
		}
	}
	return 0, false
}

// keyTypeList is every supported type name, sorted (for help and errors).
func keyTypeList() []string {
	out := make([]string, 0, len(keyTypeNames))
	for _, n := range keyTypeNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (t keyType) String() string {
	if n, ok := keyTypeNames[t]; ok {
		return n
	}
	return "[unknown]"
}

// symmetric reports an AEAD type: AES-GCM or (X)ChaCha20-Poly1305.
func (t keyType) symmetric() bool {
	switch t {
	case typeAES128GCM96, typeAES256GCM96, typeChaCha20Poly1305, typeXChaCha20Poly1305:
		return true
	}
	return false
}

func (t keyType) isRSA() bool {
	return t == typeRSA2048 || t == typeRSA3072 || t == typeRSA4096
}

func (t keyType) isECDSA() bool {
	return t == typeECDSAP256 || t == typeECDSAP384 || t == typeECDSAP521
}

// encryption reports whether encrypt/decrypt/rewrap/datakey accept the
// type (RSA encrypts with OAEP, as in Vault).
func (t keyType) encryption() bool { return t.symmetric() || t.isRSA() }

func (t keyType) signing() bool { return t == typeED25519 || t.isECDSA() || t.isRSA() }

// derivation reports whether the type supports derived (per-context) keys.
func (t keyType) derivation() bool { return t.symmetric() || t == typeED25519 }

// hashesInput reports whether sign/verify hash the input before signing
// (Ed25519 signs the message itself).
func (t keyType) hashesInput() bool { return t.isECDSA() || t.isRSA() }

// keyBytes is the length of a symmetric key (an HMAC key's length is the
// key's key_size instead).
func (t keyType) keyBytes() int {
	if t == typeAES128GCM96 {
		return 16
	}
	return 32
}

func (t keyType) rsaBits() int {
	switch t {
	case typeRSA3072:
		return 3072
	case typeRSA4096:
		return 4096
	}
	return 2048
}

func (t keyType) curve() elliptic.Curve {
	switch t {
	case typeECDSAP384:
		return elliptic.P384()
	case typeECDSAP521:
		return elliptic.P521()
	}
	return elliptic.P256()
}

// HMAC key sizes in bytes (Vault's bounds) and the default.
const (
	hmacMinKeySize     = 32
	hmacMaxKeySize     = 512
	hmacDefaultKeySize = 32
)
