package audit

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// KeySize is the size of the HMAC keys NewKey makes.
const KeySize = 32

// NewKey returns a new random HMAC key for a device. The kernel keeps it in
// the barrier and passes it as DeviceConfig.HMACKey each time the device is
// set up; losing it makes existing HMACs unsearchable (sys/audit-hash).
func NewKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k) // never fails (crypto/rand aborts the process instead)
	return k
}

// NewSigningKey returns a new Ed25519 key for a device's checkpoints. The
// kernel keeps its seed (key.Seed(), 32 bytes) in the barrier and rebuilds
// it with ed25519.NewKeyFromSeed; the public half is what verifiers need.
func NewSigningKey() ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic("audit: ed25519 key generation failed: " + err.Error())
	}
	return priv
}

// Hash returns the HMAC-SHA256 of value under key, formatted as devices
// write it ("hmac-sha256:<hex>"). It is what sys/audit-hash/<path> answers,
// so an operator can search a log for a known value.
func Hash(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return hmacPrefix + hex.EncodeToString(m.Sum(nil))
}

// PublicKeyString encodes a checkpoint verification key as standard base64
// of the 32 raw Ed25519 bytes (44 characters). This is the format of
// sys/audit/<path>/verify-key and of the -key flag of `ward audit verify`.
func PublicKeyString(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey decodes a key written by PublicKeyString (surrounding
// white space is ignored, so a key read from a file with its newline works).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("audit: verification key is not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit: verification key has %d bytes, want %d (base64 of a raw Ed25519 public key)", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
