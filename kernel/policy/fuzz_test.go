package policy

import (
	"context"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// FuzzParse feeds arbitrary text to Parse (policies come from API clients)
// and exercises whatever it accepts. Nothing may panic.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		DefaultPolicyText,
		`path "secret/+/data/*" { capabilities = ["read", "list"] }`,
		`path "a" { policy = "write" }`,
		`path "a" { capabilities = ["update"] allowed_parameters = { "*" = [] "x" = ["a*", 1, true] } denied_parameters = { "y" = [] } required_parameters = ["z"] }`,
		`path "a/*" { capabilities = ["read"] min_wrapping_ttl = "1m" max_wrapping_ttl = 3600 }`,
		`path "c/*" { capabilities = ["read"] condition = "cidrContains(\"10.0.0.0/8\", request.remote_addr) && now.getHours() < 17" }`,
		`path "c/*" { capabilities = ["read"] condition = <<EOT
request.path.startsWith("c/" + token.meta.username)
EOT
}`,
		`{"path": {"j/*": {"capabilities": ["read"], "allowed_parameters": {"a": ["x"]}}}}`,
		`{"path": [{"a": {"capabilities": ["deny"]}}]}`,
		`path "" {}`,
		`path "*" { capabilities = ["deny"] }`,
	} {
		f.Add(seed)
	}
	paths := []string{"", "a", "a/", "a/b", "secret/x/data/y", "c/u", "j/k", "sys/tools/hash", "+", "*"}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse("fuzz", text, ParseOptions{})
		if err != nil {
			if p != nil {
				t.Fatal("policy and error")
			}
			return
		}
		a, err := NewACL([]*Policy{p, Default()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, path := range paths {
			for _, op := range []logical.Operation{logical.ReadOperation, logical.ListOperation, logical.UpdateOperation} {
				in := &Input{
					Path: path, Operation: op, Data: map[string]any{"x": "a1", "y": []any{1, "b"}},
					RemoteAddr: "10.0.0.1", Token: TokenInfo{Meta: map[string]string{"username": "u"}},
				}
				d := a.Authorize(ctx, in, op == logical.UpdateOperation)
				if d.Allowed && d.DeniedReason != "" {
					t.Fatalf("allowed with a reason: %+v", d)
				}
				_ = a.Capabilities(ctx, in)
			}
		}
	})
}
