package transit

import (
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// FuzzDecrypt feeds arbitrary ciphertexts, contexts and associated data to
// decrypt/ and rewrap/ of plain, derived and RSA keys: every answer is a
// plaintext or a 400, never a panic or a 500.
func FuzzDecrypt(f *testing.F) {
	e := newEnv(f)
	e.createKey("aes", nil)
	e.createKey("der", map[string]any{"derived": true, "convergent_encryption": true})
	e.createKey("xc", map[string]any{"type": "xchacha20-poly1305"})
	e.createKey("rsa", map[string]any{"type": "rsa-2048"})
	f.Add("aes", e.encrypt("aes", "seed", nil), "", "")
	f.Add("der", e.encrypt("der", "seed", map[string]any{"context": b64("c")}), b64("c"), "")
	f.Add("xc", e.encrypt("xc", "seed", map[string]any{"associated_data": b64("a")}), "", b64("a"))
	f.Add("rsa", e.encrypt("rsa", "seed", nil), "", "")
	f.Add("aes", "vault:v1:", "", "")
	f.Add("aes", "vault:v-0:AAAA", "%%", "%%")
	f.Fuzz(func(t *testing.T, key, ct, context, aad string) {
		for _, path := range []string{"decrypt/", "rewrap/"} {
			data := map[string]any{"ciphertext": ct}
			if context != "" {
				data["context"] = context
			}
			if aad != "" {
				data["associated_data"] = aad
			}
			_, err := e.do(logical.UpdateOperation, path+key, data)
			if err != nil && logical.CodeOf(err) != logical.CodeInvalidRequest && logical.CodeOf(err) != logical.CodeNotFound {
				t.Fatalf("%s%s %q: %v (code %d)", path, key, ct, err, logical.CodeOf(err))
			}
		}
	})
}

// FuzzVerify feeds arbitrary signatures and HMACs to verify/.
func FuzzVerify(f *testing.F) {
	e := newEnv(f)
	for _, typ := range []string{"ecdsa-p256", "ed25519", "rsa-2048"} {
		e.createKey(typ, map[string]any{"type": typ})
		f.Add(typ, e.write("sign/"+typ, map[string]any{"input": b64("m")}).Data["signature"].(string), "asn1", "signature")
	}
	f.Add("ecdsa-p256", "vault:v1:MAYCAQECAQE=", "jws", "hmac")
	f.Fuzz(func(t *testing.T, key, sig, marshaling, field string) {
		if field != "hmac" {
			field = "signature"
		}
		_, err := e.do(logical.UpdateOperation, "verify/"+key, map[string]any{"input": b64("m"), field: sig, "marshaling_algorithm": marshaling})
		if err != nil && logical.CodeOf(err) != logical.CodeInvalidRequest && logical.CodeOf(err) != logical.CodeNotFound {
			t.Fatalf("verify/%s %q: %v", key, sig, err)
		}
	})
}

// FuzzBatch feeds arbitrary batch_input shapes (decoded JSON) to encrypt/.
func FuzzBatch(f *testing.F) {
	e := newEnv(f)
	e.createKey("k", nil)
	f.Add(`[{"plaintext": "YQ==", "key_version": 1}]`)
	f.Add(`[{"plaintext": 1}, null, "x", {"context": "", "plaintext": ""}]`)
	f.Add(`[{"plaintext": "YQ==", "key_version": 1e40}]`)
	f.Fuzz(func(t *testing.T, js string) {
		var raw any
		if err := jsonUnmarshalNumber(js, &raw); err != nil {
			return
		}
		_, err := e.do(logical.UpdateOperation, "encrypt/k", map[string]any{"batch_input": raw})
		if err != nil && logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Fatalf("batch %s: %v", js, err)
		}
	})
}
