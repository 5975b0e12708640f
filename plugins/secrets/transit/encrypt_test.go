package transit

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// The examples of Vault's transit API documentation.
func TestVaultDocExamplesEncryption(t *testing.T) {
	e := newEnv(t)
	// POST /transit/keys/my-key {"type": "ecdsa-p256", "derived": true} is
	// refused (ECDSA cannot derive), as in Vault; the plain key works.
	e.bad("keys/my-key", map[string]any{"type": "ecdsa-p256", "derived": true}, "not supported")
	e.createKey("my-key", nil)

	// Encrypt data: "the quick brown fox\n".
	resp := e.write("encrypt/my-key", map[string]any{"plaintext": "dGhlIHF1aWNrIGJyb3duIGZveAo="})
	ct := resp.Data["ciphertext"].(string)
	if !strings.HasPrefix(ct, "vault:v1:") || resp.Data["key_version"] != 1 {
		t.Fatalf("encrypt: %v", resp.Data)
	}
	// Decrypt data.
	if pt := e.write("decrypt/my-key", map[string]any{"ciphertext": ct}).Data["plaintext"]; pt != "dGhlIHF1aWNrIGJyb3duIGZveAo=" {
		t.Fatalf("decrypt: %v", pt)
	}
	// Rewrap data.
	e.write("keys/my-key/rotate", nil)
	if rw := e.write("rewrap/my-key", map[string]any{"ciphertext": ct}).Data["ciphertext"].(string); !strings.HasPrefix(rw, "vault:v2:") {
		t.Fatalf("rewrap: %v", rw)
	}
	// Generate data key.
	dk := e.write("datakey/plaintext/my-key", nil).Data
	if pt := unb64(t, dk["plaintext"].(string)); len(pt) != 32 {
		t.Fatalf("data key of %d bytes", len(pt))
	}
	if got := e.write("decrypt/my-key", map[string]any{"ciphertext": dk["ciphertext"]}).Data["plaintext"]; got != dk["plaintext"] {
		t.Fatal("data key ciphertext does not decrypt to the data key")
	}
	// Encrypt batch with contexts upserts a derived key.
	resp = e.ok(logical.CreateOperation, "encrypt/derived-key", map[string]any{"batch_input": []any{
		map[string]any{"context": "c2FtcGxlY29udGV4dA==", "plaintext": "dGhlIHF1aWNrIGJyb3duIGZveA=="},
		map[string]any{"context": "YW5vdGhlcnNhbXBsZWNvbnRleHQ=", "plaintext": "dGhlIHF1aWNrIGJyb3duIGZveA=="},
	}})
	res := batchResults(t, resp)
	if len(res) != 2 || res[0]["ciphertext"] == res[1]["ciphertext"] || resp.StatusCode != 0 {
		t.Fatalf("batch: %v (status %d)", res, resp.StatusCode)
	}
	if d := wire(t, e.ok(logical.ReadOperation, "keys/derived-key", nil)); d["derived"] != true {
		t.Fatalf("upserted key not derived: %v", d)
	}
}

// Ciphertexts have Vault's layout: vault:v<N>:base64(nonce(12) |
// ciphertext | tag(16)), here opened with crypto/cipher and the exported key.
func TestCiphertextLayout(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", map[string]any{"exportable": true})
	pt := strings.Repeat("x", 1000)
	ct := e.encrypt("k", pt, nil)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, "vault:v1:"))
	if err != nil || len(raw) != 12+len(pt)+16 {
		t.Fatalf("payload of %d bytes (%v), want 12+%d+16", len(raw), err, len(pt))
	}
	key := unb64(t, wire(t, e.ok(logical.ReadOperation, "export/encryption-key/k/1", nil))["keys"].(map[string]any)["1"].(string))
	block, _ := aes.NewCipher([]byte(key))
	gcm, _ := cipher.NewGCM(block)
	got, err := gcm.Open(nil, raw[:12], raw[12:], nil)
	if err != nil || string(got) != pt {
		t.Fatalf("open with the exported key: %v", err)
	}
	// And the other way: a ciphertext built outside decrypts.
	nonce := []byte("0123456789ab")
	mine := "vault:v1:" + base64.StdEncoding.EncodeToString(gcm.Seal(append([]byte(nil), nonce...), nonce, []byte("outside"), nil))
	if got := e.decrypt("k", mine, nil); got != "outside" {
		t.Fatalf("external ciphertext: %q", got)
	}
	// Two encryptions of one plaintext differ (random nonces).
	if e.encrypt("k", pt, nil) == ct {
		t.Fatal("two ciphertexts of one plaintext are equal")
	}
}

