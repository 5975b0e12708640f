package transit

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func (e *env) export(path string) map[string]any {
	e.tb.Helper()
	resp := e.ok(logical.ReadOperation, "export/"+path, nil)
	if resp == nil {
		e.tb.Fatalf("export/%s: not found", path)
	}
	return wire(e.tb, resp)
}

func TestExportPermissions(t *testing.T) {
	e := newEnv(t)
	e.createKey("locked", map[string]any{"type": "ecdsa-p256"})
	for _, typ := range []string{"encryption-key", "signing-key", "hmac-key"} {
		e.fails(logical.ReadOperation, "export/"+typ+"/locked", nil, logical.CodeInvalidRequest, "private key material is not exportable")
	}
	// Public keys need no permission.
	if pub := e.export("public-key/locked")["keys"].(map[string]any)["1"].(string); !strings.HasPrefix(pub, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public key %q", pub)
	}
	e.fails(logical.ReadOperation, "export/secret-key/locked", nil, logical.CodeInvalidRequest, "invalid export type: secret-key")
	if resp := e.ok(logical.ReadOperation, "export/hmac-key/missing", nil); resp != nil {
		t.Fatalf("missing key exported: %v", resp.Data)
	}
	// Becoming exportable is a one-way switch.
	e.write("keys/locked/config", map[string]any{"exportable": true})
	if d := e.export("signing-key/locked"); d["name"] != "locked" || d["type"] != "ecdsa-p256" {
		t.Fatalf("export answered %v", d)
	}
	e.fails(logical.ReadOperation, "export/encryption-key/locked", nil, logical.CodeInvalidRequest, "encryption not supported for the key")
	e.createKey("sym", map[string]any{"exportable": true})
	e.fails(logical.ReadOperation, "export/signing-key/sym", nil, logical.CodeInvalidRequest, "signing not supported for the key")
	e.fails(logical.ReadOperation, "export/public-key/sym", nil, logical.CodeInvalidRequest, "public key export not supported")
}

func TestExportFormatsAndVersions(t *testing.T) {
	e := newEnv(t)
	e.createKey("ec", map[string]any{"type": "ecdsa-p384", "exportable": true})
	e.createKey("rsa", map[string]any{"type": "rsa-2048", "exportable": true})
	e.createKey("ed", map[string]any{"type": "ed25519", "exportable": true})
	e.createKey("aes", map[string]any{"type": "aes128-gcm96", "exportable": true})

	blk, _ := pem.Decode([]byte(e.export("signing-key/ec/1")["keys"].(map[string]any)["1"].(string)))
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Fatal("ecdsa key is not SEC 1 PEM")
	}
	if _, err := x509.ParseECPrivateKey(blk.Bytes); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"signing-key", "encryption-key"} {
		blk, _ = pem.Decode([]byte(e.export(typ + "/rsa")["keys"].(map[string]any)["1"].(string)))
		if blk == nil || blk.Type != "RSA PRIVATE KEY" {
			t.Fatalf("%s: rsa key is not PKCS #1 PEM", typ)
		}
		if _, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	edKey := unb64(t, e.export("signing-key/ed")["keys"].(map[string]any)["1"].(string))
	if len(edKey) != ed25519.PrivateKeySize {
		t.Fatalf("ed25519 key of %d bytes", len(edKey))
	}
	sig := e.write("sign/ed", map[string]any{"input": b64("m")}).Data["signature"].(string)
	if ed25519.Sign(ed25519.PrivateKey(edKey), []byte("m")) == nil || "vault:v1:"+base64.StdEncoding.EncodeToString(ed25519.Sign(ed25519.PrivateKey(edKey), []byte("m"))) != sig {
		t.Fatal("exported ed25519 key does not sign like the engine")
	}
	if k := unb64(t, e.export("encryption-key/aes")["keys"].(map[string]any)["1"].(string)); len(k) != 16 {
		t.Fatalf("aes128 key of %d bytes", len(k))
	}

	for range 3 {
		e.write("keys/aes/rotate", nil)
	}
	if keys := e.export("encryption-key/aes")["keys"].(map[string]any); len(keys) != 4 {
		t.Fatalf("all versions: %d", len(keys))
	}
	latest := e.export("encryption-key/aes/latest")["keys"].(map[string]any)
	if _, ok := latest["4"]; !ok || len(latest) != 1 {
		t.Fatalf("latest = %v", latest)
	}
	if keys := e.export("hmac-key/aes/v2")["keys"].(map[string]any); keys["2"] == nil {
		t.Fatalf("v2 = %v", keys)
	}
	e.fails(logical.ReadOperation, "export/encryption-key/aes/9", nil, logical.CodeInvalidRequest, "version does not exist")
	e.fails(logical.ReadOperation, "export/encryption-key/aes/x", nil, logical.CodeInvalidRequest, "invalid key version")
	e.write("keys/aes/config", map[string]any{"min_decryption_version": 3})
	e.fails(logical.ReadOperation, "export/encryption-key/aes/2", nil, logical.CodeInvalidRequest, "below minimum decryption version")
	if keys := e.export("encryption-key/aes")["keys"].(map[string]any); len(keys) != 2 {
		t.Fatalf("versions from min_decryption_version: %v", keys)
	}
}

