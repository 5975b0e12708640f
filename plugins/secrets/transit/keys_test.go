package transit

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// Every key type can be created, read with Vault's response shape,
// listed and (once allowed) deleted.
func TestKeyLifecycleAllTypes(t *testing.T) {
	cases := []struct {
		typ                   string
		enc, sign, derivation bool
		asymmetric            bool
		curveName             string
	}{
		{typ: "aes128-gcm96", enc: true, derivation: true},
		{typ: "aes256-gcm96", enc: true, derivation: true},
		{typ: "chacha20-poly1305", enc: true, derivation: true},
		{typ: "xchacha20-poly1305", enc: true, derivation: true},
		{typ: "ed25519", sign: true, derivation: true, asymmetric: true, curveName: "ed25519"},
		{typ: "ecdsa-p256", sign: true, asymmetric: true, curveName: "P-256"},
		{typ: "ecdsa-p384", sign: true, asymmetric: true, curveName: "P-384"},
		{typ: "ecdsa-p521", sign: true, asymmetric: true, curveName: "P-521"},
		{typ: "rsa-2048", enc: true, sign: true, asymmetric: true, curveName: "rsa-2048"},
		{typ: "hmac"},
	}
	e := newEnv(t)
	var names []string
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			name := "k-" + c.typ
			names = append(names, name)
			created := e.createKey(name, map[string]any{"type": c.typ})
			read := wire(t, e.ok(logical.ReadOperation, "keys/"+name, nil))
			if !reflect.DeepEqual(created, read) {
				t.Fatalf("create answered %v, read %v", created, read)
			}
			want := map[string]any{
				"name": name, "type": c.typ, "derived": false, "deletion_allowed": false,
				"min_available_version": 0.0, "min_decryption_version": 1.0, "min_encryption_version": 0.0,
				"latest_version": 1.0, "exportable": false, "allow_plaintext_backup": false,
				"supports_encryption": c.enc, "supports_decryption": c.enc, "supports_signing": c.sign,
				"supports_derivation": c.derivation, "auto_rotate_period": 0.0, "imported_key": false,
			}
			for k, v := range want {
				if read[k] != v {
					t.Errorf("%s = %v, want %v", k, read[k], v)
				}
			}
			keys := read["keys"].(map[string]any)
			if len(keys) != 1 {
				t.Fatalf("keys = %v", keys)
			}
			if !c.asymmetric {
				if keys["1"] != float64(epoch.Unix()) {
					t.Fatalf("keys[1] = %v, want the creation time %d", keys["1"], epoch.Unix())
				}
				return
			}
			k1 := keys["1"].(map[string]any)
			if k1["name"] != c.curveName || k1["creation_time"] != epoch.Format(time.RFC3339Nano) || k1["public_key"] == "" {
				t.Fatalf("keys[1] = %v", k1)
			}
			if pub := k1["public_key"].(string); c.typ != "ed25519" {
				blk, _ := pem.Decode([]byte(pub))
				if blk == nil || blk.Type != "PUBLIC KEY" {
					t.Fatalf("public key is not PEM: %q", pub)
				}
				if _, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if got := wire(t, e.ok(logical.ListOperation, "keys/", nil))["keys"].([]any); len(got) != len(cases) {
		t.Fatalf("list = %v", got)
	}
	for _, n := range names {
		e.fails(logical.DeleteOperation, "keys/"+n, nil, logical.CodeInvalidRequest, "deletion is not allowed")
		e.write("keys/"+n+"/config", map[string]any{"deletion_allowed": true})
		if resp := e.ok(logical.DeleteOperation, "keys/"+n, nil); resp != nil {
			t.Fatalf("delete answered %+v", resp)
		}
		if resp := e.ok(logical.ReadOperation, "keys/"+n, nil); resp != nil {
			t.Fatalf("deleted key still reads: %+v", resp)
		}
	}
	if resp := e.ok(logical.ListOperation, "keys", nil); resp != nil {
		t.Fatalf("list after delete = %+v", resp.Data)
	}
	e.fails(logical.DeleteOperation, "keys/nope", nil, logical.CodeInvalidRequest, "not found")
}

func TestKeyCreateDefaultsAndOptions(t *testing.T) {
	e := newEnv(t)
	d := e.createKey("def", nil)
	if d["type"] != "aes256-gcm96" {
		t.Fatalf("default type %v", d["type"])
	}
	d = e.createKey("opts", map[string]any{
		"type": "aes128-gcm96", "derived": true, "convergent_encryption": true,
		"exportable": true, "allow_plaintext_backup": true, "auto_rotate_period": "24h",
	})
	for k, v := range map[string]any{
		"derived": true, "convergent_encryption": true, "convergent_encryption_version": 3.0,
		"kdf": "hkdf_sha256", "exportable": true, "allow_plaintext_backup": true, "auto_rotate_period": 86400.0,
	} {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	h := e.createKey("h", map[string]any{"type": "hmac"})
	if h["key_size"] != 32.0 {
		t.Fatalf("hmac default key_size = %v", h["key_size"])
	}
	h = e.createKey("h64", map[string]any{"type": "hmac", "key_size": 64})
	if h["key_size"] != 64.0 {
		t.Fatalf("hmac key_size = %v", h["key_size"])
	}
	// Writing an existing key changes nothing and warns, as Vault does.
	resp := e.write("keys/def", map[string]any{"type": "ed25519", "exportable": true})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "already existed") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}
	if d := wire(t, resp); d["type"] != "aes256-gcm96" || d["exportable"] != false {
		t.Fatalf("existing key changed: %v", d)
	}
}