func TestEncryptAllTypes(t *testing.T) {
	e := newEnv(t)
	for _, typ := range []string{"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "xchacha20-poly1305", "rsa-2048"} {
		t.Run(typ, func(t *testing.T) {
			e.createKey(typ, map[string]any{"type": typ})
			for _, pt := range []string{"", "a", strings.Repeat("z", 4096)} {
				ct := e.encrypt(typ, pt, nil)
				if got := e.decrypt(typ, ct, nil); got != pt {
					t.Fatalf("round trip of %d bytes gave %d", len(pt), len(got))
				}
				if typ == "rsa-2048" {
					break // OAEP caps the plaintext
				}
			}
			e.write("keys/"+typ+"/rotate", nil)
			ct := e.encrypt(typ, "after rotation", nil)
			if !strings.HasPrefix(ct, "vault:v2:") || e.decrypt(typ, ct, nil) != "after rotation" {
				t.Fatalf("after rotation: %s", ct)
			}
		})
	}
	e.bad("encrypt/rsa-2048", map[string]any{"plaintext": b64(strings.Repeat("x", 300))}, "failed to RSA encrypt")
	e.createKey("ed", map[string]any{"type": "ed25519"})
	e.bad("encrypt/ed", map[string]any{"plaintext": b64("x")}, "message encryption not supported for key type ed25519")
	e.bad("decrypt/ed", map[string]any{"ciphertext": "vault:v1:AAAA"}, "message decryption not supported for key type ed25519")
}

func TestAssociatedData(t *testing.T) {
	e := newEnv(t)
	for _, typ := range []string{"aes256-gcm96", "chacha20-poly1305", "xchacha20-poly1305"} {
		e.createKey(typ, map[string]any{"type": typ})
		ad := map[string]any{"associated_data": b64("header")}
		ct := e.encrypt(typ, "body", ad)
		if got := e.decrypt(typ, ct, ad); got != "body" {
			t.Fatalf("%s: %q", typ, got)
		}
		e.bad("decrypt/"+typ, map[string]any{"ciphertext": ct}, "message authentication failed")
		e.bad("decrypt/"+typ, map[string]any{"ciphertext": ct, "associated_data": b64("other")}, "message authentication failed")
		e.bad("encrypt/"+typ, map[string]any{"plaintext": b64("x"), "associated_data": "%%%"}, "unable to decode associated_data as base64")
		rw := e.write("rewrap/"+typ, map[string]any{"ciphertext": ct, "associated_data": b64("header")}).Data["ciphertext"].(string)
		if got := e.decrypt(typ, rw, ad); got != "body" {
			t.Fatalf("%s: rewrap with associated data: %q", typ, got)
		}
	}
	e.createKey("rsa", map[string]any{"type": "rsa-2048"})
	e.bad("encrypt/rsa", map[string]any{"plaintext": b64("x"), "associated_data": b64("h")}, "associated_data' provided for non-AEAD cipher suite rsa-2048")
}

