package transit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// publicKey returns version 1's public key as a read shows it.
func (e *env) publicKey(name string) crypto.PublicKey {
	e.tb.Helper()
	k := wire(e.tb, e.ok(logical.ReadOperation, "keys/"+name, nil))["keys"].(map[string]any)["1"].(map[string]any)
	s := k["public_key"].(string)
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			e.tb.Fatal(err)
		}
		return pub
	}
	return ed25519.PublicKey(unb64(e.tb, s))
}

func sigBytes(tb testing.TB, sig string, enc *base64.Encoding) []byte {
	tb.Helper()
	_, payload, ok := strings.Cut(strings.TrimPrefix(sig, "vault:v"), ":")
	if !ok {
		tb.Fatalf("signature %q", sig)
	}
	b, err := enc.DecodeString(payload)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Vault's sign/verify examples, with signatures checked by the standard
// library against the public key a key read returns.
func TestSignVerifyAllTypes(t *testing.T) {
	e := newEnv(t)
	input := "adba32=="
	msg, _ := base64.StdEncoding.DecodeString(input)
	for _, typ := range []string{"ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048"} {
		t.Run(typ, func(t *testing.T) {
			e.createKey(typ, map[string]any{"type": typ})
			resp := e.write("sign/"+typ+"/sha2-512", map[string]any{"input": input})
			sig := resp.Data["signature"].(string)
			if !strings.HasPrefix(sig, "vault:v1:") || resp.Data["key_version"] != 1 {
				t.Fatalf("sign: %v", resp.Data)
			}
			verify := func(path string, data map[string]any) bool {
				t.Helper()
				return e.write(path, data).Data["valid"].(bool)
			}
			if !verify("verify/"+typ+"/sha2-512", map[string]any{"input": input, "signature": sig}) {
				t.Fatal("signature does not verify")
			}
			if verify("verify/"+typ+"/sha2-512", map[string]any{"input": b64("other"), "signature": sig}) {
				t.Fatal("signature verifies other input")
			}
			// The hash also comes from the body; the URL wins.
			if verify("verify/"+typ, map[string]any{"input": input, "signature": sig, "hash_algorithm": "sha2-512"}) != true {
				t.Fatal("hash_algorithm in the body")
			}
			if typ != "ed25519" && verify("verify/"+typ+"/sha2-256", map[string]any{"input": input, "signature": sig, "hash_algorithm": "sha2-512"}) {
				t.Fatal("verified with the wrong hash")
			}
			raw := sigBytes(t, sig, base64.StdEncoding)
			digest := sha512.Sum512(msg)
			switch pub := e.publicKey(typ).(type) {
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, msg, raw) {
					t.Fatal("ed25519 signature fails crypto/ed25519")
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest[:], raw) {
					t.Fatal("ecdsa signature fails crypto/ecdsa")
				}
			case *rsa.PublicKey:
				if err := rsa.VerifyPSS(pub, crypto.SHA512, digest[:], raw, nil); err != nil {
					t.Fatalf("rsa signature fails crypto/rsa: %v", err)
				}
			}
		})
	}
	e.createKey("aes", nil)
	e.bad("sign/aes", map[string]any{"input": input}, "key type aes256-gcm96 does not support signing")
	e.bad("verify/aes", map[string]any{"input": input, "signature": "vault:v1:AA=="}, "does not support verification")
	e.bad("verify/missing", map[string]any{"input": input, "signature": "vault:v1:AA=="}, "signature verification key not found")
}

