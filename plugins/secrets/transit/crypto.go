package transit

import (
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // registers crypto.SHA1 for sign/verify with sha1
	"crypto/sha256"
	_ "crypto/sha3" // registers crypto.SHA3_* for sign/verify and hmac
	_ "crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"math/big"
	"strconv"
	"strings"

	"github.com/wardproject/ward/sdk/logical"
)

// Every output of the engine is tagged with its key version the way Vault
// tags it: "vault:v<N>:<base64>". For the AEAD types the base64 payload is
// nonce | ciphertext | tag (a 12-byte nonce for AES-GCM and ChaCha20, 24
// bytes for XChaCha20), exactly Vault's layout; for RSA it is the OAEP
// (SHA-256) ciphertext.
const versionPrefix = "vault:v"

// Errors of the crypto layer. User errors carry CodeInvalidRequest (400),
// failures of the engine itself CodeInternal; none quotes input or keys.
var (
	errMissingContext = logical.InvalidRequest("missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key")
	// errTooOld is returned for ciphertexts, signatures and HMACs whose
	// version is below min_decryption_version (Vault's wording).
	errTooOld     = logical.InvalidRequest("ciphertext or signature version is disallowed by policy (too old)")
	errNonce      = logical.InvalidRequest("nonce provided when not allowed")
	errAuthFailed = logical.InvalidRequest("cipher: message authentication failed")
)

func internalErr(format string, args ...any) error {
	return logical.Errorf(logical.CodeInternal, format, args...)
}

// formatVersioned returns "vault:v<ver>:" + base64(raw) with one allocation
// for the bytes and one for the string.
func formatVersioned(ver int, raw []byte, enc *base64.Encoding) string {
	buf := make([]byte, 0, len(versionPrefix)+12+enc.EncodedLen(len(raw)))
	buf = append(buf, versionPrefix...)
	buf = strconv.AppendInt(buf, int64(ver), 10)
	buf = append(buf, ':')
	buf = enc.AppendEncode(buf, raw)
	return string(buf)
}

// parseVersioned splits "vault:v<N>:<payload>". what names the value in
// errors ("ciphertext", "signature", "HMAC").
func parseVersioned(s, what string) (ver int, payload string, err error) {
	rest, ok := strings.CutPrefix(s, versionPrefix)
	if !ok {
		return 0, "", logical.InvalidRequest("invalid %s: no prefix", what)
	}
	vs, payload, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, "", logical.InvalidRequest("invalid %s: wrong number of fields", what)
	}
	ver, err = strconv.Atoi(vs)
	if err != nil {
		return 0, "", logical.InvalidRequest("invalid %s: version number could not be decoded", what)
	}
	return ver, payload, nil
}

// checkReadVersion applies latest_version and min_decryption_version to
// the version of a ciphertext, signature or HMAC being verified.
func (kr *keyring) checkReadVersion(ver int, what string) (*keyVersion, error) {
	if ver > kr.rec.LatestVersion {
		return nil, logical.InvalidRequest("invalid %s: version is too new", what)
	}
	if ver < kr.rec.MinDecryptionVersion {
		return nil, errTooOld
	}
	v := kr.versions[ver]
	if v == nil { // unreachable: check() guarantees versions from min_decryption_version
		return nil, internalErr("key version %d is missing", ver)
	}
	return v, nil
}

// writeVersion resolves the version used to produce new output (encrypt,
// sign, hmac): 0 means the latest; anything else must lie between
// min_encryption_version and latest_version. op names the operation in
// errors, as Vault does ("encryption", "signing").
func (kr *keyring) writeVersion(ver int, op string) (*keyVersion, error) {
	r := kr.rec
	switch {
	case ver == 0:
		ver = r.LatestVersion
	case ver < 0:
		return nil, logical.InvalidRequest("requested version for %s is negative", op)
	case ver > r.LatestVersion:
		return nil, logical.InvalidRequest("requested version for %s is higher than the latest key version", op)
	case ver < r.MinEncryptionVersion:
		return nil, logical.InvalidRequest("requested version for %s is less than the minimum encryption key version", op)
	}
	v := kr.versions[ver]
	if v == nil {
		return nil, logical.InvalidRequest("requested version for %s is no longer available", op)
	}
	return v, nil
}