// Vault upserts a missing key on encrypt when the request is a create
// (the caller holds the create capability).
func TestEncryptUpsert(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	found, exists, err := e.b.HandleExistenceCheck(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/new", Storage: e.s})
	if err != nil || !found || exists {
		t.Fatalf("existence check of a missing key: found %v exists %v err %v", found, exists, err)
	}
	resp := e.ok(logical.CreateOperation, "encrypt/new", map[string]any{"plaintext": b64("x")})
	if len(resp.Warnings) != 0 {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	if d := wire(t, e.ok(logical.ReadOperation, "keys/new", nil)); d["type"] != "aes256-gcm96" || d["derived"] != false {
		t.Fatalf("upserted key: %v", d)
	}
	_, exists, _ = e.b.HandleExistenceCheck(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/new", Storage: e.s})
	if !exists {
		t.Fatal("existence check misses the created key")
	}
	// A create that finds the key (created by someone else first) warns.
	resp = e.ok(logical.CreateOperation, "encrypt/new", map[string]any{"plaintext": b64("x")})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "created beforehand") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	// Type and convergence of the upserted key.
	e.ok(logical.CreateOperation, "encrypt/cc", map[string]any{"plaintext": b64("x"), "type": "chacha20-poly1305",
		"context": b64("c"), "convergent_encryption": true})
	if d := wire(t, e.ok(logical.ReadOperation, "keys/cc", nil)); d["type"] != "chacha20-poly1305" || d["convergent_encryption"] != true {
		t.Fatalf("upserted key: %v", d)
	}
	e.fails(logical.CreateOperation, "encrypt/r", map[string]any{"plaintext": b64("x"), "type": "rsa-2048"}, logical.CodeInvalidRequest, "key type rsa-2048 not supported for this operation")
	e.fails(logical.CreateOperation, "encrypt/r", map[string]any{"plaintext": b64("x"), "type": "nope"}, logical.CodeInvalidRequest, "unknown key type nope")
	e.fails(logical.CreateOperation, "encrypt/r", map[string]any{"plaintext": b64("x"), "convergent_encryption": true}, logical.CodeInvalidRequest, "context is required")
	// An update of a missing key is not an upsert.
	e.bad("encrypt/upd", map[string]any{"plaintext": b64("x")}, "encryption key not found")
	if resp := e.ok(logical.ReadOperation, "keys/upd", nil); resp != nil {
		t.Fatal("an update upserted")
	}
	// Upserts can be disabled.
	if d := e.ok(logical.ReadOperation, "config/keys", nil).Data; d["disable_upsert"] != false {
		t.Fatalf("config/keys = %v", d)
	}
	e.write("config/keys", map[string]any{"disable_upsert": true})
	e.fails(logical.CreateOperation, "encrypt/blocked", map[string]any{"plaintext": b64("x")}, logical.CodeInvalidRequest, "encryption key not found")
	if resp := e.ok(logical.ReadOperation, "keys/blocked", nil); resp != nil {
		t.Fatal("upsert happened although disabled")
	}
	// Other endpoints never create keys.
	e.bad("decrypt/missing", map[string]any{"ciphertext": "vault:v1:AAAA"}, "encryption key not found")
	e.bad("datakey/plaintext/missing", nil, "encryption key not found")
	e.bad("sign/missing", map[string]any{"input": b64("m")}, "signing key not found")
	e.bad("hmac/missing", map[string]any{"input": b64("m")}, "encryption key not found")
}

// Derived keys: each context gives another key (HKDF-SHA256, Vault's
// hkdf_sha256 KDF); convergent keys encrypt deterministically.
func TestDerivedAndConvergent(t *testing.T) {
	e := newEnv(t)
	e.createKey("d", map[string]any{"derived": true, "exportable": true})
	ctxA, ctxB := map[string]any{"context": b64("tenant-a")}, map[string]any{"context": b64("tenant-b")}
	e.bad("encrypt/d", map[string]any{"plaintext": b64("x")}, "missing 'context' for key derivation")
	ct := e.encrypt("d", "p", ctxA)
	if e.decrypt("d", ct, ctxA) != "p" {
		t.Fatal("derived round trip")
	}
	e.bad("decrypt/d", map[string]any{"ciphertext": ct, "context": b64("tenant-b")}, "message authentication failed")
	e.bad("decrypt/d", map[string]any{"ciphertext": ct}, "missing 'context'")
	e.bad("decrypt/d", map[string]any{"ciphertext": ct, "context": "!!"}, "unable to decode context as base64")
	if e.encrypt("d", "p", ctxA) == ct {
		t.Fatal("non-convergent derived encryption is deterministic")
	}
	// The derived key is HKDF-SHA256(key, salt nil, info context).
	key := unb64(t, wire(t, e.ok(logical.ReadOperation, "export/encryption-key/d/1", nil))["keys"].(map[string]any)["1"].(string))
	dk, _ := hkdf.Key(sha256.New, []byte(key), nil, "tenant-a", 32)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, "vault:v1:"))
	block, _ := aes.NewCipher(dk)
	gcm, _ := cipher.NewGCM(block)
	if pt, err := gcm.Open(nil, raw[:12], raw[12:], nil); err != nil || string(pt) != "p" {
		t.Fatalf("derived key is not HKDF-SHA256 of the context: %v", err)
	}

	e.createKey("c", map[string]any{"derived": true, "convergent_encryption": true, "exportable": true})
	c1 := e.encrypt("c", "same", ctxA)
	if c2 := e.encrypt("c", "same", ctxA); c2 != c1 {
		t.Fatalf("convergent encryption is not deterministic: %s vs %s", c1, c2)
	}
	if e.encrypt("c", "same", ctxB) == c1 || e.encrypt("c", "other", ctxA) == c1 {
		t.Fatal("convergent ciphertexts collide across contexts or plaintexts")
	}
	if e.decrypt("c", c1, ctxA) != "same" {
		t.Fatal("convergent round trip")
	}
	// Vault's convergent version 3 nonce: HMAC-SHA256(derived[32:64], plaintext).
	key = unb64(t, wire(t, e.ok(logical.ReadOperation, "export/encryption-key/c/1", nil))["keys"].(map[string]any)["1"].(string))
	dk, _ = hkdf.Key(sha256.New, []byte(key), nil, "tenant-a", 64)
	m := hmac.New(sha256.New, dk[32:])
	m.Write([]byte("same"))
	raw, _ = base64.StdEncoding.DecodeString(strings.TrimPrefix(c1, "vault:v1:"))
	if string(raw[:12]) != string(m.Sum(nil)[:12]) {
		t.Fatal("convergent nonce is not Vault's HMAC(nonce key, plaintext)")
	}
	// With associated data the nonce also depends on it (Ward's fix of the
	// nonce reuse in Vault's scheme), and stays deterministic.
	ad1 := map[string]any{"context": b64("tenant-a"), "associated_data": b64("h1")}
	ad2 := map[string]any{"context": b64("tenant-a"), "associated_data": b64("h2")}
	a1, a2 := e.encrypt("c", "same", ad1), e.encrypt("c", "same", ad2)
	if a1 != e.encrypt("c", "same", ad1) {
		t.Fatal("convergent encryption with associated data is not deterministic")
	}
	r1, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(a1, "vault:v1:"))
	r2, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(a2, "vault:v1:"))
	if string(r1[:12]) == string(r2[:12]) || string(r1[:12]) == string(raw[:12]) {
		t.Fatal("one nonce for different associated data")
	}
	if e.decrypt("c", a2, ad2) != "same" {
		t.Fatal("convergent round trip with associated data")
	}
	// A convergent batch: equal inputs give equal outputs.
	res := batchResults(t, e.write("encrypt/c", map[string]any{"batch_input": []any{
		map[string]any{"plaintext": b64("same"), "context": b64("tenant-a")},
		map[string]any{"plaintext": b64("same"), "context": b64("tenant-a")},
	}}))
	if res[0]["ciphertext"] != c1 || res[1]["ciphertext"] != c1 {
		t.Fatalf("batch convergent: %v", res)
	}
	// Rotation changes the key, so the ciphertext changes, deterministically.
	e.write("keys/c/rotate", nil)
	c3 := e.encrypt("c", "same", ctxA)
	if c3 == c1 || !strings.HasPrefix(c3, "vault:v2:") || c3 != e.encrypt("c", "same", ctxA) {
		t.Fatalf("after rotation: %s", c3)
	}
	// A non-derived key ignores a context, as Vault does.
	e.createKey("plain", nil)
	if ct := e.encrypt("plain", "x", ctxA); e.decrypt("plain", ct, nil) != "x" {
		t.Fatal("context changed a non-derived key")
	}
}