func TestSignHashAlgorithms(t *testing.T) {
	e := newEnv(t)
	e.createKey("ec", map[string]any{"type": "ecdsa-p256"})
	e.createKey("rsa", map[string]any{"type": "rsa-2048"})
	for _, h := range []string{"sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256", "sha3-384", "sha3-512"} {
		for _, k := range []string{"ec", "rsa"} {
			sig := e.write("sign/"+k+"/"+h, map[string]any{"input": b64("m")}).Data["signature"].(string)
			if !e.write("verify/"+k+"/"+h, map[string]any{"input": b64("m"), "signature": sig}).Data["valid"].(bool) {
				t.Fatalf("%s with %s does not verify", k, h)
			}
		}
	}
	// The deprecated "algorithm" field still works.
	sig := e.write("sign/ec", map[string]any{"input": b64("m"), "algorithm": "sha2-384"}).Data["signature"].(string)
	if !e.write("verify/ec/sha2-384", map[string]any{"input": b64("m"), "signature": sig}).Data["valid"].(bool) {
		t.Fatal("algorithm field ignored")
	}
	e.bad("sign/ec/md5", map[string]any{"input": b64("m")}, `invalid hash algorithm "md5"`)
	e.bad("sign/ec", map[string]any{"input": b64("m"), "hash_algorithm": "none"}, "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15")
	e.bad("sign/ec", map[string]any{"input": b64("m"), "marshaling_algorithm": "der"}, `invalid marshaling type "der"`)
	e.bad("sign/rsa", map[string]any{"input": b64("m"), "salt_length": "lots"}, "salt length neither 'auto', 'hash', nor an int")
	e.bad("sign/rsa", map[string]any{"input": b64("m"), "salt_length": "-5"}, "salt length is invalid")
	e.bad("sign/rsa", map[string]any{"input": b64("m"), "salt_length": "300"}, "requested salt length 300 is invalid")
	e.bad("sign/rsa", map[string]any{"input": b64("m"), "signature_algorithm": "raw"}, "unsupported rsa signature algorithm raw")
	e.bad("sign/ec", map[string]any{"input": "%%"}, "unable to decode input as base64")
}

func TestRSASignatureOptions(t *testing.T) {
	e := newEnv(t)
	e.createKey("r", map[string]any{"type": "rsa-2048"})
	pub := e.publicKey("r").(*rsa.PublicKey)
	msg := []byte("payload")
	digest := sha256.Sum256(msg)

	sig := e.write("sign/r", map[string]any{"input": b64(string(msg)), "signature_algorithm": "pkcs1v15"}).Data["signature"].(string)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sigBytes(t, sig, base64.StdEncoding)); err != nil {
		t.Fatalf("pkcs1v15: %v", err)
	}
	if !e.write("verify/r", map[string]any{"input": b64(string(msg)), "signature": sig, "signature_algorithm": "pkcs1v15"}).Data["valid"].(bool) {
		t.Fatal("pkcs1v15 does not verify")
	}
	if e.write("verify/r", map[string]any{"input": b64(string(msg)), "signature": sig}).Data["valid"].(bool) {
		t.Fatal("pkcs1v15 signature verified as pss")
	}
	// PSS with the salt as long as the hash.
	sig = e.write("sign/r", map[string]any{"input": b64(string(msg)), "salt_length": "hash"}).Data["signature"].(string)
	if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sigBytes(t, sig, base64.StdEncoding), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
		t.Fatalf("pss salt=hash: %v", err)
	}
	sig = e.write("sign/r", map[string]any{"input": b64(string(msg)), "salt_length": "20"}).Data["signature"].(string)
	if !e.write("verify/r", map[string]any{"input": b64(string(msg)), "signature": sig, "salt_length": "20"}).Data["valid"].(bool) {
		t.Fatal("pss salt 20")
	}
	// Prehashed input: the caller hashes.
	sig = e.write("sign/r", map[string]any{"input": base64.StdEncoding.EncodeToString(digest[:]), "prehashed": true}).Data["signature"].(string)
	if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sigBytes(t, sig, base64.StdEncoding), nil); err != nil {
		t.Fatalf("prehashed: %v", err)
	}
	e.bad("sign/r", map[string]any{"input": b64("not a digest"), "prehashed": true}, "rsa signing failed")
	// hash none: PKCS#1 v1.5 without a DigestInfo.
	sig = e.write("sign/r/none", map[string]any{"input": b64("raw bytes"), "prehashed": true, "signature_algorithm": "pkcs1v15"}).Data["signature"].(string)
	if err := rsa.VerifyPKCS1v15(pub, 0, []byte("raw bytes"), sigBytes(t, sig, base64.StdEncoding)); err != nil {
		t.Fatalf("hash none: %v", err)
	}
	if !e.write("verify/r/none", map[string]any{"input": b64("raw bytes"), "signature": sig, "prehashed": true, "signature_algorithm": "pkcs1v15"}).Data["valid"].(bool) {
		t.Fatal("hash none does not verify")
	}
}