// deriveKey derives n bytes from a version's key and a context with
// HKDF-SHA256 (RFC 5869): secret = the version's key, no salt, info = the
// context. This is Vault's "hkdf_sha256" KDF, the one Vault gives every
// derived key it creates today; Vault's older "hmac-sha256-counter" (NIST
// SP 800-108 counter mode) is not implemented, so derived keys restored
// from a Vault backup that uses it would not work (Ward cannot restore
// Vault backups anyway: see doc.go).
func deriveKey(secret, context []byte, n int) ([]byte, error) {
	if len(context) == 0 {
		return nil, errMissingContext
	}
	k, err := hkdf.Key(sha256.New, secret, nil, string(context), n)
	if err != nil {
		return nil, internalErr("key derivation failed")
	}
	return k, nil
}

// aeadFor returns the AEAD of version v for a request: the cached one for
// plain keys, a derived one (and, for convergent keys, the nonce key) for
// derived keys.
func (kr *keyring) aeadFor(v *keyVersion, context []byte) (aead cipher.AEAD, nonceKey []byte, err error) {
	if !kr.rec.Derived {
		return v.aead, nil, nil
	}
	n := kr.typ.keyBytes()
	extra := 0
	if kr.rec.ConvergentEncryption {
		extra = 32
	}
	k, err := deriveKey(v.entry.Key, context, n+extra)
	if err != nil {
		return nil, nil, err
	}
	aead, err = newAEAD(kr.typ, k[:n])
	if err != nil {
		return nil, nil, internalErr("could not set up the cipher")
	}
	return aead, k[n:], nil
}

// convergentNonce derives the nonce of a convergent encryption: the
// leading bytes of HMAC-SHA256 under the nonce key (the 32 bytes derived
// after the encryption key, as in Vault's convergent version 3).
//
// Without associated data it is Vault's nonce, HMAC(nonceKey, plaintext).
// Vault ignores associated data here, so one plaintext sealed with two
// different associated data under one context reuses a GCM nonce, which
// leaks the GHASH key. Ward therefore derives the nonce of a message with
// associated data under a separate key, HMAC(nonceKey, "associated_data"),
// over len(aad) | aad | plaintext: such nonces are independent of the
// plain ones and of each other, and decryption (which reads the nonce from
// the ciphertext) is unaffected.
func convergentNonce(nonceKey, plaintext, aad []byte, size int) []byte {
	key := nonceKey
	if len(aad) > 0 {
		m := hmac.New(sha256.New, nonceKey)
		m.Write([]byte("associated_data"))
		key = m.Sum(nil)
	}
	m := hmac.New(sha256.New, key)
	if len(aad) > 0 {
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(aad)))
		m.Write(l[:])
		m.Write(aad)
	}
	m.Write(plaintext)
	return m.Sum(nil)[:size]
}

// encrypt seals plaintext with version ver (0: latest) and returns the
// ciphertext and the version used.
func (kr *keyring) encrypt(ver int, context, plaintext, aad []byte) (string, int, error) {
	if !kr.typ.encryption() {
		return "", 0, logical.InvalidRequest("message encryption not supported for key type %v", kr.typ)
	}
	v, err := kr.writeVersion(ver, "encryption")
	if err != nil {
		return "", 0, err
	}
	if kr.typ.isRSA() {
		pub, err := v.rsaPublic()
		if err != nil {
			return "", 0, err
		}
		out, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, plaintext, nil)
		if err != nil {
			return "", 0, logical.InvalidRequest("failed to RSA encrypt the plaintext: %v", err)
		}
		return formatVersioned(v.n, out, base64.StdEncoding), v.n, nil
	}
	aead, nonceKey, err := kr.aeadFor(v, context)
	if err != nil {
		return "", 0, err
	}
	ns := aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+aead.Overhead())
	if kr.rec.ConvergentEncryption {
		copy(out, convergentNonce(nonceKey, plaintext, aad, ns))
	} else {
		_, _ = rand.Read(out)
	}
	out = aead.Seal(out, out[:ns], plaintext, aad)
	return formatVersioned(v.n, out, base64.StdEncoding), v.n, nil
}