func TestBackupRestore(t *testing.T) {
	e := newEnv(t)
	e.createKey("plain", nil)
	e.fails(logical.ReadOperation, "backup/plain", nil, logical.CodeInvalidRequest, "exporting is disallowed on the policy")
	e.write("keys/plain/config", map[string]any{"exportable": true})
	e.fails(logical.ReadOperation, "backup/plain", nil, logical.CodeInvalidRequest, "plaintext backup is disallowed on the policy")
	if resp := e.ok(logical.ReadOperation, "backup/missing", nil); resp != nil {
		t.Fatalf("backup of a missing key: %v", resp.Data)
	}

	e.createKey("k", map[string]any{"type": "aes256-gcm96", "exportable": true, "allow_plaintext_backup": true, "derived": true})
	ctx := map[string]any{"context": b64("c")}
	ct1 := e.encrypt("k", "one", ctx)
	e.write("keys/k/rotate", nil)
	ct2 := e.encrypt("k", "two", ctx)
	e.write("keys/k/config", map[string]any{"min_decryption_version": 2, "deletion_allowed": true})
	backup := e.ok(logical.ReadOperation, "backup/k", nil).Data["backup"].(string)
	if strings.Contains(backup, "vault:") {
		t.Fatal("odd backup")
	}
	// The backup itself does not change the live key.
	if d := wire(t, e.ok(logical.ReadOperation, "keys/k", nil)); d["backup_info"] != nil {
		t.Fatalf("backup wrote to the live key: %v", d["backup_info"])
	}

	// Restore under a new name (URL): same material, settings and versions.
	if resp := e.write("restore/copy", map[string]any{"backup": backup}); resp != nil {
		t.Fatalf("restore answered %v", resp.Data)
	}
	if got := e.decrypt("copy", ct2, ctx); got != "two" {
		t.Fatalf("restored key decrypts %q", got)
	}
	e.bad("decrypt/copy", map[string]any{"ciphertext": ct1, "context": b64("c")}, "too old")
	e.write("keys/copy/config", map[string]any{"min_decryption_version": 1})
	if got := e.decrypt("copy", ct1, ctx); got != "one" {
		t.Fatalf("restored v1: %q", got)
	}
	d := wire(t, e.ok(logical.ReadOperation, "keys/copy", nil))
	if d["derived"] != true || d["latest_version"] != 2.0 || d["backup_info"].(map[string]any)["version"] != 2.0 ||
		d["restore_info"].(map[string]any)["version"] != 2.0 || d["name"] != "copy" {
		t.Fatalf("restored key: %v", d)
	}

	// Restoring over an existing key needs force.
	e.bad("restore/copy", map[string]any{"backup": backup}, `key "copy" already exists`)
	e.bad("restore", map[string]any{"backup": backup}, `key "k" already exists`)
	e.ok(logical.DeleteOperation, "keys/k", nil)
	e.write("restore", map[string]any{"backup": backup}) // the backed-up name
	if got := e.decrypt("k", ct2, ctx); got != "two" {
		t.Fatalf("restored under its own name: %q", got)
	}
	e.write("keys/copy/rotate", nil)
	e.write("restore/copy", map[string]any{"backup": backup, "force": true})
	if d := wire(t, e.ok(logical.ReadOperation, "keys/copy", nil)); d["latest_version"] != 2.0 {
		t.Fatalf("forced restore did not replace the key: %v", d["latest_version"])
	}

	// Bad backups are 400s that quote nothing.
	e.bad("restore/x", nil, "'backup' must be supplied")
	e.bad("restore/x", map[string]any{"backup": "***"}, "invalid backup")
	e.bad("restore/x", map[string]any{"backup": b64(`{"policy":{"name":"x"},"archived_keys":{}}`)}, "not a Ward transit backup")
	doc := func(mut func(rec map[string]any)) string {
		var bd map[string]any
		raw, _ := base64.StdEncoding.DecodeString(backup)
		_ = json.Unmarshal(raw, &bd)
		rec := bd["policy"].(map[string]any)
		mut(rec)
		out, _ := json.Marshal(bd)
		return base64.StdEncoding.EncodeToString(out)
	}
	for _, c := range []struct {
		mut func(map[string]any)
		msg string
	}{
		{func(r map[string]any) { r["type"] = "rot13" }, "unknown key type"},
		{func(r map[string]any) { r["latest_version"] = 3 }, "must all be present"},
		{func(r map[string]any) { delete(r["keys"].(map[string]any), "1") }, "must all be present"},
		{func(r map[string]any) { r["keys"].(map[string]any)["1"].(map[string]any)["key"] = b64("short") }, "wrong length"},
		{func(r map[string]any) { r["allow_plaintext_backup"] = false }, "does not allow plaintext backup"},
		{func(r map[string]any) { r["kdf"] = "hmac-sha256-counter" }, "unsupported key derivation function"},
		{func(r map[string]any) { r["min_decryption_version"] = 7 }, "min_decryption_version out of range"},
		{func(r map[string]any) { r["name"] = "../etc" }, "invalid key name"},
		{func(r map[string]any) { r["keys"] = "nope" }, "not a Ward transit backup"},
	} {
		e.bad("restore", map[string]any{"backup": doc(c.mut), "force": true}, c.msg)
	}
	// An asymmetric key whose private key does not parse is refused at
	// restore, not at first use.
	e.createKey("ec", map[string]any{"type": "ecdsa-p256", "exportable": true, "allow_plaintext_backup": true})
	ecBackup := e.ok(logical.ReadOperation, "backup/ec", nil).Data["backup"].(string)
	raw, _ := base64.StdEncoding.DecodeString(ecBackup)
	var bd map[string]any
	_ = json.Unmarshal(raw, &bd)
	bd["policy"].(map[string]any)["keys"].(map[string]any)["1"].(map[string]any)["private_key"] = b64("garbage")
	out, _ := json.Marshal(bd)
	e.bad("restore/ec2", map[string]any{"backup": base64.StdEncoding.EncodeToString(out)}, "stored private key does not parse")
}