func TestKeyCreateValidation(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		params map[string]any
		msg    string
	}{
		{map[string]any{"type": "des"}, "unknown key type des"},
		{map[string]any{"convergent_encryption": true}, "convergent encryption requires derivation to be enabled"},
		{map[string]any{"type": "ecdsa-p256", "derived": true}, "key derivation and convergent encryption not supported for keys of type ecdsa-p256"},
		{map[string]any{"type": "rsa-2048", "derived": true}, "not supported for keys of type rsa-2048"},
		{map[string]any{"type": "hmac", "derived": true}, "not supported for keys of type hmac"},
		{map[string]any{"type": "ed25519", "derived": true, "convergent_encryption": true}, "convergent encryption not supported for keys of type ed25519"},
		{map[string]any{"key_size": 64}, "key_size is not valid for algorithm aes256-gcm96"},
		{map[string]any{"type": "hmac", "key_size": 16}, "invalid key_size 16"},
		{map[string]any{"type": "hmac", "key_size": 513}, "invalid key_size 513"},
		{map[string]any{"auto_rotate_period": "30m"}, "auto rotate period must be 0 to disable or at least an hour"},
		{map[string]any{"auto_rotate_period": "soon"}, `field "auto_rotate_period"`},
		{map[string]any{"derived": "maybe"}, `field "derived"`},
	} {
		e.bad("keys/v", c.params, c.msg)
	}
	if resp := e.ok(logical.ReadOperation, "keys/v", nil); resp != nil {
		t.Fatalf("a refused create left a key: %+v", resp.Data)
	}
	// Names are single path segments.
	e.fails(logical.UpdateOperation, "keys/a/b", nil, logical.CodeNotFound, "unsupported path")
	e.fails(logical.UpdateOperation, "keys/-bad", nil, logical.CodeNotFound, "unsupported path")
}

func TestKeysListPagination(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"d", "a", "c", "b", "e"} {
		e.createKey(n, nil)
	}
	list := func(data map[string]any) []any {
		resp := e.ok(logical.ListOperation, "keys/", data)
		if resp == nil {
			return nil
		}
		return wire(t, resp)["keys"].([]any)
	}
	if got := fmt.Sprint(list(nil)); got != "[a b c d e]" {
		t.Fatalf("list = %s", got)
	}
	if got := fmt.Sprint(list(map[string]any{"after": "b", "limit": 2})); got != "[c d]" {
		t.Fatalf("after b limit 2 = %s", got)
	}
	if got := fmt.Sprint(list(map[string]any{"after": "bb"})); got != "[c d e]" {
		t.Fatalf("after bb = %s", got)
	}
	if got := list(map[string]any{"after": "z"}); got != nil {
		t.Fatalf("after z = %v", got)
	}
}