// decrypt opens a ciphertext and returns the plaintext and its version.
func (kr *keyring) decrypt(context []byte, ciphertext string, aad []byte) ([]byte, int, error) {
	if !kr.typ.encryption() {
		return nil, 0, logical.InvalidRequest("message decryption not supported for key type %v", kr.typ)
	}
	ver, payload, err := parseVersioned(ciphertext, "ciphertext")
	if err != nil {
		return nil, 0, err
	}
	v, err := kr.checkReadVersion(ver, "ciphertext")
	if err != nil {
		return nil, 0, err
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, 0, logical.InvalidRequest("invalid ciphertext: could not decode base64")
	}
	if kr.typ.isRSA() {
		k, err := v.rsaPrivate()
		if err != nil {
			return nil, 0, err
		}
		pt, err := rsa.DecryptOAEP(sha256.New(), nil, k, raw, nil)
		if err != nil {
			return nil, 0, logical.InvalidRequest("failed to RSA decrypt the ciphertext: %v", err)
		}
		return pt, v.n, nil
	}
	aead, _, err := kr.aeadFor(v, context)
	if err != nil {
		return nil, 0, err
	}
	ns := aead.NonceSize()
	if len(raw) < ns+aead.Overhead() {
		return nil, 0, logical.InvalidRequest("invalid ciphertext length")
	}
	pt, err := aead.Open(nil, raw[:ns], raw[ns:], aad)
	if err != nil {
		return nil, 0, errAuthFailed
	}
	return pt, v.n, nil
}

func (v *keyVersion) rsaPrivate() (*rsa.PrivateKey, error) {
	s, err := v.signer()
	if err != nil {
		return nil, internalErr("%v", err)
	}
	return s.(*rsa.PrivateKey), nil
}

func (v *keyVersion) rsaPublic() (*rsa.PublicKey, error) {
	k, err := v.rsaPrivate()
	if err != nil {
		return nil, err
	}
	return &k.PublicKey, nil
}

// hashAlgorithms are the names sign, verify and hmac accept (Vault's).
// "none" (0) is only valid for signing prehashed input with PKCS#1 v1.5.
var hashAlgorithms = map[string]crypto.Hash{
	"sha1":     crypto.SHA1,
	"sha2-224": crypto.SHA224,
	"sha2-256": crypto.SHA256,
	"sha2-384": crypto.SHA384,
	"sha2-512": crypto.SHA512,
	"sha3-224": crypto.SHA3_224,
	"sha3-256": crypto.SHA3_256,
	"sha3-384": crypto.SHA3_384,
	"sha3-512": crypto.SHA3_512,
	"none":     0,
}

// signOpts are the options of one sign or verify request.
type signOpts struct {
	hash       crypto.Hash // 0: "none"
	prehashed  bool
	sigAlg     string // RSA: "pss" (default) or "pkcs1v15"
	jws        bool   // ECDSA: r | s, base64url without padding (JWS) instead of ASN.1
	saltLength int    // RSA-PSS: rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash or bytes
}

// digest returns what the key signs: the input's hash for ECDSA and RSA
// unless the input is prehashed (or the hash is "none"), the input itself
// for Ed25519.
func (kr *keyring) digest(input []byte, o *signOpts) []byte {
	if !kr.typ.hashesInput() || o.prehashed || o.hash == 0 {
		return input
	}
	h := o.hash.New()
	h.Write(input)
	return h.Sum(nil)
}