func TestNonceRefused(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	e.createKey("c", map[string]any{"derived": true, "convergent_encryption": true})
	nonce := b64("0123456789ab")
	e.bad("encrypt/k", map[string]any{"plaintext": b64("x"), "nonce": nonce}, "nonce provided when not allowed")
	e.bad("encrypt/c", map[string]any{"plaintext": b64("x"), "nonce": nonce, "context": b64("c")}, "nonce provided when not allowed")
	e.bad("datakey/wrapped/k", map[string]any{"nonce": nonce}, "nonce provided when not allowed")
	// Decrypt ignores it (the nonce is in the ciphertext).
	ct := e.encrypt("k", "x", nil)
	if e.decrypt("k", ct, map[string]any{"nonce": nonce}) != "x" {
		t.Fatal("decrypt with nonce")
	}
}

func TestDatakey(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	for _, bits := range []int{128, 256, 512} {
		d := e.write("datakey/plaintext/k", map[string]any{"bits": bits}).Data
		pt := unb64(t, d["plaintext"].(string))
		if len(pt) != bits/8 || d["key_version"] != 1 {
			t.Fatalf("bits %d: %d bytes, %v", bits, len(pt), d)
		}
		if got := e.decrypt("k", d["ciphertext"].(string), nil); got != pt {
			t.Fatal("data key does not decrypt to itself")
		}
	}
	w := e.write("datakey/wrapped/k", nil).Data
	if _, ok := w["plaintext"]; ok || w["ciphertext"] == "" {
		t.Fatalf("wrapped data key: %v", w)
	}
	e.bad("datakey/other/k", nil, "Invalid path, must be 'plaintext' or 'wrapped'")
	e.bad("datakey/plaintext/k", map[string]any{"bits": 64}, "invalid bit length")
	e.bad("datakey/plaintext/k", map[string]any{"context": "%%"}, "failed to base64-decode context")
	e.createKey("d", map[string]any{"derived": true})
	e.bad("datakey/plaintext/d", nil, "missing 'context'")
	d := e.write("datakey/plaintext/d", map[string]any{"context": b64("c"), "associated_data": b64("a")}).Data
	if got := e.decrypt("d", d["ciphertext"].(string), map[string]any{"context": b64("c"), "associated_data": b64("a")}); got != unb64(t, d["plaintext"].(string)) {
		t.Fatal("derived data key")
	}
	e.createKey("rsa", map[string]any{"type": "rsa-2048"})
	d = e.write("datakey/plaintext/rsa", nil).Data
	if got := e.decrypt("rsa", d["ciphertext"].(string), nil); got != unb64(t, d["plaintext"].(string)) {
		t.Fatal("rsa data key")
	}
}