func TestKeysConfig(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	for range 3 {
		e.write("keys/k/rotate", nil)
	}
	cfg := func(data map[string]any) map[string]any { return wire(t, e.write("keys/k/config", data)) }

	d := cfg(map[string]any{"min_decryption_version": 2, "min_encryption_version": 3})
	if d["min_decryption_version"] != 2.0 || d["min_encryption_version"] != 3.0 {
		t.Fatalf("config = %v", d)
	}
	if keys := d["keys"].(map[string]any); len(keys) != 3 || keys["1"] != nil {
		t.Fatalf("keys after min_decryption_version 2 = %v (version 1 must be hidden, as Vault archives it)", keys)
	}
	e.bad("keys/k/config", map[string]any{"min_decryption_version": 5}, "cannot set min decryption version of 5, latest key version is 4")
	e.bad("keys/k/config", map[string]any{"min_encryption_version": 9}, "cannot set min encryption version of 9")
	e.bad("keys/k/config", map[string]any{"min_encryption_version": 1}, "must be greater than or equal to min decryption version")
	e.bad("keys/k/config", map[string]any{"min_decryption_version": -1}, "cannot be negative")
	e.bad("keys/k/config", map[string]any{"auto_rotate_period": "10m"}, "at least an hour")
	e.bad("keys/nope/config", map[string]any{"deletion_allowed": true}, "no existing key named nope could be found")

	// 0 is forced to 1, with Vault's warning.
	resp := e.write("keys/k/config", map[string]any{"min_decryption_version": 0})
	if wire(t, resp)["min_decryption_version"] != 1.0 || len(resp.Warnings) != 1 {
		t.Fatalf("min_decryption_version 0: %v %v", resp.Data, resp.Warnings)
	}
	// exportable and allow_plaintext_backup cannot be unset.
	d = cfg(map[string]any{"exportable": true, "allow_plaintext_backup": true, "auto_rotate_period": "2h"})
	if d["exportable"] != true || d["allow_plaintext_backup"] != true || d["auto_rotate_period"] != 7200.0 {
		t.Fatalf("config = %v", d)
	}
	d = cfg(map[string]any{"exportable": false, "allow_plaintext_backup": false})
	if d["exportable"] != true || d["allow_plaintext_backup"] != true {
		t.Fatalf("exportable was unset: %v", d)
	}
	// A refused change leaves the stored key as it was.
	e.bad("keys/k/config", map[string]any{"deletion_allowed": true, "min_decryption_version": 99}, "cannot set")
	if d := wire(t, e.ok(logical.ReadOperation, "keys/k", nil)); d["deletion_allowed"] != false {
		t.Fatalf("refused config applied: %v", d)
	}
}

// Rotation moves new encryptions to the new version; rewrap moves old
// ciphertexts; min_decryption_version then refuses the old ones.
func TestRotateRewrapMinDecryption(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	ct1 := e.encrypt("k", "secret", nil)
	if !strings.HasPrefix(ct1, "vault:v1:") {
		t.Fatalf("ciphertext %q", ct1)
	}
	d := wire(t, e.write("keys/k/rotate", nil))
	if d["latest_version"] != 2.0 || len(d["keys"].(map[string]any)) != 2 {
		t.Fatalf("rotate answered %v", d)
	}
	resp := e.write("encrypt/k", map[string]any{"plaintext": b64("new")})
	if ct := resp.Data["ciphertext"].(string); !strings.HasPrefix(ct, "vault:v2:") || resp.Data["key_version"] != 2 {
		t.Fatalf("after rotate: %v", resp.Data)
	}
	if got := e.decrypt("k", ct1, nil); got != "secret" {
		t.Fatalf("old ciphertext decrypts to %q", got)
	}
	rw := e.write("rewrap/k", map[string]any{"ciphertext": ct1})
	ct2 := rw.Data["ciphertext"].(string)
	if !strings.HasPrefix(ct2, "vault:v2:") || rw.Data["key_version"] != 2 {
		t.Fatalf("rewrap: %v", rw.Data)
	}
	if got := e.decrypt("k", ct2, nil); got != "secret" {
		t.Fatalf("rewrapped ciphertext decrypts to %q", got)
	}
	// Rewrap to an explicit older version is allowed (min_encryption_version 0).
	if ct := e.write("rewrap/k", map[string]any{"ciphertext": ct2, "key_version": 1}).Data["ciphertext"].(string); !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("rewrap to v1: %s", ct)
	}

	e.write("keys/k/config", map[string]any{"min_decryption_version": 2})
	e.bad("decrypt/k", map[string]any{"ciphertext": ct1}, "ciphertext or signature version is disallowed by policy (too old)")
	e.bad("rewrap/k", map[string]any{"ciphertext": ct1}, "too old")
	if got := e.decrypt("k", ct2, nil); got != "secret" {
		t.Fatalf("v2 ciphertext decrypts to %q", got)
	}
	// Lowering it again makes v1 usable: nothing was deleted.
	e.write("keys/k/config", map[string]any{"min_decryption_version": 1})
	if got := e.decrypt("k", ct1, nil); got != "secret" {
		t.Fatalf("v1 after lowering min_decryption_version: %q", got)
	}
	e.fails(logical.UpdateOperation, "rotate/k", nil, logical.CodeNotFound, "unsupported path")
	e.bad("keys/nope/rotate", nil, "key not found")
}