// ed25519Key returns the private key of an Ed25519 version: the stored
// key, or for derived keys one derived from the context (HKDF-SHA256 of
// the stored 64-byte key, 32 bytes used as the seed, as Vault does).
func (kr *keyring) ed25519Key(v *keyVersion, context []byte) (ed25519.PrivateKey, error) {
	if !kr.rec.Derived {
		return ed25519.PrivateKey(v.entry.Key), nil
	}
	seed, err := deriveKey(v.entry.Key, context, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ecdsaSignature is the ASN.1 form of an ECDSA signature.
type ecdsaSignature struct {
	R, S *big.Int
}

// sign signs input with version ver (0: latest). It returns the signature,
// the public key for derived Ed25519 keys, and the version used.
func (kr *keyring) sign(ver int, context, input []byte, o *signOpts) (string, []byte, int, error) {
	if !kr.typ.signing() {
		return "", nil, 0, logical.InvalidRequest("message signing not supported for key type %v", kr.typ)
	}
	v, err := kr.writeVersion(ver, "signing")
	if err != nil {
		return "", nil, 0, err
	}
	msg := kr.digest(input, o)
	var sig, pub []byte
	enc := base64.StdEncoding
	switch {
	case kr.typ == typeED25519:
		k, err := kr.ed25519Key(v, context)
		if err != nil {
			return "", nil, 0, err
		}
		if kr.rec.Derived {
			pub = k.Public().(ed25519.PublicKey)
		}
		sig = ed25519.Sign(k, msg)
	case kr.typ.isECDSA():
		s, err := v.signer()
		if err != nil {
			return "", nil, 0, internalErr("%v", err)
		}
		k := s.(*ecdsa.PrivateKey)
		if o.jws {
			r, ss, err := ecdsa.Sign(rand.Reader, k, msg)
			if err != nil {
				return "", nil, 0, internalErr("ecdsa signing failed")
			}
			size := (k.Curve.Params().BitSize + 7) / 8
			sig = make([]byte, 2*size)
			r.FillBytes(sig[:size])
			ss.FillBytes(sig[size:])
			enc = base64.RawURLEncoding
		} else if sig, err = ecdsa.SignASN1(rand.Reader, k, msg); err != nil {
			return "", nil, 0, internalErr("ecdsa signing failed")
		}
	default: // RSA
		k, err := v.rsaPrivate()
		if err != nil {
			return "", nil, 0, err
		}
		switch o.sigAlg {
		case "", "pss":
			if o.hash == 0 {
				return "", nil, 0, logical.InvalidRequest("hash_algorithm=none is not valid with signature_algorithm=pss")
			}
			if !validPSSSaltLength(k.N.BitLen(), o.hash, o.saltLength) {
				return "", nil, 0, logical.InvalidRequest("requested salt length %d is invalid", o.saltLength)
			}
			sig, err = rsa.SignPSS(rand.Reader, k, o.hash, msg, &rsa.PSSOptions{SaltLength: o.saltLength})
		case "pkcs1v15":
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, o.hash, msg)
		default:
			return "", nil, 0, logical.InvalidRequest("unsupported rsa signature algorithm %s", o.sigAlg)
		}
		if err != nil {
			// Go's RSA errors name lengths and hashes, never key material.
			return "", nil, 0, logical.InvalidRequest("rsa signing failed: %v", err)
		}
	}
	return formatVersioned(v.n, sig, enc), pub, v.n, nil
}

// verify checks a signature made by sign.
func (kr *keyring) verify(context, input []byte, signature string, o *signOpts) (bool, error) {
	if !kr.typ.signing() {
		return false, logical.InvalidRequest("message verification not supported for key type %v", kr.typ)
	}
	ver, payload, err := parseVersioned(signature, "signature")
	if err != nil {
		return false, err
	}
	v, err := kr.checkReadVersion(ver, "signature")
	if err != nil {
		return false, err
	}
	enc := base64.StdEncoding
	if o.jws && kr.typ.isECDSA() {
		enc = base64.RawURLEncoding
	}
	sig, err := enc.DecodeString(payload)
	if err != nil {
		return false, logical.InvalidRequest("invalid base64 signature value")
	}
	msg := kr.digest(input, o)
	switch {
	case kr.typ == typeED25519:
		k, err := kr.ed25519Key(v, context)
		if err != nil {
			return false, err
		}
		return ed25519.Verify(k.Public().(ed25519.PublicKey), msg, sig), nil
	case kr.typ.isECDSA():
		s, err := v.signer()
		if err != nil {
			return false, internalErr("%v", err)
		}
		pub := &s.(*ecdsa.PrivateKey).PublicKey
		if o.jws {
			size := (pub.Curve.Params().BitSize + 7) / 8
			if len(sig) != 2*size {
				return false, nil
			}
			r, ss := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
			return ecdsa.Verify(pub, msg, r, ss), nil
		}
		var es ecdsaSignature
		rest, err := asn1.Unmarshal(sig, &es)
		if err != nil || es.R == nil || es.S == nil {
			return false, logical.InvalidRequest("supplied signature is invalid")
		}
		if len(rest) != 0 {
			return false, logical.InvalidRequest("supplied signature contains extra data")
		}
		return ecdsa.Verify(pub, msg, es.R, es.S), nil
	default: // RSA
		pub, err := v.rsaPublic()
		if err != nil {
			return false, err
		}
		switch o.sigAlg {
		case "", "pss":
			if o.hash == 0 {
				return false, logical.InvalidRequest("hash_algorithm=none is not valid with signature_algorithm=pss")
			}
			if !validPSSSaltLength(pub.N.BitLen(), o.hash, o.saltLength) {
				return false, logical.InvalidRequest("requested salt length %d is invalid", o.saltLength)
			}
			return rsa.VerifyPSS(pub, o.hash, msg, sig, &rsa.PSSOptions{SaltLength: o.saltLength}) == nil, nil
		case "pkcs1v15":
			return rsa.VerifyPKCS1v15(pub, o.hash, msg, sig) == nil, nil
		}
		return false, logical.InvalidRequest("unsupported rsa signature algorithm %s", o.sigAlg)
	}
}

// validPSSSaltLength reports whether saltLength fits an RSA key of
// modBits bits with hash h (RFC 8017 9.1.1: emLen >= hLen + sLen + 2).
func validPSSSaltLength(modBits int, h crypto.Hash, saltLength int) bool {
	switch saltLength {
	case rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash:
		return true
	}
	emLen := (modBits - 1 + 7) / 8
	return saltLength >= 0 && saltLength <= emLen-h.Size()-2
}

// hmacKeyFor resolves the version used to generate an HMAC (0: latest),
// with Vault's checks and messages.
func (kr *keyring) hmacKeyFor(ver int) ([]byte, int, error) {
	r := kr.rec
	switch {
	case ver == 0:
		ver = r.LatestVersion
	case ver < 0:
		return nil, 0, logical.InvalidRequest("requested version for HMAC is negative")
	case ver > r.LatestVersion:
		return nil, 0, logical.InvalidRequest("key version does not exist; latest key version is %d", r.LatestVersion)
	case r.MinEncryptionVersion > 0 && ver < r.MinEncryptionVersion:
		return nil, 0, logical.InvalidRequest("cannot generate HMAC: version is too old (disallowed by policy)")
	case ver < r.MinDecryptionVersion:
		return nil, 0, logical.InvalidRequest("key version disallowed by policy (minimum is %d)", r.MinDecryptionVersion)
	}
	return kr.versions[ver].entry.HMACKey, ver, nil
}

// hmacSum is HMAC(key, input) with hash h.
func hmacSum(h crypto.Hash, key, input []byte) []byte {
	m := hmac.New(func() hash.Hash { return h.New() }, key)
	m.Write(input)
	return m.Sum(nil)
}
