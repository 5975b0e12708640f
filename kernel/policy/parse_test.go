package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"bad HCL", "path \"a\" {\n  capabilities = [\"read\"]\n", 3, ""},
		{"bad HCL value", "path \"a\" {\n  capabilities = [\"read\" = ]\n}", 2, ""},
		{"unknown capability", "path \"a\" {\n  capabilities = [\"read\", \"rwx\"]\n}", 2, `invalid capability "rwx"`},
		{"subscribe unsupported", "path \"a\" {\n  capabilities = [\"subscribe\"]\n}", 2, `invalid capability "subscribe"`},
		{"glob in the middle", "\npath \"secret/*/x\" {\n  capabilities = [\"read\"]\n}", 2, "invalid glob"},
		{"double glob", "path \"secret/**\" { capabilities = [\"read\"] }", 1, "invalid glob"},
		{"plus glob", "path \"secret/+*\" { capabilities = [\"read\"] }", 1, `"+*" is forbidden`},
		{"unknown key in path", "path \"a\" {\n  capabilities = [\"read\"]\n  capabilites = [\"list\"]\n}", 3, `invalid key "capabilites"`},
		{"control_group rejected", "path \"a\" {\n  capabilities = [\"read\"]\n  control_group = {}\n}", 3, `invalid key "control_group"`},
		{"mfa_methods rejected", "path \"a\" {\n  mfa_methods = [\"x\"]\n}", 2, `invalid key "mfa_methods"`},
		{"unknown top-level key", "path \"a\" { capabilities = [\"read\"] }\n\npaths \"b\" {}", 3, `invalid key "paths"`},
		{"no pattern", "path { capabilities = [\"read\"] }", 1, "exactly one pattern"},
		{"two patterns", "path \"a\" \"b\" { capabilities = [\"read\"] }", 1, "exactly one pattern"},
		{"not a block", "path \"a\" = 3", 1, ""},
		{"bad duration", "path \"a\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"soon\"\n}", 3, `min_wrapping_ttl: invalid duration "soon"`},
		{"negative duration", "path \"a\" {\n  max_wrapping_ttl = \"-5m\"\n}", 2, "negative"},
		{"max below min", "path \"a\" {\n  min_wrapping_ttl = \"1h\"\n  max_wrapping_ttl = \"1m\"\n}", 3, "cannot be less than"},
		{"bad legacy policy", "path \"a\" {\n  policy = \"admin\"\n}", 2, `invalid policy "admin"`},
		{"empty condition", "path \"a\" {\n  capabilities = [\"read\"]\n  condition = \"  \"\n}", 3, "condition is empty"},
		{"duplicate attribute", "path \"a\" {\n  capabilities = [\"read\"]\n  capabilities = [\"list\"]\n}", 0, "already set"},
		{"wrong type", "path \"a\" {\n  capabilities = \"read\"\n}", 2, ""},
		{"json booleans in parameter lists", `{"path": {"a": {"capabilities": ["update"], "denied_parameters": {"force": ["x", true]}}}}`, 0, "booleans"},
		{"json unknown key", `{"path": {"a": {"capabilities": ["read"], "capabilites": ["list"]}}}`, 0, `invalid key "capabilites"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("p", c.text, ParseOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("not ErrInvalidPolicy: %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("not a *ParseError: %T", err)
			}
			if c.line != 0 && pe.Line != c.line {
				t.Errorf("line %d, want %d: %v", pe.Line, c.line, err)
			}
			if c.line != 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d", c.line)) {
				t.Errorf("error does not name line %d: %v", c.line, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	p, err := Parse(" Ops-Team ", `
name = "ignored"
path "/secret/data/*" {
  comment = "leading slash stripped"
  capabilities = ["read", "list"]
  allowed_parameters = { "Version" = [1, "latest"] }
  denied_parameters = { "force" = [] }
  required_parameters = ["version"]
  min_wrapping_ttl = 60
  max_wrapping_ttl = "2d"
}
path "sys/x" {
  capabilities = ["read", "deny", "update"]
  allowed_parameters = { "a" = [] }
}
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
`, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "ops-team" || !p.Templated || len(p.Paths) != 3 {
		t.Fatalf("%+v", p)
	}
	r := p.Paths[0]
	want := &PathRules{
		Pattern: "secret/data/*", Line: 3,
		Capabilities:       []string{"read", "list"},
		AllowedParameters:  map[string][]any{"version": {1, "latest"}},
		DeniedParameters:   map[string][]any{"force": {}},
		RequiredParameters: []string{"version"},
		MinWrappingTTL:     time.Minute,
		MaxWrappingTTL:     48 * time.Hour,
	}
	if r.Pattern != want.Pattern || r.Line != want.Line || !reflect.DeepEqual(r.Capabilities, want.Capabilities) ||
		!reflect.DeepEqual(r.AllowedParameters, want.AllowedParameters) || !reflect.DeepEqual(r.DeniedParameters, want.DeniedParameters) ||
		!reflect.DeepEqual(r.RequiredParameters, want.RequiredParameters) || r.MinWrappingTTL != want.MinWrappingTTL ||
		r.MaxWrappingTTL != want.MaxWrappingTTL {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if got := p.Paths[1].Capabilities; !reflect.DeepEqual(got, []string{"deny"}) {
		t.Errorf("deny block capabilities: %v", got)
	}
	if !p.Paths[2].Templated {
		t.Error("templated path not flagged")
	}
	// A templated rule matches nothing, not even its literal text.
	a := mustNewACL(t, p)
	if a.Allowed("identity/entity/id/{{identity.entity.id}}", logical.ReadOperation, false) {
		t.Error("templated rule matched literally")
	}

	// An empty policy is valid and grants nothing.
	e, err := Parse("empty", "# nothing\n", ParseOptions{})
	if err != nil || len(e.Paths) != 0 {
		t.Fatalf("empty policy: %v %+v", err, e)
	}
}

func TestParseDurations(t *testing.T) {
	for in, want := range map[any]time.Duration{
		nil: 0, "": 0, 90: 90 * time.Second, 1.5: 1500 * time.Millisecond, "90": 90 * time.Second,
		"1h30m": 90 * time.Minute, "3d": 72 * time.Hour, "250ms": 250 * time.Millisecond,
	} {
		got, err := parseDurationSecond(in)
		if err != nil || got != want {
			t.Errorf("parseDurationSecond(%v) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []any{"x", "1x", "-1", -3, "d", "1.5d", true, 1e30} {
		if _, err := parseDurationSecond(in); err == nil {
			t.Errorf("parseDurationSecond(%v): no error", in)
		}
	}
}

// TestJSONEquivalence parses the same policy in HCL and in JSON and checks
// the rules and the decisions are the same.
func TestJSONEquivalence(t *testing.T) {
	hclText := `
path "eq/*" {
  capabilities = ["read", "list"]
}
path "eq/+/cfg" {
  capabilities = ["update", "sudo"]
  allowed_parameters = {
    "mode" = ["fast", "sl*"]
    "tags" = []
  }
  denied_parameters = {
    "mode" = ["slowest"]
  }
  required_parameters = ["mode"]
  max_wrapping_ttl = "1h"
}
path "eq/deny" {
  capabilities = ["deny"]
}
path "eq/cond" {
  capabilities = ["read"]
  condition = "request.remote_addr == \"127.0.0.1\""
}
path "eq/legacy/*" {
  policy = "write"
}
`
	jsonText := `{
  "path": {
    "eq/*": {"capabilities": ["read", "list"]},
    "eq/+/cfg": {
      "capabilities": ["update", "sudo"],
      "allowed_parameters": {"mode": ["fast", "sl*"], "tags": []},
      "denied_parameters": {"mode": ["slowest"]},
      "required_parameters": ["mode"],
      "max_wrapping_ttl": "1h"
    },
    "eq/deny": {"capabilities": ["deny"]},
    "eq/cond": {"capabilities": ["read"], "condition": "request.remote_addr == \"127.0.0.1\""},
    "eq/legacy/*": {"policy": "write"}
  }
}`
	ph := mustPolicy(t, "h", hclText)
	pj := mustPolicy(t, "j", jsonText)
	if len(ph.Paths) != len(pj.Paths) {
		t.Fatalf("%d paths in HCL, %d in JSON", len(ph.Paths), len(pj.Paths))
	}
	byPattern := map[string]*PathRules{}
	for _, r := range pj.Paths {
		byPattern[r.Pattern] = r
	}
	for _, h := range ph.Paths {
		j := byPattern[h.Pattern]
		if j == nil {
			t.Errorf("JSON lacks %q", h.Pattern)
			continue
		}
		if !reflect.DeepEqual(h.Capabilities, j.Capabilities) || !reflect.DeepEqual(h.AllowedParameters, j.AllowedParameters) ||
			!reflect.DeepEqual(h.DeniedParameters, j.DeniedParameters) || !reflect.DeepEqual(h.RequiredParameters, j.RequiredParameters) ||
			h.MinWrappingTTL != j.MinWrappingTTL || h.MaxWrappingTTL != j.MaxWrappingTTL || h.Condition != j.Condition || h.perms.caps != j.perms.caps {
			t.Errorf("%q differs:\nHCL  %+v\nJSON %+v", h.Pattern, h, j)
		}
	}

	ah, aj := mustNewACL(t, ph), mustNewACL(t, pj)
	inputs := []*Input{
		{Path: "eq/x", Operation: logical.ReadOperation},
		{Path: "eq/", Operation: logical.ListOperation},
		{Path: "eq/deny", Operation: logical.ReadOperation},
		{Path: "eq/a/cfg", Operation: logical.UpdateOperation, Data: map[string]any{"mode": "slow"}, WrapTTL: time.Minute},
		{Path: "eq/a/cfg", Operation: logical.UpdateOperation, Data: map[string]any{"mode": "slowest"}, WrapTTL: time.Minute},
		{Path: "eq/a/cfg", Operation: logical.UpdateOperation, Data: map[string]any{"tags": "x"}, WrapTTL: time.Minute},
		{Path: "eq/cond", Operation: logical.ReadOperation, RemoteAddr: "127.0.0.1"},
		{Path: "eq/cond", Operation: logical.ReadOperation, RemoteAddr: "127.0.0.2"},
		{Path: "eq/legacy/x", Operation: logical.DeleteOperation},
	}
	for _, in := range inputs {
		dh, dj := ah.Authorize(context.Background(), in, false), aj.Authorize(context.Background(), in, false)
		if dh.Allowed != dj.Allowed || !reflect.DeepEqual(dh.Capabilities, dj.Capabilities) {
			t.Errorf("%s %s: HCL %+v, JSON %+v", in.Operation, in.Path, dh, dj)
		}
	}
}

func TestNames(t *testing.T) {
	for name, want := range map[string]bool{
		"root": true, " Root ": true, "response-wrapping": true, "control-group": true,
		"default": false, "ops": false, "": false,
	} {
		if got := IsReservedName(name); got != want {
			t.Errorf("IsReservedName(%q) = %v", name, got)
		}
	}
	if Root().Name != "root" || Default().Name != "default" || len(Default().Paths) == 0 {
		t.Error("built-in policies")
	}
	if a := mustNewACL(t, Root()); !a.IsRoot() {
		t.Error("root policy does not make a root ACL")
	}
	if got := mustNewACL(t, Default()).Capabilities(context.Background(), &Input{Path: "sys/tools/hash/sha2-256"}); !reflect.DeepEqual(got, []string{"update"}) {
		t.Errorf("default caps: %v", got)
	}
}

func TestAuthorizeEdges(t *testing.T) {
	var nilACL *ACL
	if nilACL.Authorize(context.Background(), &Input{Path: "x", Operation: logical.ReadOperation}, false).Allowed || nilACL.IsRoot() {
		t.Error("nil ACL allows")
	}
	a := mustNewACL(t, mustPolicy(t, "p", `path "*" { capabilities = ["read", "update", "list"] }`))
	if a.Authorize(context.Background(), nil, false).Allowed {
		t.Error("nil input allowed")
	}
	if d := a.Authorize(context.Background(), &Input{Path: "x", Operation: "rollback"}, false); d.Allowed || d.DeniedReason != "unsupported operation" {
		t.Errorf("unknown operation: %+v", d)
	}
	if !a.Allowed("//x", logical.ReadOperation, false) || !a.Allowed("", logical.ListOperation, false) {
		t.Error("leading slashes / empty path")
	}
	if got := a.Capabilities(context.Background(), nil); !reflect.DeepEqual(got, []string{"deny"}) {
		t.Errorf("nil input caps: %v", got)
	}
	d := a.Authorize(context.Background(), &Input{Path: "x", Operation: logical.DeleteOperation}, false)
	if d.Allowed || d.DeniedReason != "the delete capability is not granted" || d.Pattern != "*" {
		t.Errorf("%+v", d)
	}
}

func TestHasAccessUnder(t *testing.T) {
	p := mustPolicy(t, "p", `
path "secret/data/app/*" { capabilities = ["read"] }
path "+/shared/*" { capabilities = ["list"] }
path "kv/+" { capabilities = ["read"] }
path "exact" { capabilities = ["read"] }
path "other/+/x" { capabilities = ["update"] }
path "team/+" { capabilities = ["read"] }
path "pre/+/ab*" { capabilities = ["read"] }
path "denied/*" { capabilities = ["deny"] }
path "denied/deeper/x" { capabilities = ["deny"] }
path "cond/*" {
  capabilities = ["read"]
  condition = "false"
}
path "sec*" { capabilities = ["read"] }
`)
	a := mustNewACL(t, p)
	for path, want := range map[string]bool{
		"secret/":       true, // exact/prefix rules below
		"secret":        true, // the slash is added
		"secret/data/":  true,
		"anything/":     true, // +/shared/*
		"kv/":           true, // kv/+
		"exact/":        true, // the rule for the mount path without its slash
		"other/a/":      true, // other/+/x
		"other/":        true,
		"team/kv/":      true, // team/+ matches "team/kv" (Vault counts it)
		"pre/x/abc/":    true, // pre/+/ab* prefixes abc
		"pre/x/b/":      false,
		"denied/":       true, // +/shared/* can match denied/shared/x
		"cond/":         true, // conditional grants count
		"security/":     true, // sec* decides for security/
		"nothing/here/": false,
	} {
		if got := a.HasAccessUnder(path); got != want {
			t.Errorf("HasAccessUnder(%q) = %v, want %v", path, got, want)
		}
	}
	d := mustNewACL(t, mustPolicy(t, "d", `
path "denied/*" { capabilities = ["deny"] }
path "denied/x" { capabilities = ["deny"] }
path "denied/+/y" { capabilities = ["deny"] }
`))
	if d.HasAccessUnder("denied/") {
		t.Error("deny rules give access")
	}
	if !New([]string{"root"}).HasAccessUnder("x/") || New(nil).HasAccessUnder("cubbyhole/") ||
		!New([]string{"default"}).HasAccessUnder("cubbyhole/") || New([]string{"default"}).HasAccessUnder("secret/") {
		t.Error("built-in ACLs")
	}
	var nilACL *ACL
	if nilACL.HasAccessUnder("x/") {
		t.Error("nil ACL")
	}
}