func TestECDSAJWSMarshaling(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		typ  string
		size int
	}{{"ecdsa-p256", 32}, {"ecdsa-p384", 48}, {"ecdsa-p521", 66}} {
		e.createKey(c.typ, map[string]any{"type": c.typ})
		sig := e.write("sign/"+c.typ, map[string]any{"input": b64("jwt body"), "marshaling_algorithm": "jws"}).Data["signature"].(string)
		raw := sigBytes(t, sig, base64.RawURLEncoding)
		if len(raw) != 2*c.size || strings.ContainsAny(sig[len("vault:v1:"):], "+/=") {
			t.Fatalf("%s: jws signature %q of %d bytes", c.typ, sig, len(raw))
		}
		if !e.write("verify/"+c.typ, map[string]any{"input": b64("jwt body"), "signature": sig, "marshaling_algorithm": "jws"}).Data["valid"].(bool) {
			t.Fatalf("%s: jws does not verify", c.typ)
		}
		// Not as ASN.1.
		if _, err := e.do(logical.UpdateOperation, "verify/"+c.typ, map[string]any{"input": b64("jwt body"), "signature": sig}); err == nil {
			t.Fatalf("%s: jws signature accepted as asn1", c.typ)
		}
	}
	e.bad("verify/ecdsa-p256", map[string]any{"input": b64("m"), "signature": "vault:v1:" + base64.StdEncoding.EncodeToString([]byte{0x30, 0x01})}, "supplied signature is invalid")
}

func TestDerivedEd25519(t *testing.T) {
	e := newEnv(t)
	e.createKey("d", map[string]any{"type": "ed25519", "derived": true})
	e.bad("sign/d", map[string]any{"input": b64("m")}, "missing 'context'")
	ctx := b64("user-1")
	resp := e.write("sign/d", map[string]any{"input": b64("m"), "context": ctx})
	sig, pub := resp.Data["signature"].(string), resp.Data["public_key"].(string)
	if !ed25519.Verify(ed25519.PublicKey(unb64(t, pub)), []byte("m"), sigBytes(t, sig, base64.StdEncoding)) {
		t.Fatal("derived signature fails with the returned public key")
	}
	// Same context, same key and (Ed25519 being deterministic) signature.
	if again := e.write("sign/d", map[string]any{"input": b64("m"), "context": ctx}).Data; again["signature"] != sig || again["public_key"] != pub {
		t.Fatal("derived ed25519 is not deterministic per context")
	}
	if !e.write("verify/d", map[string]any{"input": b64("m"), "context": ctx, "signature": sig}).Data["valid"].(bool) {
		t.Fatal("derived signature does not verify")
	}
	if e.write("verify/d", map[string]any{"input": b64("m"), "context": b64("user-2"), "signature": sig}).Data["valid"].(bool) {
		t.Fatal("derived signature verifies under another context")
	}
	// A read shows the derived public key only for a context.
	keys := func(data map[string]any) map[string]any {
		return wire(t, e.ok(logical.ReadOperation, "keys/d", data))["keys"].(map[string]any)["1"].(map[string]any)
	}
	if k := keys(nil); k["public_key"] != "" {
		t.Fatalf("derived key read without context shows %v", k["public_key"])
	}
	if k := keys(map[string]any{"context": ctx}); k["public_key"] != pub {
		t.Fatalf("read with context shows %v, sign returned %v", k["public_key"], pub)
	}
	// Batch with per-item contexts; an item without input fails alone.
	res := batchResults(t, e.write("sign/d", map[string]any{"batch_input": []any{
		map[string]any{"input": "adba32==", "context": "efgh"},
		map[string]any{"input": "adba32==", "context": "abcd"},
		map[string]any{},
	}}))
	if res[0]["publickey"] == res[1]["publickey"] || res[0]["signature"] == nil || res[2]["error"] != "missing input" {
		t.Fatalf("batch: %v", res)
	}
}