// A batch of 1,000 items is one request; each item succeeds or fails on
// its own and keeps its position and reference.
func TestBatch1000(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	const n = 1000
	in := make([]any, n)
	for i := range in {
		in[i] = map[string]any{"plaintext": b64(fmt.Sprintf("item %d", i)), "reference": fmt.Sprint(i)}
	}
	resp := e.write("encrypt/k", map[string]any{"batch_input": in})
	if resp.StatusCode != 0 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	res := batchResults(t, resp)
	if len(res) != n {
		t.Fatalf("%d results", len(res))
	}
	dec := make([]any, n)
	for i, r := range res {
		if r["reference"] != fmt.Sprint(i) || r["key_version"] != 1.0 || r["error"] != nil {
			t.Fatalf("result %d: %v", i, r)
		}
		dec[i] = map[string]any{"ciphertext": r["ciphertext"], "reference": fmt.Sprint(i)}
	}
	out := batchResults(t, e.write("decrypt/k", map[string]any{"batch_input": dec}))
	for i, r := range out {
		if unb64(t, r["plaintext"].(string)) != fmt.Sprintf("item %d", i) || r["reference"] != fmt.Sprint(i) {
			t.Fatalf("decrypted %d: %v", i, r)
		}
	}
	e.write("keys/k/rotate", nil)
	rw := batchResults(t, e.write("rewrap/k", map[string]any{"batch_input": dec}))
	for i, r := range rw {
		if !strings.HasPrefix(r["ciphertext"].(string), "vault:v2:") || r["key_version"] != 2.0 {
			t.Fatalf("rewrapped %d: %v", i, r)
		}
	}
}

