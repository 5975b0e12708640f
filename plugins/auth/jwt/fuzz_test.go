package jwt

import (
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardproject/ward/sdk/logical"
)

// FuzzLogin feeds arbitrary strings as the JWT: the answer must be a
// success for the one valid token or the generic refusal, never a panic
// or another error.
func FuzzLogin(f *testing.F) {
	e := newEnv(f)
	e.configurePEM(nil, rsaKey.Public(), ecKey.Public())
	e.role("r", map[string]any{"bound_claims": map[string]any{"/a/0/b": "x"}, "groups_claim": "/g", "claim_mappings": map[string]any{"/m/n": "n"}})
	good := sign(f, ecKey, jose.ES256, "", e.claims(map[string]any{"a": []any{map[string]any{"b": "x"}}, "g": []any{"1"}}))
	f.Add(good)
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJFUzI1NiJ9.bnVsbA.AAAA")
	f.Add("")
	f.Add("....")
	f.Fuzz(func(t *testing.T, tok string) {
		resp, err := e.do(logical.UpdateOperation, "login", map[string]any{"role": "r", "jwt": tok})
		switch {
		case err == nil:
			if resp == nil || resp.Auth == nil || resp.Auth.DisplayName != "alice" {
				t.Fatalf("success without the expected Auth: %+v", resp)
			}
		case tok == "":
			if logical.CodeOf(err) != logical.CodeInvalidRequest {
				t.Fatalf("empty jwt: %v", err)
			}
		case !errors.Is(err, errLoginRefused):
			t.Fatalf("unexpected error %v", err)
		}
	})
}
