package transit

import (
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func TestRandom(t *testing.T) {
	e := newEnv(t)
	size := func(path string, data map[string]any) int {
		t.Helper()
		s := e.write(path, data).Data["random_bytes"].(string)
		if data != nil && data["format"] == "hex" {
			b, err := hex.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			return len(b)
		}
		return len(unb64(t, s))
	}
	for _, c := range []struct {
		path string
		data map[string]any
		want int
	}{
		{"random", nil, 32},
		{"random", map[string]any{"bytes": 64}, 64},
		{"random/164", map[string]any{"format": "hex"}, 164},
		{"random/platform", nil, 32},
		{"random/all/16", nil, 16},
		{"random/seal/8", map[string]any{"format": "hex"}, 8},
		{"random", map[string]any{"bytes": maxRandomBytes}, maxRandomBytes},
	} {
		if got := size(c.path, c.data); got != c.want {
			t.Errorf("%s %v: %d bytes, want %d", c.path, c.data, got, c.want)
		}
	}
	if a, b := e.write("random", nil).Data["random_bytes"], e.write("random", nil).Data["random_bytes"]; a == b {
		t.Fatal("two random answers are equal")
	}
	e.bad("random/0", nil, "bytes must be positive")
	e.bad("random", map[string]any{"bytes": -1}, "bytes must be positive")
	e.bad("random", map[string]any{"bytes": maxRandomBytes + 1}, "bytes cannot be more than 131072")
	e.bad("random/lots", nil, "error parsing url-set byte count")
	e.bad("random/all/lots", nil, "error parsing url-set byte count")
	e.bad("random/dice/4", nil, `unsupported entropy source "dice"`)
	e.bad("random", map[string]any{"format": "binary"}, `unsupported encoding format "binary"`)
}

func TestHash(t *testing.T) {
	e := newEnv(t)
	input, _ := base64.StdEncoding.DecodeString("adba32==")
	s256, s512 := sha256.Sum256(input), sha512.Sum512(input)
	s3 := sha3.Sum384(input)
	for _, c := range []struct {
		path string
		data map[string]any
		want string
	}{
		{"hash", map[string]any{"input": "adba32=="}, hex.EncodeToString(s256[:])},
		{"hash/sha2-512", map[string]any{"input": "adba32=="}, hex.EncodeToString(s512[:])},
		{"hash", map[string]any{"input": "adba32==", "algorithm": "sha3-384", "format": "base64"}, base64.StdEncoding.EncodeToString(s3[:])},
	} {
		if got := e.write(c.path, c.data).Data["sum"]; got != c.want {
			t.Errorf("%s %v: %v, want %v", c.path, c.data, got, c.want)
		}
	}
	for _, alg := range []string{"sha2-224", "sha2-384", "sha3-224", "sha3-256", "sha3-512"} {
		e.write("hash/"+alg, map[string]any{"input": "adba32=="})
	}
	e.bad("hash", nil, "input missing")
	e.bad("hash", map[string]any{"input": "@@"}, "unable to decode input as base64")
	e.bad("hash/md5", map[string]any{"input": "adba32=="}, "unsupported algorithm md5")
	e.bad("hash", map[string]any{"input": "adba32==", "format": "raw"}, "unsupported encoding format raw")
}

func TestHelpAndSchema(t *testing.T) {
	e := newEnv(t)
	h := e.ok(logical.HelpOperation, "encrypt/k", nil).Data["help"].(string)
	if !strings.Contains(h, "plaintext") || !strings.Contains(h, "batch_input") {
		t.Fatalf("help: %s", h)
	}
	s := e.b.Schema()
	if len(s.Paths) != len(e.b.paths()) || s.Help == "" {
		t.Fatalf("schema of %d paths", len(s.Paths))
	}
	if e.b.Type() != logical.TypeSecret {
		t.Fatal("type")
	}
	if _, err := newBackend(nil, nil); err == nil {
		t.Fatal("nil config accepted")
	}
}

// Without a storage view on the request, the mount's view is used; with
// neither, handlers fail cleanly.
func TestStorageFallback(t *testing.T) {
	e := newEnv(t)
	resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "keys/k"})
	if err != nil || resp == nil {
		t.Fatalf("mount view: %v", err)
	}
	b, err := newBackend(&logical.BackendConfig{}, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/k", Data: map[string]any{"plaintext": ""}})
	if err == nil || logical.CodeOf(err) != logical.CodeInternal {
		t.Fatalf("no storage: %v", err)
	}
}