// Vault's batch status rules: any failed item makes an encrypt or decrypt
// batch a 400 (body kept), unless partial_failure_response_code says
// otherwise and some item succeeded; rewrap, sign, verify and hmac batches
// answer 200 with per-item errors.
func TestBatchPartialFailure(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	good := e.encrypt("k", "ok", nil)
	mixedEnc := []any{
		map[string]any{"plaintext": b64("a")},
		map[string]any{"plaintext": "not base64!"},
		map[string]any{"reference": "no plaintext"},
	}
	resp := e.write("encrypt/k", map[string]any{"batch_input": mixedEnc})
	res := batchResults(t, resp)
	if resp.StatusCode != http.StatusBadRequest || res[0]["ciphertext"] == nil ||
		!strings.Contains(res[1]["error"].(string), "unable to decode plaintext as base64") ||
		!strings.Contains(res[2]["error"].(string), "missing plaintext") || res[2]["reference"] != "no plaintext" {
		t.Fatalf("status %d, results %v", resp.StatusCode, res)
	}
	resp = e.write("encrypt/k", map[string]any{"batch_input": mixedEnc, "partial_failure_response_code": 207})
	if resp.StatusCode != 207 {
		t.Fatalf("partial_failure_response_code ignored: %d", resp.StatusCode)
	}
	resp = e.write("encrypt/k", map[string]any{"batch_input": mixedEnc, "partial_failure_response_code": 42})
	if resp.StatusCode != http.StatusBadRequest || len(resp.Warnings) != 1 {
		t.Fatalf("invalid override: %d %v", resp.StatusCode, resp.Warnings)
	}
	// All failed: 400 whatever the override.
	resp = e.write("encrypt/k", map[string]any{"batch_input": mixedEnc[1:], "partial_failure_response_code": 200})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("all failed: %d", resp.StatusCode)
	}
	// Decrypt: same rules.
	resp = e.write("decrypt/k", map[string]any{"batch_input": []any{
		map[string]any{"ciphertext": good}, map[string]any{"ciphertext": "vault:v1:AAAA"}, map[string]any{},
	}})
	res = batchResults(t, resp)
	if resp.StatusCode != http.StatusBadRequest || unb64(t, res[0]["plaintext"].(string)) != "ok" ||
		res[1]["error"] == nil || !strings.Contains(res[2]["error"].(string), "missing ciphertext") {
		t.Fatalf("decrypt: %d %v", resp.StatusCode, res)
	}
	// Rewrap: 200 with per-item errors.
	resp = e.write("rewrap/k", map[string]any{"batch_input": []any{map[string]any{"ciphertext": good}, map[string]any{"ciphertext": "junk"}}})
	if res = batchResults(t, resp); resp.StatusCode != 0 || res[1]["error"] == nil || res[0]["ciphertext"] == nil {
		t.Fatalf("rewrap: %d %v", resp.StatusCode, res)
	}
	// Whole-request errors.
	e.bad("encrypt/k", map[string]any{"batch_input": []any{}}, "missing batch input to process")
	e.bad("encrypt/k", map[string]any{"batch_input": []any{"x"}}, "[0] expected an object, got a string")
	e.bad("encrypt/k", map[string]any{"batch_input": []any{map[string]any{"plaintext": 5}}}, "'[0].plaintext' expected type 'string', got a number")
	e.bad("encrypt/k", map[string]any{"batch_input": []any{map[string]any{"plaintext": b64("x"), "key_version": "x"}}}, "key_version")
	e.bad("encrypt/k", map[string]any{"batch_input": "nope"}, `field "batch_input"`)
	e.bad("encrypt/k", map[string]any{"batch_input": []any{
		map[string]any{"plaintext": b64("a"), "context": b64("c")}, map[string]any{"plaintext": b64("b")},
	}}, "context should be set either in all the request blocks or in none")
}

