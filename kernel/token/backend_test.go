package token

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// roundTrip marshals v to JSON and back, as the HTTP layer would.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// kind describes a decoded JSON value's type.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "?"
}

func checkShape(t *testing.T, what string, got map[string]any, want map[string]string) {
	t.Helper()
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	sort.Strings(wantKeys)
	if gk := sortedKeys(got); !slices.Equal(gk, wantKeys) {
		t.Fatalf("%s keys:\n got %q\nwant %q", what, gk, wantKeys)
	}
	for k, w := range want {
		if g := kind(got[k]); g != w {
			t.Errorf("%s.%s is %s, want %s", what, k, g, w)
		}
	}
}

var authShape = map[string]string{
	"client_token": "string", "accessor": "string", "policies": "array", "token_policies": "array",
	"identity_policies": "null", "metadata": "null", "lease_duration": "number", "renewable": "bool",
	"entity_id": "string", "token_type": "string", "orphan": "bool", "mfa_requirement": "null", "num_uses": "number",
}

var lookupShape = map[string]string{
	"accessor": "string", "creation_time": "number", "creation_ttl": "number", "display_name": "string",
	"entity_id": "string", "expire_time": "string", "explicit_max_ttl": "number", "id": "string",
	"issue_time": "string", "meta": "null", "num_uses": "number", "orphan": "bool", "path": "string",
	"policies": "array", "renewable": "bool", "ttl": "number", "type": "string",
}