func TestMinEncryptionVersion(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	e.write("keys/k/rotate", nil)
	e.write("keys/k/rotate", nil)
	e.write("keys/k/config", map[string]any{"min_encryption_version": 2})
	e.bad("encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": 1}, "requested version for encryption is less than the minimum encryption key version")
	e.bad("encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": 4}, "requested version for encryption is higher than the latest key version")
	e.bad("encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": -1}, "requested version for encryption is negative")
	if v := e.write("encrypt/k", map[string]any{"plaintext": b64("x"), "key_version": 2}).Data["key_version"]; v != 2 {
		t.Fatalf("key_version 2 used %v", v)
	}
}

func TestTrim(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	cts := []string{e.encrypt("k", "v1", nil)}
	for range 3 {
		e.write("keys/k/rotate", nil)
		cts = append(cts, e.encrypt("k", "later", nil))
	}
	e.bad("keys/k/trim", nil, "missing min_available_version")
	e.bad("keys/k/trim", map[string]any{"min_available_version": 2}, "cannot be set when minimum encryption version is not set")
	e.write("keys/k/config", map[string]any{"min_encryption_version": 3, "min_decryption_version": 2})
	e.bad("keys/k/trim", map[string]any{"min_available_version": 3}, "cannot be greater than minimum decryption version")
	e.bad("keys/k/trim", map[string]any{"min_available_version": 0}, "should be positive")
	e.bad("keys/nope/trim", map[string]any{"min_available_version": 1}, "invalid key name")
	d := wire(t, e.write("keys/k/trim", map[string]any{"min_available_version": 2}))
	if d["min_available_version"] != 2.0 {
		t.Fatalf("trim answered %v", d)
	}
	e.bad("keys/k/trim", map[string]any{"min_available_version": 1}, "cannot be decremented")
	// Version 1 is gone from storage for good.
	ent, _ := e.s.Get(t.Context(), "policy/k")
	rec, err := decodeRecord(ent.Value)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Keys["1"]; ok || len(rec.Keys) != 3 {
		t.Fatalf("stored versions after trim: %d, version 1 present %v", len(rec.Keys), ok)
	}
	e.bad("keys/k/config", map[string]any{"min_decryption_version": 1}, "min decryption version should not be less then min available version")
	e.bad("decrypt/k", map[string]any{"ciphertext": cts[0]}, "too old")
	if got := e.decrypt("k", cts[1], nil); got != "later" {
		t.Fatalf("v2 after trim: %q", got)
	}
}

