package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func mustPolicy(t testing.TB, name, text string) *Policy {
	t.Helper()
	p, err := Parse(name, text, ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return p
}

func mustNewACL(t testing.TB, ps ...*Policy) *ACL {
	t.Helper()
	a, err := NewACL(ps)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// condPolicy is a one-rule policy granting caps on pattern under cond.
func condPolicy(t testing.TB, pattern, caps, cond string) *Policy {
	t.Helper()
	return mustPolicy(t, "cond", fmt.Sprintf("path %q {\n  capabilities = [%s]\n  condition = %q\n}\n", pattern, caps, cond))
}

var ctx = context.Background()

func at(hour, minute int) time.Time {
	return time.Date(2026, 3, 4, hour, minute, 0, 0, time.UTC)
}

func TestConditionBusinessHours(t *testing.T) {
	// getHours() without a time zone argument is UTC (the CEL spec; Ward
	// also converts Now to UTC), so "business hours" here are UTC hours.
	a := mustNewACL(t, condPolicy(t, "bh/*", `"read"`, `now.getHours() >= 9 && now.getHours() < 17`))
	for _, c := range []struct {
		now  time.Time
		want bool
	}{
		{at(10, 0), true},
		{at(9, 0), true},
		{at(16, 59), true},
		{at(17, 0), false},
		{at(22, 0), false},
		{at(3, 30), false},
		// 10:00 at UTC+5 is 05:00 UTC: outside.
		{time.Date(2026, 3, 4, 10, 0, 0, 0, time.FixedZone("UTC+5", 5*3600)), false},
	} {
		d := a.Authorize(ctx, &Input{Path: "bh/x", Operation: logical.ReadOperation, Now: c.now}, false)
		if d.Allowed != c.want {
			t.Errorf("at %v: allowed=%v, want %v (%+v)", c.now, d.Allowed, c.want, d.Conditions)
		}
	}
	// A time zone argument: 10:00 UTC is 11:00 at +01:00.
	a = mustNewACL(t, condPolicy(t, "bh/*", `"read"`, `now.getHours("+01:00") == 11`))
	if !a.Authorize(ctx, &Input{Path: "bh/x", Operation: logical.ReadOperation, Now: at(10, 0)}, false).Allowed {
		t.Error("getHours with an offset")
	}
	// request.time is the same instant.
	a = mustNewACL(t, condPolicy(t, "bh/*", `"read"`, `request.time == now && request.time.getMinutes() == 42`))
	if !a.Authorize(ctx, &Input{Path: "bh/x", Operation: logical.ReadOperation, Now: at(10, 42)}, false).Allowed {
		t.Error("request.time")
	}
}

func TestConditionCIDR(t *testing.T) {
	// request.remote_addr is a bare IP; a host:port from the kernel has
	// its port stripped.
	a := mustNewACL(t, condPolicy(t, "net/*", `"read"`, `cidrContains("127.0.0.0/8", request.remote_addr)`))
	for addr, want := range map[string]bool{
		"127.0.0.1":        true,
		"127.255.0.9":      true,
		"127.0.0.1:51234":  true,
		"10.1.2.3":         false,
		"10.1.2.3:443":     false,
		"::ffff:127.0.0.1": true,
		"::1":              false,
		"":                 false,
		"not-an-ip":        false,
	} {
		d := a.Authorize(ctx, &Input{Path: "net/x", Operation: logical.ReadOperation, RemoteAddr: addr}, false)
		if d.Allowed != want {
			t.Errorf("remote %q: allowed=%v, want %v", addr, d.Allowed, want)
		}
	}
	for _, c := range []struct {
		cidr, ip string
		want     bool
	}{
		{"10.0.0.0/8", "10.1.2.3", true},
		{"2001:db8::/32", "2001:db8::1", true},
		{"2001:db8::/32", "2001:db9::1", false},
		{"10.0.0.0/33", "10.1.2.3", false},
		{"garbage", "10.1.2.3", false},
		{"10.0.0.0/8", "10.1.2.3:80", false},
		{"", "", false},
		{"fe80::/10", "fe80::1%eth0", true},
	} {
		if got := cidrContains(c.cidr, c.ip); got != c.want {
			t.Errorf("cidrContains(%q, %q) = %v", c.cidr, c.ip, got)
		}
	}
	// A malformed CIDR literal in a policy is false at run time, not an
	// error that might be mistaken for anything else.
	a = mustNewACL(t, condPolicy(t, "net/*", `"read"`, `cidrContains("300.0.0.0/8", request.remote_addr)`))
	d := a.Authorize(ctx, &Input{Path: "net/x", Operation: logical.ReadOperation, RemoteAddr: "127.0.0.1"}, false)
	if d.Allowed || len(d.Conditions) != 1 || d.Conditions[0].Err != "" {
		t.Errorf("malformed CIDR: %+v", d)
	}
}

func TestConditionPerUserPath(t *testing.T) {
	a := mustNewACL(t, condPolicy(t, "secret/data/*", `"read", "update"`,
		`request.path.startsWith("secret/data/" + token.meta.username + "/")`))
	alice := TokenInfo{Meta: map[string]string{"username": "alice"}}
	for _, c := range []struct {
		path string
		tok  TokenInfo
		want bool
	}{
		{"secret/data/alice/app", alice, true},
		{"secret/data/alice/", alice, true},
		{"secret/data/bob/app", alice, false},
		{"secret/data/alicex/app", alice, false},
		{"secret/data/alice", alice, false},
		{"secret/data/alice/app", TokenInfo{}, false}, // no username: error → deny
		{"secret/data//app", TokenInfo{Meta: map[string]string{"username": ""}}, true},
	} {
		d := a.Authorize(ctx, &Input{Path: c.path, Operation: logical.UpdateOperation, Token: c.tok}, false)
		if d.Allowed != c.want {
			t.Errorf("%s as %v: allowed=%v, want %v (%+v)", c.path, c.tok.Meta, d.Allowed, c.want, d.Conditions)
		}
	}
	d := a.Authorize(ctx, &Input{Path: "secret/data/alice/app", Operation: logical.ReadOperation}, false)
	if len(d.Conditions) != 1 || d.Conditions[0].Err != "no such key" || d.Conditions[0].Result {
		t.Errorf("missing meta key: %+v", d.Conditions)
	}
}

func TestConditionMetadataFlag(t *testing.T) {
	a := mustNewACL(t, condPolicy(t, "mfa/*", `"read"`, `token.meta["mfa"] == "true"`))
	for _, c := range []struct {
		meta map[string]string
		want bool
	}{
		{map[string]string{"mfa": "true"}, true},
		{map[string]string{"mfa": "false"}, false},
		{map[string]string{"other": "true"}, false},
		{map[string]string{}, false},
		{nil, false},
	} {
		d := a.Authorize(ctx, &Input{Path: "mfa/x", Operation: logical.ReadOperation, Token: TokenInfo{Meta: c.meta}}, false)
		if d.Allowed != c.want {
			t.Errorf("meta %v: allowed=%v, want %v (%+v)", c.meta, d.Allowed, c.want, d.Conditions)
		}
	}
	// The optional form avoids the error altogether.
	a = mustNewACL(t, condPolicy(t, "mfa/*", `"read"`, `token.meta[?"mfa"].orValue("") == "true"`))
	d := a.Authorize(ctx, &Input{Path: "mfa/x", Operation: logical.ReadOperation}, false)
	if d.Allowed || d.Conditions[0].Err != "" {
		t.Errorf("optional form: %+v", d)
	}
}

func TestConditionOtherVariables(t *testing.T) {
	created := at(8, 0)
	in := &Input{
		Path:      "v/x",
		Operation: logical.UpdateOperation,
		Data:      map[string]any{"count": 3, "tags": []any{"a", "b"}, "nested": map[string]any{"k": "v"}},
		Headers:   map[string][]string{"X-Ward-Team": {"ops"}},
		Token: TokenInfo{
			Policies: []string{"default", "ops"}, DisplayName: "token-ci", EntityID: "ent-1",
			TTL: 30 * time.Minute, CreationTime: created,
		},
		Mount: MountInfo{Path: "v/", Type: "kv", Accessor: "kv_123"},
		Now:   at(9, 0),
	}
	for _, cond := range []string{
		`request.operation == "update"`,
		`request.path == "v/x"`,
		`request.data.count == 3`,
		`"b" in request.data.tags`,
		`request.data.nested.k == "v"`,
		`request.headers["x-ward-team"][0] == "ops"`,
		`"ops" in token.policies`,
		`token.display_name == "token-ci" && token.entity_id == "ent-1"`,
		`token.ttl <= duration("1h")`,
		`now - token.creation_time == duration("1h")`,
		`mount.path == "v/" && mount.type == "kv" && mount.accessor.startsWith("kv_")`,
		`request.path.lowerAscii().split("/").size() == 2`,
		`has(request.data.count) && !has(request.data.missing)`,
	} {
		a := mustNewACL(t, condPolicy(t, "v/*", `"update"`, cond))
		d := a.Authorize(ctx, in, false)
		if !d.Allowed {
			t.Errorf("%s: denied (%+v)", cond, d.Conditions)
		}
	}
}

func TestConditionParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, cond, want string
	}{
		{"syntax", `request.path.startsWith(`, "condition:1:"},
		{"non-bool", `request.path`, "must evaluate to bool, not string"},
		{"dyn", `request.data.flag`, "must evaluate to bool, not dyn"},
		{"unknown field", `request.pth == "x"`, "undefined field 'pth'"},
		{"unknown variable", `user.name == "x"`, "undeclared reference to 'user'"},
		{"type error", `request.path + 1 == "x"`, "no matching overload"},
		{"ttl is a duration", `token.ttl > 5`, "no matching overload"},
		{"too expensive", `request.data.all(a, request.data.all(b, request.data.all(c, a + b + c != "")))`, "exceeds the limit"},
		{"too long", strings.Repeat("true && ", 2000) + "true", "condition"},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := "# comment\npath \"x/*\" {\n  capabilities = [\"read\"]\n  condition = " + fmt.Sprintf("%q", c.cond) + "\n}\n"
			_, err := Parse("p", text, ParseOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("not ErrInvalidPolicy: %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != 4 {
				t.Errorf("want line 4: %#v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
	// The estimate is configurable.
	cond := `request.data.all(a, request.data.all(b, a != b))`
	text := fmt.Sprintf("path \"x\" {\n capabilities = [\"read\"]\n condition = %q\n}", cond)
	if _, err := Parse("p", text, ParseOptions{}); err == nil {
		t.Error("nested comprehension accepted at the default limit")
	}
	if _, err := Parse("p", text, ParseOptions{MaxConditionCost: 1 << 30}); err != nil {
		t.Errorf("raised limit: %v", err)
	}
	// And a cached expression is re-checked against a lower limit.
	if _, err := Parse("p", text, ParseOptions{}); err == nil {
		t.Error("cached expression skipped the cost check")
	}
}

func TestConditionEvalErrorsDeny(t *testing.T) {
	a := mustNewACL(t, condPolicy(t, "e/*", `"update"`, `int(request.data.n) / int(request.data.d) > 0`))
	in := func(d any) *Input {
		return &Input{Path: "e/x", Operation: logical.UpdateOperation, Data: map[string]any{"n": 10, "d": d}}
	}
	if d := a.Authorize(ctx, in(2), false); !d.Allowed {
		t.Fatalf("10/2: %+v", d)
	}
	d := a.Authorize(ctx, in(0), false)
	if d.Allowed || d.Conditions[0].Err != "division by zero" {
		t.Errorf("10/0: %+v", d)
	}
	d = a.Authorize(ctx, in("secret-value"), false)
	if d.Allowed || d.Conditions[0].Err == "" || strings.Contains(fmt.Sprint(d), "secret-value") {
		t.Errorf("bad conversion: %+v", d)
	}
	d = a.Authorize(ctx, &Input{Path: "e/x", Operation: logical.UpdateOperation}, false)
	if d.Allowed || d.Conditions[0].Err != "no such key" {
		t.Errorf("no data: %+v", d)
	}
}

func TestConditionRuntimeLimits(t *testing.T) {
	// Estimated with at most 128 data entries, this passes Parse; with
	// 100,000 entries it exceeds the runtime cost limit and denies.
	a := mustNewACL(t, condPolicy(t, "big/*", `"update"`, `request.data.all(k, k != "")`))
	small := map[string]any{"a": 1}
	if !a.Authorize(ctx, &Input{Path: "big/x", Operation: logical.UpdateOperation, Data: small}, false).Allowed {
		t.Fatal("small data denied")
	}
	huge := make(map[string]any, 100_000)
	for i := range 100_000 {
		huge[fmt.Sprint("k", i)] = i
	}
	d := a.Authorize(ctx, &Input{Path: "big/x", Operation: logical.UpdateOperation, Data: huge}, false)
	if d.Allowed || d.Conditions[0].Err != "cost limit exceeded" {
		t.Errorf("huge data: %+v", d.Conditions)
	}

	// A cancelled context interrupts a comprehension.
	mid := make(map[string]any, 1000)
	for i := range 1000 {
		mid[fmt.Sprint("k", i)] = i
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	d = a.Authorize(cctx, &Input{Path: "big/x", Operation: logical.UpdateOperation, Data: mid}, false)
	if d.Allowed || d.Conditions[0].Err != "evaluation interrupted" {
		t.Errorf("cancelled: %+v", d.Conditions)
	}
}

// TestConditionPrecedence pins down how conditions interact with pattern
// precedence (doc.go, "Conditions"): the most precise matching pattern
// decides whatever the conditions say; at that pattern the capabilities are
// the union of the unconditional rules and the conditional rules that hold.
func TestConditionPrecedence(t *testing.T) {
	mfa := TokenInfo{Meta: map[string]string{"mfa": "true"}}
	none := TokenInfo{}
	type check struct {
		path string
		op   logical.Operation
		tok  TokenInfo
		addr string
		data map[string]any
		want bool
	}
	run := func(t *testing.T, a *ACL, checks []check) {
		t.Helper()
		for _, c := range checks {
			d := a.Authorize(ctx, &Input{Path: c.path, Operation: c.op, Token: c.tok, RemoteAddr: c.addr, Data: c.data}, false)
			if d.Allowed != c.want {
				t.Errorf("%s %s meta=%v addr=%q data=%v: allowed=%v, want %v (pattern %q, caps %v, %s, %+v)",
					c.op, c.path, c.tok.Meta, c.addr, c.data, d.Allowed, c.want, d.Pattern, d.Capabilities, d.DeniedReason, d.Conditions)
			}
		}
	}

	t.Run("conditional specific pattern shadows the broader one", func(t *testing.T) {
		// No fall back to ov/* when the ov/admin/* condition is false:
		// the more precise rule decides, deny by default.
		p := mustPolicy(t, "p", `
path "ov/*" { capabilities = ["read"] }
path "ov/admin/*" {
  capabilities = ["read", "update"]
  condition = "token.meta[\"mfa\"] == \"true\""
}`)
		run(t, mustNewACL(t, p), []check{
			{"ov/other", logical.ReadOperation, none, "", nil, true},
			{"ov/admin/x", logical.ReadOperation, none, "", nil, false},
			{"ov/admin/x", logical.UpdateOperation, none, "", nil, false},
			{"ov/admin/x", logical.ReadOperation, mfa, "", nil, true},
			{"ov/admin/x", logical.UpdateOperation, mfa, "", nil, true},
			{"ov/other", logical.UpdateOperation, mfa, "", nil, false},
		})
	})

	t.Run("conditional narrowing never widens to the broader grant", func(t *testing.T) {
		// The author narrowed prod to reads from the 10/8 network; from
		// elsewhere prod gets nothing, not the broad read/update of ov2/*.
		p := mustPolicy(t, "p", `
path "ov2/*" { capabilities = ["read", "update"] }
path "ov2/prod/*" {
  capabilities = ["read"]
  condition = "cidrContains(\"10.0.0.0/8\", request.remote_addr)"
}`)
		run(t, mustNewACL(t, p), []check{
			{"ov2/prod/db", logical.ReadOperation, none, "10.0.0.1", nil, true},
			{"ov2/prod/db", logical.UpdateOperation, none, "10.0.0.1", nil, false},
			{"ov2/prod/db", logical.ReadOperation, none, "192.0.2.1", nil, false},
			{"ov2/prod/db", logical.UpdateOperation, none, "192.0.2.1", nil, false},
			{"ov2/dev/db", logical.UpdateOperation, none, "192.0.2.1", nil, true},
		})
	})

	t.Run("same pattern: unconditional plus conditional union", func(t *testing.T) {
		p := mustPolicy(t, "p", `
path "same/*" { capabilities = ["read"] }
path "same/*" {
  capabilities = ["update"]
  condition = "token.meta[\"mfa\"] == \"true\""
}`)
		run(t, mustNewACL(t, p), []check{
			{"same/x", logical.ReadOperation, none, "", nil, true},
			{"same/x", logical.UpdateOperation, none, "", nil, false},
			{"same/x", logical.ReadOperation, mfa, "", nil, true},
			{"same/x", logical.UpdateOperation, mfa, "", nil, true},
		})
	})

	t.Run("conditional rules across policies union when they hold", func(t *testing.T) {
		p1 := condPolicy(t, "u/*", `"read"`, `cidrContains("10.0.0.0/8", request.remote_addr)`)
		p2 := condPolicy(t, "u/*", `"update"`, `token.meta["mfa"] == "true"`)
		run(t, mustNewACL(t, p1, p2), []check{
			{"u/x", logical.ReadOperation, none, "10.1.1.1", nil, true},
			{"u/x", logical.UpdateOperation, none, "10.1.1.1", nil, false},
			{"u/x", logical.UpdateOperation, mfa, "192.0.2.1", nil, true},
			{"u/x", logical.ReadOperation, mfa, "192.0.2.1", nil, false},
			{"u/x", logical.ReadOperation, none, "192.0.2.1", nil, false},
		})
	})

	t.Run("conditional deny applies when it holds and when it errors", func(t *testing.T) {
		p := mustPolicy(t, "p", `
path "cd/*" { capabilities = ["read", "update"] }
path "cd/*" {
  capabilities = ["deny"]
  condition = "!cidrContains(\"10.0.0.0/8\", request.remote_addr) || request.data.force == true"
}`)
		run(t, mustNewACL(t, p), []check{
			{"cd/x", logical.ReadOperation, none, "10.0.0.1", map[string]any{"force": false}, true},
			{"cd/x", logical.ReadOperation, none, "192.0.2.1", map[string]any{"force": false}, false},
			{"cd/x", logical.UpdateOperation, none, "10.0.0.1", map[string]any{"force": true}, false},
			// request.data.force missing: the deny's condition errors,
			// and an erroring restriction applies.
			{"cd/x", logical.ReadOperation, none, "10.0.0.1", nil, false},
		})
	})

	t.Run("conditional parameter restriction without capabilities", func(t *testing.T) {
		p := mustPolicy(t, "p", `
path "cp/*" { capabilities = ["update"] }
path "cp/*" {
  denied_parameters = { "role" = ["admin"] }
  condition = "token.meta.tier != \"gold\""
}`)
		gold := TokenInfo{Meta: map[string]string{"tier": "gold"}}
		silver := TokenInfo{Meta: map[string]string{"tier": "silver"}}
		admin := map[string]any{"role": "admin"}
		run(t, mustNewACL(t, p), []check{
			{"cp/x", logical.UpdateOperation, gold, "", admin, true},
			{"cp/x", logical.UpdateOperation, silver, "", admin, false},
			{"cp/x", logical.UpdateOperation, none, "", admin, false}, // error → restriction applies
			{"cp/x", logical.UpdateOperation, silver, "", map[string]any{"role": "dev"}, true},
		})
	})

	t.Run("a conditional grant's parameters apply only with it", func(t *testing.T) {
		p := mustPolicy(t, "p", `
path "gp/*" {
  capabilities = ["update"]
  allowed_parameters = { "size" = ["small"] }
  condition = "token.meta[\"mfa\"] == \"true\""
}`)
		run(t, mustNewACL(t, p), []check{
			{"gp/x", logical.UpdateOperation, mfa, "", map[string]any{"size": "small"}, true},
			{"gp/x", logical.UpdateOperation, mfa, "", map[string]any{"size": "large"}, false},
			{"gp/x", logical.UpdateOperation, none, "", map[string]any{"size": "small"}, false},
		})
	})

	t.Run("unconditional deny beats a holding conditional grant", func(t *testing.T) {
		p1 := mustPolicy(t, "p1", `path "dd/x" { capabilities = ["deny"] }`)
		p2 := condPolicy(t, "dd/x", `"read"`, `true`)
		run(t, mustNewACL(t, p1, p2), []check{{"dd/x", logical.ReadOperation, mfa, "", nil, false}})
	})
}

func TestConditionRootBypassAndAudit(t *testing.T) {
	p := condPolicy(t, "rb/*", `"read"`, `false`)
	a := mustNewACL(t, p, Root())
	d := a.Authorize(ctx, &Input{Path: "rb/x", Operation: logical.DeleteOperation}, true)
	if !d.Allowed || !d.IsRoot || !d.RootPrivs || len(d.Conditions) != 0 {
		t.Errorf("root: %+v", d)
	}

	p2 := mustPolicy(t, "audit", `
path "au/*" { capabilities = ["list"] }
path "au/*" {
  capabilities = ["read"]
  condition = "request.operation == \"read\""
}`)
	a = mustNewACL(t, p2)
	d = a.Authorize(ctx, &Input{Path: "au/x", Operation: logical.ReadOperation}, false)
	want := []ConditionResult{{Policy: "audit", Pattern: "au/*", Expression: `request.operation == "read"`, Result: true}}
	if !d.Allowed || fmt.Sprint(d.Conditions) != fmt.Sprint(want) || d.Pattern != "au/*" ||
		strings.Join(d.Capabilities, ",") != "list,read" {
		t.Errorf("decision: %+v", d)
	}
	d = a.Authorize(ctx, &Input{Path: "au/x", Operation: logical.UpdateOperation}, false)
	if d.Allowed || d.Conditions[0].Result || strings.Join(d.Capabilities, ",") != "list" || d.DeniedReason == "" {
		t.Errorf("decision: %+v", d)
	}

	// Capabilities evaluates conditions against the input.
	if got := a.Capabilities(ctx, &Input{Path: "au/x", Operation: logical.ReadOperation}); strings.Join(got, ",") != "list,read" {
		t.Errorf("capabilities for a read: %v", got)
	}
	if got := a.Capabilities(ctx, &Input{Path: "au/x"}); strings.Join(got, ",") != "list" {
		t.Errorf("capabilities: %v", got)
	}
	a = mustNewACL(t, condPolicy(t, "cc/*", `"read"`, `false`))
	if got := a.Capabilities(ctx, &Input{Path: "cc/x"}); strings.Join(got, ",") != "deny" {
		t.Errorf("capabilities with a false condition: %v", got)
	}
}

func TestConditionCache(t *testing.T) {
	const cond = `request.path.endsWith("/cached") && now.getDayOfWeek() >= 0`
	p1 := condPolicy(t, "a/*", `"read"`, cond)
	p2 := condPolicy(t, "b/*", `"update"`, cond)
	if p1.Paths[0].cond == nil || p1.Paths[0].cond != p2.Paths[0].cond {
		t.Error("identical expressions compiled twice")
	}
}

func TestConditionConcurrent(t *testing.T) {
	a := mustNewACL(t, condPolicy(t, "cc/*", `"read"`, `token.meta["n"] == request.path.substring(3)`))
	done := make(chan bool)
	for g := range 8 {
		go func() {
			ok := true
			for i := range 500 {
				n := fmt.Sprint(g*1000 + i)
				d := a.Authorize(ctx, &Input{Path: "cc/" + n, Operation: logical.ReadOperation, Token: TokenInfo{Meta: map[string]string{"n": n}}}, false)
				bad := a.Authorize(ctx, &Input{Path: "cc/" + n, Operation: logical.ReadOperation, Token: TokenInfo{Meta: map[string]string{"n": "x"}}}, false)
				ok = ok && d.Allowed && !bad.Allowed
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("wrong decision under concurrency")
		}
	}
}