// Bad input is a 400 with a clear message, never a panic or a 500.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	ct := e.encrypt("k", "x", nil)
	raw := strings.TrimPrefix(ct, "vault:v1:")
	for _, c := range []struct {
		path string
		data map[string]any
		msg  string
	}{
		{"encrypt/k", nil, "missing plaintext to encrypt"},
		{"encrypt/k", map[string]any{"plaintext": "***"}, "unable to decode plaintext as base64"},
		{"encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": "two"}, `field "key_version"`},
		{"encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": 1.5}, `field "key_version"`},
		{"encrypt/k", map[string]any{"plaintext": []any{"x"}}, `field "plaintext"`},
		{"decrypt/k", nil, "missing ciphertext to decrypt"},
		{"decrypt/k", map[string]any{"ciphertext": raw}, "invalid ciphertext: no prefix"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v1"}, "invalid ciphertext: wrong number of fields"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:vX:" + raw}, "invalid ciphertext: version number could not be decoded"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v99999999999999999999:" + raw}, "version number could not be decoded"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v2:" + raw}, "invalid ciphertext: version is too new"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v0:" + raw}, "too old"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v-3:" + raw}, "too old"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v1:!!!"}, "invalid ciphertext: could not decode base64"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v1:AAAA"}, "invalid ciphertext length"},
		{"decrypt/k", map[string]any{"ciphertext": "vault:v1:" + flipLast(raw)}, "message authentication failed"},
		{"rewrap/k", map[string]any{"ciphertext": "vault:v1:AAAA"}, "invalid ciphertext length"},
		{"rewrap/k", nil, "missing ciphertext"},
		// An update never upserts (only a create, which needs the create capability).
		{"encrypt/nokey", map[string]any{"plaintext": b64("x")}, "encryption key not found"},
	} {
		_, err := e.do(logical.UpdateOperation, c.path, c.data)
		if err == nil || logical.CodeOf(err) != logical.CodeInvalidRequest || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %v: err %v, want 400 %q", c.path, c.data, err, c.msg)
		}
		if err != nil && strings.Contains(err.Error(), "eA==") {
			t.Errorf("error quotes the plaintext: %v", err)
		}
	}
	// Unknown fields are reported back as a warning, as Vault does.
	resp := e.write("encrypt/k", map[string]any{"plaintext": b64("x"), "bogus": 1})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "bogus") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	// Unsupported operations and paths.
	e.fails(logical.ReadOperation, "encrypt/k", nil, logical.CodeUnsupportedOperation, "unsupported operation")
	e.fails(logical.UpdateOperation, "nothing/here", nil, logical.CodeNotFound, "unsupported path")
}

func flipLast(b64s string) string {
	raw, _ := base64.StdEncoding.DecodeString(b64s)
	raw[len(raw)-1] ^= 1
	return base64.StdEncoding.EncodeToString(raw)
}