// Auto-rotation happens at the first use after the period (whatever the
// timing of the host's periodic call), and only on operations that
// produce new output.
func TestAutoRotateOnUse(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", map[string]any{"auto_rotate_period": "1h"})
	ct := e.encrypt("k", "a", nil)
	e.clock.Advance(59 * time.Minute)
	if ct2 := e.encrypt("k", "a", nil); !strings.HasPrefix(ct2, "vault:v1:") {
		t.Fatalf("rotated early: %s", ct2)
	}
	e.clock.Advance(time.Minute)
	// A read does not rotate (reads never write).
	if d := wire(t, e.ok(logical.ReadOperation, "keys/k", nil)); d["latest_version"] != 1.0 {
		t.Fatalf("read rotated: %v", d["latest_version"])
	}
	// Decrypt does not rotate either.
	e.decrypt("k", ct, nil)
	if ct2 := e.encrypt("k", "a", nil); !strings.HasPrefix(ct2, "vault:v2:") {
		t.Fatalf("not rotated after the period: %s", ct2)
	}
	d := wire(t, e.ok(logical.ReadOperation, "keys/k", nil))
	if d["latest_version"] != 2.0 || d["keys"].(map[string]any)["2"] != float64(e.clock.Now().Unix()) {
		t.Fatalf("after auto-rotation: %v", d)
	}
	// The period counts from the newest version.
	e.clock.Advance(30 * time.Minute)
	if ct2 := e.encrypt("k", "a", nil); !strings.HasPrefix(ct2, "vault:v2:") {
		t.Fatalf("rotated again too early: %s", ct2)
	}
	// Signing keys and HMAC rotate on use too.
	e.createKey("s", map[string]any{"type": "ed25519", "auto_rotate_period": 3600})
	e.clock.Advance(2 * time.Hour)
	if v := e.write("sign/s", map[string]any{"input": b64("m")}).Data["key_version"]; v != 2 {
		t.Fatalf("sign after the period used version %v", v)
	}
	if h := e.write("hmac/s", map[string]any{"input": b64("m")}).Data["hmac"].(string); !strings.HasPrefix(h, "vault:v2:") {
		t.Fatalf("hmac: %s", h)
	}
	// Disabling stops it.
	e.write("keys/k/config", map[string]any{"auto_rotate_period": 0})
	e.clock.Advance(48 * time.Hour)
	if ct2 := e.encrypt("k", "a", nil); !strings.HasPrefix(ct2, "vault:v2:") {
		t.Fatalf("rotated while disabled: %s", ct2)
	}
}

// The host's periodic call rotates every key past its period, and only those.
func TestAutoRotateOnPeriodicCall(t *testing.T) {
	e := newEnv(t)
	e.createKey("due", map[string]any{"auto_rotate_period": "1h"})
	e.createKey("later", map[string]any{"auto_rotate_period": "3h"})
	e.createKey("never", nil)
	e.clock.Advance(2 * time.Hour)
	if resp, err := e.do(logical.RollbackOperation, "", nil); resp != nil || err != nil {
		t.Fatalf("periodic call: %v %v", resp, err)
	}
	for name, want := range map[string]float64{"due": 2, "later": 1, "never": 1} {
		if d := wire(t, e.ok(logical.ReadOperation, "keys/"+name, nil)); d["latest_version"] != want {
			t.Errorf("%s after the periodic call: version %v, want %v", name, d["latest_version"], want)
		}
	}
}

func TestHMACKeyType(t *testing.T) {
	e := newEnv(t)
	e.createKey("h", map[string]any{"type": "hmac", "key_size": 48, "exportable": true})
	e.bad("encrypt/h", map[string]any{"plaintext": b64("x")}, "message encryption not supported for key type hmac")
	e.bad("sign/h", map[string]any{"input": b64("x")}, "key type hmac does not support signing")
	mac := e.write("hmac/h", map[string]any{"input": b64("x")}).Data["hmac"].(string)
	e.write("keys/h/rotate", nil)
	exp := wire(t, e.ok(logical.ReadOperation, "export/hmac-key/h", nil))["keys"].(map[string]any)
	for v, k := range exp {
		if n := len(unb64(t, k.(string))); n != 48 {
			t.Fatalf("version %s: key of %d bytes after rotation, want 48", v, n)
		}
	}
	if !e.write("verify/h", map[string]any{"input": b64("x"), "hmac": mac}).Data["valid"].(bool) {
		t.Fatal("hmac of version 1 does not verify after rotation")
	}
}