func TestCreateResponseShape(t *testing.T) {
	f := newFixture(t)
	resp, err := f.call(f.root, logical.UpdateOperation, "create",
		map[string]any{"policies": []any{"default"}, "ttl": "1h", "display_name": "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Auth != nil || len(resp.Data) != 1 {
		t.Fatalf("auth must be under Data[\"auth\"] only: %+v", resp.Data)
	}
	auth := roundTrip(t, resp.Data)["auth"].(map[string]any)
	checkShape(t, "auth", auth, authShape)
	if tok := auth["client_token"].(string); !strings.HasPrefix(tok, "s.") || len(tok) != 26 {
		t.Errorf("client_token shape")
	}
	if auth["lease_duration"].(float64) != 3600 || auth["renewable"] != true || auth["orphan"] != false ||
		auth["token_type"] != "service" || auth["entity_id"] != "" || auth["num_uses"].(float64) != 0 {
		t.Errorf("auth values: %v", auth)
	}
	if p := auth["policies"].([]any); len(p) != 1 || p[0] != "default" {
		t.Errorf("policies %v", p)
	}

	// lookup-self as the new token.
	e, _ := f.s.Lookup(context.Background(), auth["client_token"].(string))
	f.clock.Advance(600 * time.Second)
	resp, err = f.call(e, logical.ReadOperation, "lookup-self", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := roundTrip(t, resp.Data)
	checkShape(t, "lookup-self", data, lookupShape)
	if data["ttl"].(float64) != 3000 || data["creation_ttl"].(float64) != 3600 || data["id"] != e.ID ||
		data["display_name"] != "token-ci" || data["path"] != "auth/token/create" || data["type"] != "service" ||
		data["creation_time"].(float64) != float64(e.CreationTime.Unix()) || data["renewable"] != true {
		t.Errorf("lookup-self values: %v", data)
	}
	exp, err := time.Parse(time.RFC3339Nano, data["expire_time"].(string))
	if err != nil || !exp.Equal(e.ExpireTime) {
		t.Errorf("expire_time %v: %v", data["expire_time"], err)
	}
	if _, err := time.Parse(time.RFC3339Nano, data["issue_time"].(string)); err != nil {
		t.Errorf("issue_time: %v", err)
	}
	// lookup-self also answers update.
	if _, err := f.call(e, logical.UpdateOperation, "lookup-self", nil); err != nil {
		t.Fatal(err)
	}
}

func TestRootLookupSelfShape(t *testing.T) {
	f := newFixture(t)
	resp, err := f.call(f.root, logical.ReadOperation, "lookup-self", nil)
	if err != nil {
		t.Fatal(err)
	}
	data := roundTrip(t, resp.Data)
	shape := withShape(lookupShape, map[string]string{"expire_time": "null"})
	checkShape(t, "root lookup-self", data, shape)
	if data["id"] != testRootID || data["ttl"].(float64) != 0 || data["renewable"] != false || data["orphan"] != true ||
		data["path"] != "auth/token/root" || data["policies"].([]any)[0] != "root" || data["display_name"] != "token" {
		t.Errorf("root lookup-self: %v", data)
	}
}

func withShape(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func TestLookupVariants(t *testing.T) {
	f := newFixture(t)
	e := f.createVia(t, f.root, map[string]any{"policies": "a,b", "meta": map[string]any{"team": "x"}, "num_uses": 5})

	resp, err := f.call(f.root, logical.UpdateOperation, "lookup", map[string]any{"token": e.ID})
	if err != nil {
		t.Fatal(err)
	}
	data := roundTrip(t, resp.Data)
	checkShape(t, "lookup", data, withShape(lookupShape, map[string]string{"meta": "object"}))
	if data["id"] != e.ID || data["num_uses"].(float64) != 5 || data["meta"].(map[string]any)["team"] != "x" {
		t.Errorf("lookup: %v", data)
	}

	resp, err = f.call(f.root, logical.UpdateOperation, "lookup-accessor", map[string]any{"accessor": e.Accessor})
	if err != nil {
		t.Fatal(err)
	}
	data = roundTrip(t, resp.Data)
	checkShape(t, "lookup-accessor", data, withShape(lookupShape, map[string]string{"meta": "object"}))
	if data["id"] != "" || data["accessor"] != e.Accessor {
		t.Errorf("lookup-accessor: %v", data)
	}

	// Periodic tokens also report their period, as OpenBao does.
	p := f.createVia(t, f.root, map[string]any{"period": "1h"})
	resp, _ = f.call(f.root, logical.UpdateOperation, "lookup", map[string]any{"token": p.ID})
	if resp.Data["period"] != int64(3600) {
		t.Errorf("period: %v", resp.Data["period"])
	}
}

// TestTerraformChildToken: ttl = explicit_max_ttl = 1200, non-renewable.
func TestTerraformChildToken(t *testing.T) {
	f := newFixture(t)
	resp, err := f.call(f.root, logical.UpdateOperation, "create", map[string]any{
		"ttl": "1200s", "explicit_max_ttl": 1200, "renewable": false, "policies": []any{"tf"}, "display_name": "terraform",
	})
	if err != nil {
		t.Fatal(err)
	}
	auth := resp.Data["auth"].(map[string]any)
	if auth["lease_duration"] != int64(1200) || auth["renewable"] != false {
		t.Fatalf("auth %v", auth)
	}
	e, _ := f.s.Lookup(context.Background(), auth["client_token"].(string))
	resp, _ = f.call(e, logical.ReadOperation, "lookup-self", nil)
	d := resp.Data
	if d["creation_ttl"] != int64(1200) || d["explicit_max_ttl"] != int64(1200) || d["ttl"] != int64(1200) || d["renewable"] != false {
		t.Fatalf("lookup-self %v", d)
	}
	if _, err := f.call(e, logical.UpdateOperation, "renew-self", nil); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("renew-self of non-renewable: %v", err)
	}
}

func TestPolicyRules(t *testing.T) {
	tests := []struct {
		name      string
		caller    []string
		data      map[string]any
		want      []string
		wantCode  logical.Code
		wantError string
	}{
		{name: "subset gets default", caller: []string{"default", "a", "b"}, data: map[string]any{"policies": "a"}, want: []string{"a", "default"}},
		{name: "inherit", caller: []string{"default", "a", "b"}, data: map[string]any{}, want: []string{"a", "b", "default"}},
		{name: "not subset", caller: []string{"default", "a"}, data: map[string]any{"policies": []any{"a", "c"}},
			wantCode: logical.CodeInvalidRequest, wantError: "child policies must be subset of parent"},
		{name: "no default policy", caller: []string{"default", "a"}, data: map[string]any{"policies": "a", "no_default_policy": true}, want: []string{"a"}},
		{name: "inherit without default", caller: []string{"default", "a"}, data: map[string]any{"no_default_policy": true}, want: []string{"a"}},
		{name: "caller without default", caller: []string{"a"}, data: map[string]any{"policies": "a"}, want: []string{"a"}},
		{name: "default not grantable by a caller without it", caller: []string{"a"}, data: map[string]any{"policies": "a,default"},
			wantCode: logical.CodeInvalidRequest},
		{name: "non-root asks root", caller: []string{"default", "a"}, data: map[string]any{"policies": "root"}, wantCode: logical.CodeInvalidRequest},
		{name: "root any policy", caller: []string{"root"}, data: map[string]any{"policies": "x,y"}, want: []string{"default", "x", "y"}},
		{name: "root no policies", caller: []string{"root"}, data: map[string]any{}, want: []string{"root"}},
		{name: "root asks root", caller: []string{"root"}, data: map[string]any{"policies": "root"}, want: []string{"root"}},
		{name: "root asks root and more", caller: []string{"root"}, data: map[string]any{"policies": "root,x"}, want: []string{"root"}},
		{name: "root no default", caller: []string{"root"}, data: map[string]any{"policies": "x", "no_default_policy": true}, want: []string{"x"}},
		{name: "case and spaces", caller: []string{"root"}, data: map[string]any{"policies": " X , x,"}, want: []string{"default", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.child(t, f.root, tt.caller...)
			resp, err := f.call(c, logical.UpdateOperation, "create", tt.data)
			if tt.wantCode != 0 || tt.wantError != "" {
				if logical.CodeOf(err) != tt.wantCode || (tt.wantError != "" && err.Error() != tt.wantError) {
					t.Fatalf("err %v (code %d), want code %d %q", err, logical.CodeOf(err), tt.wantCode, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			auth := resp.Data["auth"].(map[string]any)
			if got := auth["policies"].([]string); !slices.Equal(got, tt.want) {
				t.Fatalf("policies %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCallerRules(t *testing.T) {
	tests := []struct {
		name     string
		root     bool
		path     string
		data     map[string]any
		op       logical.Operation
		wantCode logical.Code
		check    func(t *testing.T, f *fixture, resp *logical.Response)
	}{
		{name: "id needs root", path: "create", data: map[string]any{"id": "chosen"}, wantCode: logical.CodePermissionDenied},
		{name: "no_parent needs root", path: "create", data: map[string]any{"no_parent": true}, wantCode: logical.CodePermissionDenied},
		{name: "period needs root", path: "create", data: map[string]any{"period": "1h"}, wantCode: logical.CodePermissionDenied},
		{name: "revoke-orphan needs root", path: "revoke-orphan", data: map[string]any{"token": testRootID}, wantCode: logical.CodePermissionDenied},
		{name: "accessors needs root", path: "accessors/", op: logical.ListOperation, wantCode: logical.CodePermissionDenied},
		{name: "batch unsupported", root: true, path: "create", data: map[string]any{"type": "batch"}, wantCode: logical.CodeInvalidRequest},
		{name: "bad type", root: true, path: "create", data: map[string]any{"type": "other"}, wantCode: logical.CodeInvalidRequest},
		{name: "negative uses", root: true, path: "create", data: map[string]any{"num_uses": -1}, wantCode: logical.CodeInvalidRequest},
		{name: "reserved id prefix", root: true, path: "create", data: map[string]any{"id": "s.abc"}, wantCode: logical.CodeInvalidRequest},
		{name: "duplicate id", root: true, path: "create", data: map[string]any{"id": testRootID}, wantCode: logical.CodeInvalidRequest},
		{name: "root chooses id", root: true, path: "create", data: map[string]any{"id": "chosen-id"},
			check: func(t *testing.T, f *fixture, resp *logical.Response) {
				if !f.valid(t, &Entry{ID: "chosen-id"}) {
					t.Fatal("chosen id does not work")
				}
			}},
		{name: "root no_parent", root: true, path: "create", data: map[string]any{"no_parent": true},
			check: func(t *testing.T, f *fixture, resp *logical.Response) {
				if resp.Data["auth"].(map[string]any)["orphan"] != true {
					t.Fatal("not orphan")
				}
			}},
		{name: "create-orphan for anyone", path: "create-orphan", data: map[string]any{"policies": "a"},
			check: func(t *testing.T, f *fixture, resp *logical.Response) {
				auth := resp.Data["auth"].(map[string]any)
				e, _ := f.s.Lookup(context.Background(), auth["client_token"].(string))
				if auth["orphan"] != true || e.Path != "auth/token/create-orphan" {
					t.Fatal("not orphan")
				}
			}},
		{name: "root lists accessors", root: true, path: "accessors/", op: logical.ListOperation,
			check: func(t *testing.T, f *fixture, resp *logical.Response) {
				if keys := resp.Data["keys"].([]string); len(keys) != 2 || !slices.Contains(keys, f.root.Accessor) {
					t.Fatalf("keys %q", keys)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.root
			if !tt.root {
				c = f.child(t, f.root, "default", "a")
			} else {
				f.child(t, f.root, "default") // a second token for the accessors list
			}
			op := tt.op
			if op == "" {
				op = logical.UpdateOperation
			}
			resp, err := f.call(c, op, tt.path, tt.data)
			if tt.wantCode != 0 {
				if logical.CodeOf(err) != tt.wantCode {
					t.Fatalf("err %v, want code %d", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f, resp)
		})
	}
}

func TestUseLimitedCallerCannotCreate(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, &Entry{Policies: []string{"a"}, NumUses: 3, Parent: f.root.HashedID})
	if _, err := f.call(c, logical.UpdateOperation, "create", nil); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("err %v", err)
	}
}

func TestBackendErrors(t *testing.T) {
	const secret = "s.thisisnotarealtoken0000"
	f := newFixture(t)
	tests := []struct {
		path     string
		data     map[string]any
		wantCode logical.Code
		wantMsg  string
	}{
		{"lookup", map[string]any{"token": secret}, logical.CodePermissionDenied, "bad token"},
		{"lookup-accessor", map[string]any{"accessor": secret}, logical.CodeInvalidRequest, "invalid accessor"},
		{"lookup-accessor", map[string]any{}, logical.CodeInvalidRequest, "missing accessor"},
		{"renew", map[string]any{"token": secret}, logical.CodeInvalidRequest, "token not found"},
		{"renew", map[string]any{}, logical.CodeInvalidRequest, "missing token ID"},
		{"revoke", map[string]any{}, logical.CodeInvalidRequest, "missing token ID"},
		{"revoke-orphan", map[string]any{"token": secret}, logical.CodeInvalidRequest, "token to revoke not found"},
		{"nosuchpath", nil, logical.CodeNotFound, "unsupported path"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.wantMsg, func(t *testing.T) {
			_, err := f.call(f.root, logical.UpdateOperation, tt.path, tt.data)
			if logical.CodeOf(err) != tt.wantCode || err.Error() != tt.wantMsg {
				t.Fatalf("err %v (code %d), want %d %q", err, logical.CodeOf(err), tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("error contains the token")
			}
		})
	}
	// Unknown tokens revoke quietly (204), unknown accessors with a warning.
	if resp, err := f.call(f.root, logical.UpdateOperation, "revoke", map[string]any{"token": secret}); resp != nil || err != nil {
		t.Fatalf("revoke unknown: %v %v", resp, err)
	}
	resp, err := f.call(f.root, logical.UpdateOperation, "revoke-accessor", map[string]any{"accessor": "nope"})
	if err != nil || resp == nil || len(resp.Warnings) != 1 {
		t.Fatalf("revoke-accessor unknown: %v %v", resp, err)
	}
	// No caller in the context: permission denied.
	if _, err := f.call(nil, logical.ReadOperation, "lookup-self", nil); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("no caller: %v", err)
	}
}

func TestBackendRenewRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.createVia(t, f.root, map[string]any{"ttl": "1h", "policies": "a"})
	f.clock.Advance(30 * time.Minute)

	resp, err := f.call(f.root, logical.UpdateOperation, "renew", map[string]any{"token": e.ID, "increment": "2h"})
	if err != nil {
		t.Fatal(err)
	}
	auth := roundTrip(t, resp.Data)["auth"].(map[string]any)
	checkShape(t, "renew auth", auth, authShape)
	if auth["lease_duration"].(float64) != 7200 || auth["client_token"] != e.ID {
		t.Fatalf("renew: %v", auth)
	}

	resp, err = f.call(e, logical.UpdateOperation, "renew-self", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Data["auth"].(map[string]any)["lease_duration"] != int64(3600) {
		t.Fatalf("renew-self: %v", resp.Data)
	}

	// Root tokens without TTL: renew is a no-op.
	resp, err = f.call(f.root, logical.UpdateOperation, "renew-self", nil)
	if err != nil || resp.Data["auth"].(map[string]any)["lease_duration"] != int64(0) {
		t.Fatalf("root renew-self: %v %v", resp, err)
	}

	// revoke-accessor, revoke, revoke-self, revoke-orphan.
	a := f.createVia(t, f.root, map[string]any{"policies": "a"})
	if resp, err := f.call(f.root, logical.UpdateOperation, "revoke-accessor", map[string]any{"accessor": a.Accessor}); resp != nil || err != nil {
		t.Fatalf("revoke-accessor: %v %v", resp, err)
	}
	if f.valid(t, a) {
		t.Fatal("revoke-accessor did not revoke")
	}
	b := f.createVia(t, f.root, map[string]any{"policies": "a"})
	bChild := f.createVia(t, b, nil)
	if _, err := f.call(f.root, logical.UpdateOperation, "revoke", map[string]any{"token": b.ID}); err != nil {
		t.Fatal(err)
	}
	if f.valid(t, b) || f.valid(t, bChild) {
		t.Fatal("revoke did not revoke the tree")
	}
	c := f.createVia(t, f.root, map[string]any{"policies": "a"})
	cChild := f.createVia(t, c, nil)
	if _, err := f.call(f.root, logical.UpdateOperation, "revoke-orphan", map[string]any{"token": c.ID}); err != nil {
		t.Fatal(err)
	}
	if f.valid(t, c) || !f.valid(t, cChild) {
		t.Fatal("revoke-orphan")
	}
	if resp, err := f.call(cChild, logical.UpdateOperation, "revoke-self", nil); resp != nil || err != nil {
		t.Fatalf("revoke-self: %v %v", resp, err)
	}
	if got, _ := f.s.Lookup(ctx, cChild.ID); got != nil {
		t.Fatal("revoke-self did not revoke")
	}
}

func TestCreateWarnsWhenCapped(t *testing.T) {
	f := newFixture(t)
	c := f.child(t, f.root, "default")
	resp, err := f.call(c, logical.UpdateOperation, "create", map[string]any{"ttl": "100h"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Data["auth"].(map[string]any)["lease_duration"] != int64(24*3600) || len(resp.Warnings) != 1 {
		t.Fatalf("capped create: %v %v", resp.Data, resp.Warnings)
	}
}

func TestExpiringRootCannotMintNonExpiringRoot(t *testing.T) {
	f := newFixture(t)
	r := f.create(t, &Entry{Policies: []string{"root"}, TTL: time.Hour, Parent: f.root.HashedID})
	if _, err := f.call(r, logical.UpdateOperation, "create", nil); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("err %v", err)
	}
	if _, err := f.call(r, logical.UpdateOperation, "create", map[string]any{"ttl": "10m"}); err != nil {
		t.Fatalf("expiring child: %v", err)
	}
}

func TestSchemaAndSpecialPaths(t *testing.T) {
	f := newFixture(t)
	b := f.s.Backend()
	if b.Type() != logical.TypeAuth {
		t.Fatal("type")
	}
	if err := b.Initialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	sp := b.SpecialPaths()
	if !slices.Contains(sp.Root, "revoke-orphan*") || !slices.Contains(sp.Root, "accessors*") {
		t.Fatalf("special paths %v", sp.Root)
	}
	if len(b.Schema().Paths) != 15 {
		t.Fatalf("paths: %d", len(b.Schema().Paths))
	}
}
