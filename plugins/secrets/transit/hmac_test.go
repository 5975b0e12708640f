package transit

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// Vault's HMAC examples: the result is vault:v<N>:base64(HMAC(version's
// HMAC key, input)), checked against crypto/hmac with the exported key.
func TestHMACVaultExamples(t *testing.T) {
	e := newEnv(t)
	e.createKey("my-key", map[string]any{"exportable": true})
	hkey := unb64(t, wire(t, e.ok(logical.ReadOperation, "export/hmac-key/my-key/1", nil))["keys"].(map[string]any)["1"].(string))
	input, _ := base64.StdEncoding.DecodeString("adba32==")
	for alg, h := range map[string]func() hash.Hash{
		"sha2-224": sha256.New224, "sha2-256": sha256.New, "sha2-384": sha512.New384, "sha2-512": sha512.New,
		"sha3-224": func() hash.Hash { return sha3.New224() }, "sha3-256": func() hash.Hash { return sha3.New256() },
		"sha3-384": func() hash.Hash { return sha3.New384() }, "sha3-512": func() hash.Hash { return sha3.New512() },
	} {
		m := hmac.New(h, []byte(hkey))
		m.Write(input)
		want := "vault:v1:" + base64.StdEncoding.EncodeToString(m.Sum(nil))
		if got := e.write("hmac/my-key/"+alg, map[string]any{"input": "adba32=="}).Data["hmac"]; got != want {
			t.Fatalf("%s: %v, want %v", alg, got, want)
		}
		if got := e.write("hmac/my-key", map[string]any{"input": "adba32==", "algorithm": alg}).Data["hmac"]; got != want {
			t.Fatalf("%s in the body: %v", alg, got)
		}
		if !e.write("verify/my-key/"+alg, map[string]any{"input": "adba32==", "hmac": want}).Data["valid"].(bool) {
			t.Fatalf("%s does not verify", alg)
		}
	}
	// Default sha2-256.
	mac := e.write("hmac/my-key", map[string]any{"input": "adba32=="}).Data["hmac"].(string)
	if !e.write("verify/my-key", map[string]any{"input": "adba32==", "hmac": mac}).Data["valid"].(bool) {
		t.Fatal("default algorithm")
	}
	if e.write("verify/my-key/sha2-512", map[string]any{"input": "adba32==", "hmac": mac}).Data["valid"].(bool) {
		t.Fatal("verified with the wrong algorithm")
	}
	// The documented batch: {} fails alone, "" is a valid input.
	res := batchResults(t, e.write("hmac/my-key/sha2-512", map[string]any{"batch_input": []any{
		map[string]any{"input": "adba32=="}, map[string]any{"input": "adba32=="}, map[string]any{}, map[string]any{"input": ""},
	}}))
	if res[0]["hmac"] != res[1]["hmac"] || res[2]["error"] != "missing input for HMAC" || res[3]["hmac"] == nil {
		t.Fatalf("batch: %v", res)
	}
	v := batchResults(t, e.write("verify/my-key/sha2-512", map[string]any{"batch_input": []any{
		map[string]any{"input": "adba32==", "hmac": res[0]["hmac"], "reference": "a"},
		map[string]any{"input": "", "hmac": res[0]["hmac"]},
		map[string]any{"input": "adba32==", "hmac": "nope"},
	}}))
	// Vault omits "valid" when false in HMAC batch results.
	if v[0]["valid"] != true || v[0]["reference"] != "a" || v[1]["valid"] != nil || v[1]["error"] != nil ||
		!strings.Contains(v[2]["error"].(string), "no prefix") {
		t.Fatalf("verify batch: %v", v)
	}
}

func TestHMACVersionsAndErrors(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", map[string]any{"type": "ecdsa-p256"}) // any key type has HMAC keys
	old := e.write("hmac/k", map[string]any{"input": b64("m")}).Data["hmac"].(string)
	e.write("keys/k/rotate", nil)
	cur := e.write("hmac/k", map[string]any{"input": b64("m")}).Data["hmac"].(string)
	if !strings.HasPrefix(cur, "vault:v2:") || cur == old {
		t.Fatalf("after rotation: %s", cur)
	}
	if got := e.write("hmac/k", map[string]any{"input": b64("m"), "key_version": 1}).Data["hmac"]; got != old {
		t.Fatal("key_version 1")
	}
	e.bad("hmac/k", map[string]any{"input": b64("m"), "key_version": 3}, "key version does not exist; latest key version is 2")
	e.bad("hmac/k", map[string]any{"input": b64("m"), "key_version": -1}, "negative")
	e.bad("hmac/k", nil, "missing input for HMAC")
	e.bad("hmac/k", map[string]any{"input": "%%"}, "unable to decode input as base64")
	e.bad("hmac/k/md5", map[string]any{"input": b64("m")}, `unsupported algorithm "md5"`)
	e.bad("hmac/k/none", map[string]any{"input": b64("m")}, `unsupported algorithm "none"`)
	e.write("keys/k/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 2})
	e.bad("hmac/k", map[string]any{"input": b64("m"), "key_version": 1}, "cannot generate HMAC: version is too old (disallowed by policy)")
	e.bad("verify/k", map[string]any{"input": b64("m"), "hmac": old}, "cannot verify HMAC: version is too old (disallowed by policy)")
	e.bad("verify/k", map[string]any{"input": b64("m"), "hmac": "vault:v9:AA=="}, "invalid HMAC: version is too new")
	e.bad("verify/k", map[string]any{"input": b64("m"), "hmac": "vault:vx:AA=="}, "invalid HMAC: version number could not be decoded")
	e.bad("verify/k", map[string]any{"input": b64("m"), "hmac": "vault:v2"}, "invalid HMAC: wrong number of fields")
	e.bad("verify/k", map[string]any{"input": b64("m"), "hmac": "vault:v2:!!"}, "unable to decode verification HMAC as base64")
	e.bad("verify/k", map[string]any{"input": "!!", "hmac": cur}, "unable to decode input as base64")
	e.bad("verify/missing", map[string]any{"input": b64("m"), "hmac": cur}, "encryption key not found")
	if !e.write("verify/k", map[string]any{"input": b64("m"), "hmac": cur}).Data["valid"].(bool) {
		t.Fatal("current hmac")
	}
}
