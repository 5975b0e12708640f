package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

const (
	benchPolicies       = 1000
	benchRulesPerPolicy = 10
	benchCondTeam       = 500
	benchCondition      = `cidrContains("10.0.0.0/8", request.remote_addr) && token.meta["team"] == "500"`
)

// benchPolicySet generates 1,000 policies of 10 rules each (10,000 rules):
// exact, "*", "+" and "+"-then-"*" patterns, including 1,000 "+" patterns
// sharing one literal prefix (secret/data/+/team-N, the worst case for an
// index keyed by literal prefix). Team 500's secret/data rule is
// conditional.
func benchPolicySet(tb testing.TB) []*Policy {
	tb.Helper()
	ps := make([]*Policy, 0, benchPolicies)
	for i := range benchPolicies {
		var b strings.Builder
		fmt.Fprintf(&b, "path \"team-%d/app/*\" { capabilities = [\"read\", \"list\"] }\n", i)
		fmt.Fprintf(&b, "path \"team-%d/app/secret\" { capabilities = [\"deny\"] }\n", i)
		if i == benchCondTeam {
			fmt.Fprintf(&b, "path \"secret/data/team-%d/*\" {\n  capabilities = [\"read\", \"update\"]\n  condition = %q\n}\n", i, benchCondition)
		} else {
			fmt.Fprintf(&b, "path \"secret/data/team-%d/*\" { capabilities = [\"read\", \"update\"] }\n", i)
		}
		fmt.Fprintf(&b, "path \"secret/data/+/team-%d\" { capabilities = [\"read\"] }\n", i)
		fmt.Fprintf(&b, "path \"secret/metadata/team-%d/*\" { capabilities = [\"list\"] }\n", i)
		fmt.Fprintf(&b, "path \"kv/%d/+/+/x\" { capabilities = [\"update\"] }\n", i)
		fmt.Fprintf(&b, "path \"kv/%d/+/data/*\" { capabilities = [\"read\"] }\n", i)
		fmt.Fprintf(&b, "path \"auth/approle/role/team-%d\" {\n  capabilities = [\"update\"]\n  allowed_parameters = { \"token_ttl\" = [] \"policies\" = [\"team-%d\"] }\n}\n", i, i)
		fmt.Fprintf(&b, "path \"transit/encrypt/team-%d\" { capabilities = [\"update\"] }\n", i)
		fmt.Fprintf(&b, "path \"db/creds/team-%d-*\" { capabilities = [\"read\"] }\n", i)
		p, err := Parse(fmt.Sprintf("team-%d", i), b.String(), ParseOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		if len(p.Paths) != benchRulesPerPolicy {
			tb.Fatalf("%d rules", len(p.Paths))
		}
		ps = append(ps, p)
	}
	return ps
}

func BenchmarkAuthorize(b *testing.B) {
	a, err := NewACL(benchPolicySet(b))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	tok := TokenInfo{Policies: []string{"team-500"}, Meta: map[string]string{"team": "500", "username": "alice"}, TTL: time.Hour}
	for _, c := range []struct {
		name string
		in   Input
		want bool
	}{
		// The target case: a decision including one CEL evaluation.
		{"condition", Input{Path: "secret/data/team-500/app", Operation: logical.ReadOperation, RemoteAddr: "10.1.2.3", Token: tok, Now: now}, true},
		{"condition-false", Input{Path: "secret/data/team-500/app", Operation: logical.ReadOperation, RemoteAddr: "192.0.2.1", Token: tok, Now: now}, false},
		{"prefix", Input{Path: "team-123/app/config", Operation: logical.ReadOperation, Now: now}, true},
		{"exact-deny", Input{Path: "team-123/app/secret", Operation: logical.ReadOperation, Now: now}, false},
		{"shared-plus-prefix", Input{Path: "secret/data/x/team-999", Operation: logical.ReadOperation, Now: now}, true},
		{"plus-then-glob", Input{Path: "kv/777/a/data/b/c", Operation: logical.ReadOperation, Now: now}, true},
		{"parameters", Input{Path: "auth/approle/role/team-42", Operation: logical.UpdateOperation, Data: map[string]any{"token_ttl": "1h", "policies": "team-42"}, Now: now}, true},
		{"no-match", Input{Path: "nothing/here", Operation: logical.ReadOperation, Now: now}, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			in := c.in
			if d := a.Authorize(context.Background(), &in, false); d.Allowed != c.want {
				b.Fatalf("allowed=%v: %+v", d.Allowed, d)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				in := c.in
				a.Authorize(ctx, &in, false)
			}
		})
	}
}

func BenchmarkCondition(b *testing.B) {
	c, err := compileCondition(benchCondition, DefaultMaxConditionCost)
	if err != nil {
		b.Fatal(err)
	}
	in := &Input{Path: "secret/data/team-500/app", Operation: logical.ReadOperation, RemoteAddr: "10.1.2.3",
		Token: TokenInfo{Meta: map[string]string{"team": "500"}}}
	act := newActivation(in, time.Now().UTC())
	ctx := context.Background()
	if ok, err := c.eval(ctx, act); !ok || err != nil {
		b.Fatal(ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.eval(ctx, act)
	}
}

// BenchmarkNewACL measures compiling the 10,000-rule set: what the kernel
// pays per distinct policy set when it caches ACLs.
func BenchmarkNewACL(b *testing.B) {
	ps := benchPolicySet(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewACL(ps); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("default", DefaultPolicyText, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