func TestSignVerifyBatch(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", map[string]any{"type": "ecdsa-p256"})
	resp := e.write("sign/k", map[string]any{"batch_input": []any{
		map[string]any{"input": b64("a"), "reference": "r1"},
		map[string]any{"input": "!!", "reference": "r2"},
		map[string]any{"input": b64("c")},
	}})
	res := batchResults(t, resp)
	if resp.StatusCode != 0 || res[0]["reference"] != "r1" || res[1]["error"] == nil || res[1]["reference"] != "r2" || res[2]["signature"] == nil {
		t.Fatalf("sign batch: %d %v", resp.StatusCode, res)
	}
	if res[0]["key_version"] != 1.0 {
		t.Fatalf("key_version %v", res[0]["key_version"])
	}
	resp = e.write("verify/k", map[string]any{"batch_input": []any{
		map[string]any{"input": b64("a"), "signature": res[0]["signature"]},
		map[string]any{"input": b64("x"), "signature": res[2]["signature"]},
		map[string]any{"input": b64("c"), "signature": "garbage"},
	}})
	v := batchResults(t, resp)
	if resp.StatusCode != 0 || v[0]["valid"] != true || v[1]["valid"] != false || !strings.Contains(v[2]["error"].(string), "no prefix") {
		t.Fatalf("verify batch: %v", v)
	}
	e.bad("verify/k", map[string]any{"input": b64("a")}, "neither a 'signature' nor an 'hmac' were given to verify")
	e.bad("verify/k", map[string]any{"input": b64("a"), "signature": "s", "hmac": "h"}, "provide one of 'signature' or 'hmac'")
	e.bad("verify/k", map[string]any{"batch_input": []any{map[string]any{"signature": "s"}, map[string]any{"hmac": "h"}}}, "must all provide 'signature' or all provide 'hmac'")
	e.bad("verify/k", map[string]any{"batch_input": []any{map[string]any{"signature": "s"}, map[string]any{}}}, "some elements of batch_input are missing 'signature'")
	e.bad("verify/k", map[string]any{"batch_input": []any{map[string]any{"hmac": "s"}, map[string]any{}}}, "some elements of batch_input are missing 'hmac'")
	e.bad("verify/k", map[string]any{"batch_input": []any{map[string]any{}}}, "no batch_input elements have 'signature' or 'hmac'")
}

// Signature versions follow min_encryption_version (signing) and
// min_decryption_version (verification).
func TestSignatureVersions(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", map[string]any{"type": "ed25519"})
	old := e.write("sign/k", map[string]any{"input": b64("m")}).Data["signature"].(string)
	e.write("keys/k/rotate", nil)
	resp := e.write("sign/k", map[string]any{"input": b64("m")})
	if !strings.HasPrefix(resp.Data["signature"].(string), "vault:v2:") || resp.Data["key_version"] != 2 {
		t.Fatalf("after rotate: %v", resp.Data)
	}
	if v := e.write("sign/k", map[string]any{"input": b64("m"), "key_version": 1}).Data["signature"].(string); v != old {
		t.Fatal("explicit key_version 1 (ed25519 is deterministic)")
	}
	if !e.write("verify/k", map[string]any{"input": b64("m"), "signature": old}).Data["valid"].(bool) {
		t.Fatal("old signature after rotation")
	}
	e.write("keys/k/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 2})
	e.bad("verify/k", map[string]any{"input": b64("m"), "signature": old}, "disallowed by policy (too old)")
	e.bad("sign/k", map[string]any{"input": b64("m"), "key_version": 1}, "requested version for signing is less than the minimum encryption key version")
	e.bad("verify/k", map[string]any{"input": b64("m"), "signature": "vault:v3:AA=="}, "invalid signature: version is too new")
	e.bad("verify/k", map[string]any{"input": b64("m"), "signature": "vault:v2:!!"}, "invalid base64 signature value")
}

// The larger RSA sizes (slow to generate, so not in -short).
func TestRSALargeKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("generates RSA-3072 and RSA-4096 keys")
	}
	e := newEnv(t)
	for _, c := range []struct {
		typ  string
		bits int
	}{{"rsa-3072", 3072}, {"rsa-4096", 4096}} {
		d := e.createKey(c.typ, map[string]any{"type": c.typ})
		if d["keys"].(map[string]any)["1"].(map[string]any)["name"] != c.typ {
			t.Fatalf("%s: read %v", c.typ, d["keys"])
		}
		if n := e.publicKey(c.typ).(*rsa.PublicKey).N.BitLen(); n != c.bits {
			t.Fatalf("%s: %d-bit key", c.typ, n)
		}
		sig := e.write("sign/"+c.typ+"/sha2-512", map[string]any{"input": b64("m"), "signature_algorithm": "pkcs1v15"}).Data["signature"].(string)
		if !e.write("verify/"+c.typ+"/sha2-512", map[string]any{"input": b64("m"), "signature": sig, "signature_algorithm": "pkcs1v15"}).Data["valid"].(bool) {
			t.Fatalf("%s: signature does not verify", c.typ)
		}
		if e.decrypt(c.typ, e.encrypt(c.typ, "oaep", nil), nil) != "oaep" {
			t.Fatalf("%s: OAEP round trip", c.typ)
		}
	}
}
