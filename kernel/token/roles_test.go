package token

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wardproject/ward/sdk/logical"
)

// writeRole writes auth/token/roles/<name> as root.
func (f *fixture) writeRole(t testing.TB, name string, data map[string]any) *logical.Response {
	t.Helper()
	resp, err := f.call(f.root, logical.UpdateOperation, "roles/"+name, data)
	if err != nil {
		t.Fatalf("write role %s: %v", name, err)
	}
	return resp
}

// readRole reads a role as the JSON the HTTP layer would send.
func (f *fixture) readRole(t *testing.T, name string) map[string]any {
	t.Helper()
	resp, err := f.call(f.root, logical.ReadOperation, "roles/"+name, nil)
	if err != nil {
		t.Fatalf("read role %s: %v", name, err)
	}
	if resp == nil {
		return nil
	}
	return roundTrip(t, resp.Data)
}

// createViaRole creates a token through a role and returns the response
// and the new token's entry.
func (f *fixture) createViaRole(t testing.TB, caller *Entry, name string, data map[string]any) (*logical.Response, *Entry) {
	t.Helper()
	resp, err := f.call(caller, logical.UpdateOperation, "create/"+name, data)
	if err != nil {
		t.Fatalf("create/%s: %v", name, err)
	}
	id := resp.Data["auth"].(map[string]any)["client_token"].(string)
	e, err := f.s.Lookup(context.Background(), id)
	if err != nil || e == nil {
		t.Fatalf("lookup of created token: %v %v", e, err)
	}
	return resp, e
}

// roleDefaults is what a role written with no fields reads back as.
func roleDefaults(name string, over map[string]any) map[string]any {
	out := map[string]any{
		"name": name, "allowed_policies": []any{}, "disallowed_policies": []any{},
		"allowed_policies_glob": []any{}, "disallowed_policies_glob": []any{},
		"orphan": false, "renewable": true, "path_suffix": "",
		"period": 0.0, "token_period": 0.0, "explicit_max_ttl": 0.0, "token_explicit_max_ttl": 0.0,
		"token_type": "default-service", "token_no_default_policy": false, "allowed_entity_aliases": nil,
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func TestRoleCRUD(t *testing.T) {
	tests := []struct {
		name     string
		writes   []map[string]any
		want     map[string]any // overrides of roleDefaults
		warnings int            // of the last write
	}{
		{name: "defaults", writes: []map[string]any{{}}},
		{name: "legacy names", writes: []map[string]any{{
			"orphan": true, "period": "72h", "allowed_policies": "Test1, test2,test1", "path_suffix": "happenin",
			"explicit_max_ttl": "2h", "token_num_uses": 123,
		}}, want: map[string]any{
			"orphan": true, "period": 259200.0, "token_period": 259200.0, "allowed_policies": []any{"test1", "test2"},
			"path_suffix": "happenin", "explicit_max_ttl": 7200.0, "token_explicit_max_ttl": 7200.0, "token_num_uses": 123.0,
		}},
		{name: "token_ names", writes: []map[string]any{{
			"token_period": 3600, "token_explicit_max_ttl": "10h", "token_type": "service", "token_no_default_policy": true,
			"disallowed_policies": []any{"B", "a", "a"}, "allowed_policies_glob": "dev-*", "disallowed_policies_glob": "dev-root*",
			"allowed_entity_aliases": "Alice,bob-*", "renewable": false,
		}}, want: map[string]any{
			"token_period": 3600.0, "token_explicit_max_ttl": 36000.0, "token_type": "service", "token_no_default_policy": true,
			"disallowed_policies": []any{"a", "b"}, "allowed_policies_glob": []any{"dev-*"}, "disallowed_policies_glob": []any{"dev-root*"},
			"allowed_entity_aliases": []any{"alice", "bob-*"}, "renewable": false,
		}},
		{name: "token_ name wins over legacy", writes: []map[string]any{{"token_period": "1h", "period": "2h", "token_explicit_max_ttl": "3h", "explicit_max_ttl": "4h"}},
			want: map[string]any{"token_period": 3600.0, "token_explicit_max_ttl": 10800.0}, warnings: 2},
		{name: "token_ name clears legacy on update", writes: []map[string]any{{"period": "2h"}, {"token_period": "1h"}},
			want: map[string]any{"token_period": 3600.0}},
		{name: "update keeps absent fields", writes: []map[string]any{
			{"orphan": true, "renewable": false, "allowed_policies": "a", "path_suffix": "v1-x", "token_type": "service", "period": "1h"},
			{"allowed_policies": "b"},
		}, want: map[string]any{"orphan": true, "renewable": false, "allowed_policies": []any{"b"}, "path_suffix": "v1-x",
			"token_type": "service", "period": 3600.0, "token_period": 3600.0}},
		{name: "update clears with empty values", writes: []map[string]any{
			{"allowed_policies": "a", "path_suffix": "abc", "explicit_max_ttl": "1h"},
			{"allowed_policies": "", "path_suffix": "", "explicit_max_ttl": 0},
		}},
		{name: "default-service explicitly", writes: []map[string]any{{"token_type": "service"}, {"token_type": "default-service"}}},
		{name: "root stands alone in allowed", writes: []map[string]any{{"allowed_policies": "x,root"}},
			want: map[string]any{"allowed_policies": []any{"root"}}},
		{name: "explicit max above system max warns", writes: []map[string]any{{"token_explicit_max_ttl": "48h"}},
			want: map[string]any{"token_explicit_max_ttl": 172800.0}, warnings: 1},
		{name: "empty cidrs accepted", writes: []map[string]any{{"bound_cidrs": "", "token_bound_cidrs": []any{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			var resp *logical.Response
			for _, w := range tt.writes {
				resp = f.writeRole(t, "ci", w)
			}
			var warnings []string
			if resp != nil {
				warnings = resp.Warnings
			}
			if len(warnings) != tt.warnings {
				t.Errorf("warnings %q, want %d", warnings, tt.warnings)
			}
			got := f.readRole(t, "ci")
			if want := roleDefaults("ci", tt.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("read:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestRoleLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if resp, err := f.call(f.root, logical.ListOperation, "roles/", nil); resp != nil || err != nil {
		t.Fatalf("list with no roles must be nil (404): %v %v", resp, err)
	}
	if got := f.readRole(t, "ci"); got != nil {
		t.Fatalf("read of a missing role must be nil (404): %v", got)
	}
	f.writeRole(t, "web", nil)
	f.writeRole(t, "ci", nil)
	f.writeRole(t, "a.b@c-d", nil)
	for _, p := range []string{"roles", "roles/"} {
		resp, err := f.call(f.root, logical.ListOperation, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if keys := resp.Data["keys"].([]string); !slices.Equal(keys, []string{"a.b@c-d", "ci", "web"}) {
			t.Fatalf("list %s: %q", p, keys)
		}
	}
	if keys := keysWithPrefix(t, f.view, rolesPrefix); len(keys) != 3 {
		t.Fatalf("stored roles: %q", keys)
	}

	// The existence check makes the first write a create, later ones updates.
	b := f.s.Backend().(logical.ExistenceChecker)
	for name, want := range map[string]bool{"ci": true, "nope": false} {
		found, exists, err := b.HandleExistenceCheck(NewContext(ctx, f.root), &logical.Request{Operation: logical.UpdateOperation, Path: "roles/" + name})
		if err != nil || !found || exists != want {
			t.Fatalf("existence of %s: %v %v %v", name, found, exists, err)
		}
	}

	if resp, err := f.call(f.root, logical.DeleteOperation, "roles/ci", nil); resp != nil || err != nil {
		t.Fatalf("delete: %v %v", resp, err)
	}
	if got := f.readRole(t, "ci"); got != nil {
		t.Fatalf("read after delete: %v", got)
	}
	if resp, err := f.call(f.root, logical.DeleteOperation, "roles/ci", nil); resp != nil || err != nil {
		t.Fatalf("delete of a missing role: %v %v", resp, err)
	}
	f.call(f.root, logical.DeleteOperation, "roles/web", nil)
	f.call(f.root, logical.DeleteOperation, "roles/a.b@c-d", nil)
	if resp, err := f.call(f.root, logical.ListOperation, "roles", nil); resp != nil || err != nil {
		t.Fatalf("list after deleting all: %v %v", resp, err)
	}
	// No caller: permission denied, as on every other path.
	if _, err := f.call(nil, logical.ReadOperation, "roles/ci", nil); logical.CodeOf(err) != logical.CodePermissionDenied {
		t.Fatalf("no caller: %v", err)
	}
}

func TestRoleValidation(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		data     map[string]any
		wantCode logical.Code
		wantMsg  string
	}{
		{name: "batch", data: map[string]any{"token_type": "batch"}, wantCode: logical.CodeInvalidRequest, wantMsg: "batch tokens are not supported"},
		{name: "default-batch", data: map[string]any{"token_type": "default-batch"}, wantCode: logical.CodeInvalidRequest, wantMsg: "batch tokens are not supported"},
		{name: "unknown type", data: map[string]any{"token_type": "other"}, wantCode: logical.CodeInvalidRequest, wantMsg: `invalid 'token_type' value "other"`},
		{name: "null type", data: map[string]any{"token_type": nil}, wantCode: logical.CodeInvalidRequest},
		{name: "bad period", data: map[string]any{"period": "soon"}, wantCode: logical.CodeInvalidRequest},
		{name: "negative token_period", data: map[string]any{"token_period": -5}, wantCode: logical.CodeInvalidRequest},
		{name: "negative explicit max", data: map[string]any{"explicit_max_ttl": "-1h"}, wantCode: logical.CodeInvalidRequest},
		{name: "bad token_explicit_max_ttl", data: map[string]any{"token_explicit_max_ttl": "1x"}, wantCode: logical.CodeInvalidRequest},
		{name: "negative uses", data: map[string]any{"token_num_uses": -1}, wantCode: logical.CodeInvalidRequest},
		{name: "bad bool", data: map[string]any{"orphan": "maybe"}, wantCode: logical.CodeInvalidRequest},
		{name: "suffix with slash", data: map[string]any{"path_suffix": "a/bcd"}, wantCode: logical.CodeInvalidRequest},
		{name: "suffix too short", data: map[string]any{"path_suffix": "v1"}, wantCode: logical.CodeInvalidRequest},
		{name: "suffix parent reference", data: map[string]any{"path_suffix": "a..b"}, wantCode: logical.CodeInvalidRequest,
			wantMsg: "error registering path suffix: path cannot contain parent references"},
		{name: "cidrs", data: map[string]any{"token_bound_cidrs": "10.0.0.0/8"}, wantCode: logical.CodeInvalidRequest},
		{name: "legacy cidrs", data: map[string]any{"bound_cidrs": []any{"10.0.0.0/8"}}, wantCode: logical.CodeInvalidRequest},
		{name: "bad name", path: "roles/-ci", wantCode: logical.CodeNotFound},
		{name: "name with slash", path: "roles/a/b", wantCode: logical.CodeNotFound},
		{name: "unknown role", path: "create/nope", wantCode: logical.CodeInvalidRequest, wantMsg: "unknown role nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			path := tt.path
			if path == "" {
				path = "roles/ci"
			}
			_, err := f.call(f.root, logical.UpdateOperation, path, tt.data)
			if logical.CodeOf(err) != tt.wantCode || (tt.wantMsg != "" && err.Error() != tt.wantMsg) {
				t.Fatalf("err %v (code %d), want %d %q", err, logical.CodeOf(err), tt.wantCode, tt.wantMsg)
			}
			if keys := keysWithPrefix(t, f.view, rolesPrefix); len(keys) != 0 {
				t.Fatalf("a refused write stored %q", keys)
			}
		})
	}
}

func TestCreateWithRolePolicies(t *testing.T) {
	tests := []struct {
		name     string
		role     map[string]any
		caller   []string // nil: root
		data     map[string]any
		want     []string
		wantCode logical.Code
		wantMsg  string
	}{
		// allowed_policies: the caller need not hold them (Vault semantics).
		{name: "allowed, not held", role: map[string]any{"allowed_policies": "ci,deploy"}, caller: []string{"default", "dev"},
			data: map[string]any{"policies": "deploy"}, want: []string{"default", "deploy"}},
		{name: "allowed, none requested gives all allowed", role: map[string]any{"allowed_policies": "ci,deploy"}, caller: []string{"dev"},
			want: []string{"ci", "default", "deploy"}},
		{name: "outside allowed", role: map[string]any{"allowed_policies": "ci"}, caller: []string{"default", "dev"},
			data: map[string]any{"policies": "ci,dev"}, wantCode: logical.CodeInvalidRequest},
		{name: "outside allowed even for root", role: map[string]any{"allowed_policies": "ci"},
			data: map[string]any{"policies": "admin"}, wantCode: logical.CodeInvalidRequest,
			wantMsg: `token policies (["admin" "default"]) must be subset of the role's allowed policies (["ci" "default"]) or glob policies ([])`},
		{name: "allowed is not a glob", role: map[string]any{"allowed_policies": "test*"}, caller: []string{"x"},
			data: map[string]any{"policies": "testfoo"}, wantCode: logical.CodeInvalidRequest},
		{name: "allowed matched literally", role: map[string]any{"allowed_policies": "test*"}, caller: []string{"x"},
			data: map[string]any{"policies": "test*"}, want: []string{"default", "test*"}},
		{name: "allowed glob", role: map[string]any{"allowed_policies_glob": "app-*"}, caller: []string{"x"},
			data: map[string]any{"policies": "app-web,app-db"}, want: []string{"app-db", "app-web", "default"}},
		{name: "outside allowed glob", role: map[string]any{"allowed_policies_glob": "app-*"}, caller: []string{"x"},
			data: map[string]any{"policies": "web"}, wantCode: logical.CodeInvalidRequest},
		{name: "glob only, none requested gives default", role: map[string]any{"allowed_policies_glob": "app-*"}, caller: []string{"x"},
			want: []string{"default"}},
		{name: "allowed plus glob", role: map[string]any{"allowed_policies": "ci", "allowed_policies_glob": "app-*"}, caller: []string{"x"},
			data: map[string]any{"policies": "ci,app-x"}, want: []string{"app-x", "ci", "default"}},
		// disallowed_policies.
		{name: "disallowed", role: map[string]any{"allowed_policies": "ci,admin", "disallowed_policies": "admin"},
			data: map[string]any{"policies": "admin"}, wantCode: logical.CodeInvalidRequest, wantMsg: `token policy "admin" is disallowed by this role`},
		{name: "disallowed wins over allowed when none requested", role: map[string]any{"allowed_policies": "ci,admin", "disallowed_policies": "admin"},
			wantCode: logical.CodeInvalidRequest},
		{name: "disallowed glob", role: map[string]any{"allowed_policies_glob": "*", "disallowed_policies_glob": "admin-*"}, caller: []string{"x"},
			data: map[string]any{"policies": "ci,admin-1"}, wantCode: logical.CodeInvalidRequest},
		{name: "disallowed is not a glob", role: map[string]any{"disallowed_policies": "test*"}, caller: []string{"test1", "test"},
			data: map[string]any{"policies": "test1,test"}, want: []string{"default", "test", "test1"}},
		{name: "disallowed only inherits caller's", role: map[string]any{"disallowed_policies": "admin"}, caller: []string{"dev", "ops"},
			want: []string{"default", "dev", "ops"}},
		{name: "disallowed only refuses caller's disallowed", role: map[string]any{"disallowed_policies": "ops"}, caller: []string{"dev", "ops"},
			wantCode: logical.CodeInvalidRequest},
		// Vault: a role with only disallowed policies lifts the subset rule too.
		{name: "disallowed only, not held", role: map[string]any{"disallowed_policies": "admin"}, caller: []string{"dev"},
			data: map[string]any{"policies": "foo"}, want: []string{"default", "foo"}},
		// "default".
		{name: "default disallowed is not added", role: map[string]any{"allowed_policies": "ci", "disallowed_policies": "default"}, caller: []string{"x"},
			want: []string{"ci"}},
		{name: "default disallowed and asked for", role: map[string]any{"allowed_policies": "ci,default", "disallowed_policies": "default"}, caller: []string{"x"},
			data: map[string]any{"policies": "ci,default"}, wantCode: logical.CodeInvalidRequest},
		{name: "default disallowed by glob", role: map[string]any{"allowed_policies": "ci", "disallowed_policies_glob": "def*"}, caller: []string{"x"},
			want: []string{"ci"}},
		{name: "no_default_policy", role: map[string]any{"allowed_policies": "ci"}, caller: []string{"x"},
			data: map[string]any{"no_default_policy": true}, want: []string{"ci"}},
		{name: "no_default_policy strips explicit default", role: map[string]any{"allowed_policies": "ci,default"}, caller: []string{"x"},
			data: map[string]any{"policies": "ci,default", "no_default_policy": true}, want: []string{"ci"}},
		{name: "token_no_default_policy", role: map[string]any{"allowed_policies": "ci", "token_no_default_policy": true}, caller: []string{"x"},
			want: []string{"ci"}},
		{name: "token_no_default_policy keeps explicit default", role: map[string]any{"allowed_policies": "ci,default", "token_no_default_policy": true},
			caller: []string{"x"}, data: map[string]any{"policies": "ci,default"}, want: []string{"ci", "default"}},
		// root.
		{name: "non-root caller cannot get root through a role", role: map[string]any{"allowed_policies": "root"}, caller: []string{"x"},
			wantCode: logical.CodeInvalidRequest, wantMsg: "root tokens may not be created without parent token being root"},
		{name: "root caller can", role: map[string]any{"allowed_policies": "root"}, want: []string{"root"}},
		// A role without lists keeps the usual rules.
		{name: "no lists: subset", role: map[string]any{}, caller: []string{"default", "dev"},
			data: map[string]any{"policies": "dev"}, want: []string{"default", "dev"}},
		{name: "no lists: not held", role: map[string]any{}, caller: []string{"default", "dev"},
			data: map[string]any{"policies": "ops"}, wantCode: logical.CodeInvalidRequest, wantMsg: "child policies must be subset of parent"},
		{name: "no lists: inherit", role: map[string]any{}, caller: []string{"dev", "ops"}, want: []string{"dev", "ops"}},
		{name: "no lists: root any", role: map[string]any{}, data: map[string]any{"policies": "x"}, want: []string{"default", "x"}},
		{name: "no lists: token_no_default_policy not consulted (as Vault)", role: map[string]any{"token_no_default_policy": true},
			caller: []string{"default", "dev"}, data: map[string]any{"policies": "dev"}, want: []string{"default", "dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeRole(t, "r", tt.role)
			c := f.root
			if tt.caller != nil {
				c = f.child(t, f.root, tt.caller...)
			}
			resp, err := f.call(c, logical.UpdateOperation, "create/r", tt.data)
			if tt.wantCode != 0 {
				if logical.CodeOf(err) != tt.wantCode || (tt.wantMsg != "" && err.Error() != tt.wantMsg) {
					t.Fatalf("err %v (code %d), want %d %q", err, logical.CodeOf(err), tt.wantCode, tt.wantMsg)
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

func TestCreateWithRoleShape(t *testing.T) {
	tests := []struct {
		name     string
		role     map[string]any
		data     map[string]any
		wantCode logical.Code
		check    func(t *testing.T, f *fixture, caller *Entry, resp *logical.Response, e *Entry)
	}{
		{name: "child of the caller", role: map[string]any{},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Parent != c.HashedID || resp.Data["auth"].(map[string]any)["orphan"] != false {
					t.Fatal("not a child of the caller")
				}
				if e.Path != "auth/token/create/r" || e.Role != "r" {
					t.Fatalf("path %q role %q", e.Path, e.Role)
				}
				checkShape(t, "auth", roundTrip(t, resp.Data)["auth"].(map[string]any), authShape)
			}},
		{name: "orphan role", role: map[string]any{"orphan": true},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Parent != "" || resp.Data["auth"].(map[string]any)["orphan"] != true {
					t.Fatal("not an orphan")
				}
				// An orphan outlives the caller.
				if err := f.s.Revoke(context.Background(), c); err != nil {
					t.Fatal(err)
				}
				if !f.valid(t, e) {
					t.Fatal("orphan revoked with the caller")
				}
			}},
		{name: "no_parent is ignored with a role", role: map[string]any{}, data: map[string]any{"no_parent": true},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Parent != c.HashedID {
					t.Fatal("no_parent applied")
				}
			}},
		{name: "path suffix", role: map[string]any{"path_suffix": "v2.0"},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Path != "auth/token/create/r/v2.0" {
					t.Fatalf("path %q", e.Path)
				}
			}},
		{name: "not renewable", role: map[string]any{"renewable": false}, data: map[string]any{"renewable": true},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Renewable || resp.Data["auth"].(map[string]any)["renewable"] != false {
					t.Fatal("renewable")
				}
			}},
		{name: "request may still refuse renewal", role: map[string]any{}, data: map[string]any{"renewable": false},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Renewable {
					t.Fatal("renewable")
				}
			}},
		{name: "role num_uses caps", role: map[string]any{"token_num_uses": 3}, data: map[string]any{"num_uses": 10},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.NumUses != 3 {
					t.Fatalf("num_uses %d", e.NumUses)
				}
			}},
		{name: "role num_uses limits unlimited", role: map[string]any{"token_num_uses": 3},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.NumUses != 3 {
					t.Fatalf("num_uses %d", e.NumUses)
				}
			}},
		{name: "lower request num_uses kept", role: map[string]any{"token_num_uses": 3}, data: map[string]any{"num_uses": 2},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.NumUses != 2 {
					t.Fatalf("num_uses %d", e.NumUses)
				}
			}},
		{name: "service role overrides the request's type", role: map[string]any{"token_type": "service"}, data: map[string]any{"type": "batch"},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if e.Type != TypeService {
					t.Fatalf("type %q", e.Type)
				}
			}},
		{name: "default-service role keeps the request's type", role: map[string]any{}, data: map[string]any{"type": "batch"},
			wantCode: logical.CodeInvalidRequest},
		{name: "entity alias allowed is ignored with a warning", role: map[string]any{"allowed_entity_aliases": "ci-*"}, data: map[string]any{"entity_alias": "CI-runner"},
			check: func(t *testing.T, f *fixture, c *Entry, resp *logical.Response, e *Entry) {
				if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "entity_alias") {
					t.Fatalf("warnings %q", resp.Warnings)
				}
			}},
		{name: "entity alias not allowed", role: map[string]any{"allowed_entity_aliases": "ci-*"}, data: map[string]any{"entity_alias": "web"},
			wantCode: logical.CodeInvalidRequest},
		{name: "period in the request still needs root", role: map[string]any{}, data: map[string]any{"period": "1h"},
			wantCode: logical.CodePermissionDenied},
		{name: "id still needs root", role: map[string]any{}, data: map[string]any{"id": "mine"},
			wantCode: logical.CodePermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeRole(t, "r", tt.role)
			c := f.child(t, f.root, "default", "dev")
			if tt.wantCode != 0 {
				if _, err := f.call(c, logical.UpdateOperation, "create/r", tt.data); logical.CodeOf(err) != tt.wantCode {
					t.Fatalf("err %v, want code %d", err, tt.wantCode)
				}
				return
			}
			resp, e := f.createViaRole(t, c, "r", tt.data)
			tt.check(t, f, c, resp, e)
		})
	}
}

func TestCreateWithRoleTTLs(t *testing.T) {
	tests := []struct {
		name         string
		role         map[string]any
		root         bool
		data         map[string]any
		wantTTL      time.Duration
		wantPeriod   time.Duration
		wantMax      time.Duration
		wantWarnings int
	}{
		{name: "role explicit max caps the requested ttl", role: map[string]any{"token_explicit_max_ttl": "1h"},
			data: map[string]any{"ttl": "5h"}, wantTTL: time.Hour, wantMax: time.Hour, wantWarnings: 1},
		{name: "legacy explicit max caps the default ttl", role: map[string]any{"explicit_max_ttl": "30m"},
			wantTTL: 30 * time.Minute, wantMax: 30 * time.Minute},
		{name: "lesser explicit max wins: request", role: map[string]any{"token_explicit_max_ttl": "2h"},
			data: map[string]any{"explicit_max_ttl": "1h"}, wantTTL: time.Hour, wantMax: time.Hour, wantWarnings: 1},
		{name: "lesser explicit max wins: role", role: map[string]any{"token_explicit_max_ttl": "1h"},
			data: map[string]any{"explicit_max_ttl": "2h"}, wantTTL: time.Hour, wantMax: time.Hour, wantWarnings: 1},
		{name: "role period for a non-root caller", role: map[string]any{"token_period": "2h"},
			data: map[string]any{"ttl": "5m"}, wantTTL: 2 * time.Hour, wantPeriod: 2 * time.Hour},
		{name: "legacy period", role: map[string]any{"period": "2h"}, wantTTL: 2 * time.Hour, wantPeriod: 2 * time.Hour},
		{name: "period capped by role explicit max", role: map[string]any{"token_period": "2h", "token_explicit_max_ttl": "1h"},
			wantTTL: time.Hour, wantPeriod: time.Hour, wantMax: time.Hour, wantWarnings: 1},
		{name: "lesser period wins", role: map[string]any{"token_period": "2h"}, root: true,
			data: map[string]any{"period": "1h"}, wantTTL: time.Hour, wantPeriod: time.Hour, wantWarnings: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeRole(t, "r", tt.role)
			c := f.root
			if !tt.root {
				c = f.child(t, f.root, "default")
			}
			resp, e := f.createViaRole(t, c, "r", tt.data)
			if e.TTL != tt.wantTTL || e.Period != tt.wantPeriod || e.ExplicitMaxTTL != tt.wantMax {
				t.Fatalf("ttl %v period %v explicit max %v; want %v %v %v", e.TTL, e.Period, e.ExplicitMaxTTL, tt.wantTTL, tt.wantPeriod, tt.wantMax)
			}
			if got := resp.Data["auth"].(map[string]any)["lease_duration"]; got != int64(tt.wantTTL/time.Second) {
				t.Fatalf("lease_duration %v", got)
			}
			if len(resp.Warnings) != tt.wantWarnings {
				t.Fatalf("warnings %q, want %d", resp.Warnings, tt.wantWarnings)
			}
		})
	}
}

// TestRolePeriodicRenewal: a non-root caller's token from a periodic role
// renews by the period (increment ignored), up to the role's explicit max.
func TestRolePeriodicRenewal(t *testing.T) {
	f := newFixture(t)
	f.writeRole(t, "r", map[string]any{"token_period": "1h", "token_explicit_max_ttl": "3h", "allowed_policies": "ci"})
	c := f.create(t, &Entry{Policies: []string{"default"}, Parent: f.root.HashedID, TTL: 10 * time.Hour}) // outlives the child
	_, e := f.createViaRole(t, c, "r", nil)
	start := e.CreationTime
	steps := []struct {
		advance time.Duration
		want    time.Time // expiry after renewing
	}{
		{50 * time.Minute, start.Add(time.Hour + 50*time.Minute)},
		{50 * time.Minute, start.Add(2*time.Hour + 40*time.Minute)},
		{50 * time.Minute, start.Add(3 * time.Hour)}, // capped by the explicit max
	}
	for i, st := range steps {
		f.clock.Advance(st.advance)
		resp, err := f.call(e, logical.UpdateOperation, "renew-self", map[string]any{"increment": "10h"})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		r, _ := f.s.Lookup(context.Background(), e.ID)
		if !r.ExpireTime.Equal(st.want) {
			t.Fatalf("step %d: expires %v, want %v", i, r.ExpireTime, st.want)
		}
		want := int64(st.want.Sub(f.clock.Now()).Round(time.Second) / time.Second)
		if got := resp.Data["auth"].(map[string]any)["lease_duration"]; got != want {
			t.Fatalf("step %d: lease_duration %v, want %d", i, got, want)
		}
	}
	f.clock.Advance(time.Hour)
	if f.valid(t, e) {
		t.Fatal("token outlived the role's explicit max")
	}
}

// TestRoleRenewalReadsTheRole: renewal re-reads the role, as Vault does.
func TestRoleRenewalReadsTheRole(t *testing.T) {
	ctx := context.Background()
	renew := func(t *testing.T, f *fixture, e *Entry) (*Entry, error) {
		t.Helper()
		_, err := f.call(f.root, logical.UpdateOperation, "renew", map[string]any{"token": e.ID})
		if err != nil {
			return nil, err
		}
		r, _ := f.s.Lookup(ctx, e.ID)
		return r, nil
	}
	t.Run("new period", func(t *testing.T) {
		f := newFixture(t)
		f.writeRole(t, "r", map[string]any{"period": "1h"})
		_, e := f.createViaRole(t, f.child(t, f.root, "default"), "r", nil)
		f.writeRole(t, "r", map[string]any{"token_period": "2h"})
		r, err := renew(t, f, e)
		if err != nil || r.Period != 2*time.Hour || !r.ExpireTime.Equal(f.clock.Now().Add(2*time.Hour)) {
			t.Fatalf("renew: %v %v", r, err)
		}
	})
	t.Run("period removed", func(t *testing.T) {
		f := newFixture(t)
		f.writeRole(t, "r", map[string]any{"token_period": "2h"})
		_, e := f.createViaRole(t, f.child(t, f.root, "default"), "r", nil)
		f.writeRole(t, "r", map[string]any{"token_period": 0})
		f.clock.Advance(time.Minute)
		r, err := renew(t, f, e)
		// No longer periodic: renews by its creation TTL.
		if err != nil || r.Period != 0 || !r.ExpireTime.Equal(f.clock.Now().Add(2*time.Hour)) {
			t.Fatalf("renew: %v %v", r, err)
		}
	})
	t.Run("lowered explicit max applies", func(t *testing.T) {
		f := newFixture(t)
		f.writeRole(t, "r", map[string]any{"token_explicit_max_ttl": "10h"})
		_, e := f.createViaRole(t, f.child(t, f.root, "default"), "r", nil)
		f.writeRole(t, "r", map[string]any{"token_explicit_max_ttl": "90m"})
		f.clock.Advance(50 * time.Minute)
		r, err := renew(t, f, e)
		if err != nil || r.ExplicitMaxTTL != 90*time.Minute || !r.ExpireTime.Equal(e.CreationTime.Add(90*time.Minute)) {
			t.Fatalf("renew: %v %v", r, err)
		}
	})
	t.Run("raised explicit max does not outlive the token's", func(t *testing.T) {
		f := newFixture(t)
		f.writeRole(t, "r", map[string]any{"token_explicit_max_ttl": "90m"})
		_, e := f.createViaRole(t, f.child(t, f.root, "default"), "r", nil)
		f.writeRole(t, "r", map[string]any{"token_explicit_max_ttl": "10h"})
		f.clock.Advance(50 * time.Minute)
		r, err := renew(t, f, e)
		if err != nil || r.ExplicitMaxTTL != 90*time.Minute || !r.ExpireTime.Equal(e.CreationTime.Add(90*time.Minute)) {
			t.Fatalf("renew: %v %v", r, err)
		}
	})
	t.Run("deleted role", func(t *testing.T) {
		f := newFixture(t)
		f.writeRole(t, "r", map[string]any{})
		_, e := f.createViaRole(t, f.child(t, f.root, "default"), "r", nil)
		before := e.ExpireTime
		if _, err := f.call(f.root, logical.DeleteOperation, "roles/r", nil); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		const msg = `failed to renew entry: original token role "r" could not be found, not renewing`
		for _, tc := range []struct {
			caller *Entry
			path   string
			data   map[string]any
		}{
			{f.root, "renew", map[string]any{"token": e.ID}},
			{e, "renew-self", nil},
		} {
			_, err := f.call(tc.caller, logical.UpdateOperation, tc.path, tc.data)
			if logical.CodeOf(err) != logical.CodeInvalidRequest || err.Error() != msg {
				t.Fatalf("%s: %v", tc.path, err)
			}
			if strings.Contains(err.Error(), e.ID) || strings.Contains(err.Error(), e.Accessor) {
				t.Fatal("error names the token")
			}
		}
		if _, err := f.s.Renew(ctx, e, 0); !errors.Is(err, ErrRoleNotFound) {
			t.Fatalf("Store.Renew: %v", err)
		}
		// The token keeps working until it expires; lookup still names the role.
		r, err := f.s.Lookup(ctx, e.ID)
		if err != nil || r == nil || !r.ExpireTime.Equal(before) || r.Role != "r" {
			t.Fatalf("after failed renewals: %v %v", r, err)
		}
		// A new role of the same name makes it renewable again, as in Vault.
		f.writeRole(t, "r", map[string]any{})
		if _, err := renew(t, f, e); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLookupShowsRole(t *testing.T) {
	f := newFixture(t)
	f.writeRole(t, "ci", map[string]any{"allowed_policies": "ci", "path_suffix": "v1-0"})
	c := f.child(t, f.root, "default")
	_, e := f.createViaRole(t, c, "ci", nil)
	for _, tc := range []struct {
		caller *Entry
		op     logical.Operation
		path   string
		data   map[string]any
	}{
		{f.root, logical.UpdateOperation, "lookup", map[string]any{"token": e.ID}},
		{e, logical.ReadOperation, "lookup-self", nil},
		{c, logical.UpdateOperation, "lookup-accessor", map[string]any{"accessor": e.Accessor}},
	} {
		resp, err := f.call(tc.caller, tc.op, tc.path, tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		data := roundTrip(t, resp.Data)
		checkShape(t, tc.path, data, withShape(lookupShape, map[string]string{"role": "string"}))
		if data["role"] != "ci" || data["path"] != "auth/token/create/ci/v1-0" {
			t.Fatalf("%s: role %v path %v", tc.path, data["role"], data["path"])
		}
	}
	// The role is stored with the entry, not recomputed.
	if r, _ := f.s.Lookup(context.Background(), e.ID); r.Role != "ci" {
		t.Fatalf("stored role %q", r.Role)
	}
	// Formatting an entry never shows the token or its accessor.
	if s := fmt.Sprintf("%v %+v %#v %s", e, e, e, e); strings.Contains(s, e.ID) || strings.Contains(s, e.Accessor) {
		t.Fatal("entry formatting leaks the token")
	}
}

// TestHammerRoles: concurrent updates of one role lose no field, and
// creating, renewing and deleting through it at once is race-free.
func TestHammerRoles(t *testing.T) {
	f := newFixture(t)
	f.writeRole(t, "r", map[string]any{"token_period": "1h"})
	updates := []map[string]any{
		{"orphan": true}, {"renewable": false}, {"path_suffix": "abc"}, {"token_num_uses": 7},
		{"allowed_policies": "a"}, {"disallowed_policies": "b"}, {"allowed_policies_glob": "c*"},
		{"disallowed_policies_glob": "d*"}, {"token_no_default_policy": true}, {"token_explicit_max_ttl": "2h"},
	}
	var wg sync.WaitGroup
	for _, u := range updates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.call(f.root, logical.UpdateOperation, "roles/r", u); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	want := roleDefaults("r", map[string]any{
		"orphan": true, "renewable": false, "path_suffix": "abc", "token_num_uses": 7.0,
		"allowed_policies": []any{"a"}, "disallowed_policies": []any{"b"}, "allowed_policies_glob": []any{"c*"},
		"disallowed_policies_glob": []any{"d*"}, "token_no_default_policy": true,
		"token_period": 3600.0, "token_explicit_max_ttl": 7200.0,
	})
	if got := f.readRole(t, "r"); !reflect.DeepEqual(got, want) {
		t.Fatalf("lost update:\n got %v\nwant %v", got, want)
	}

	f.writeRole(t, "p", map[string]any{"token_period": "1h", "orphan": true})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				resp, err := f.call(f.root, logical.UpdateOperation, "create/p", nil)
				if err != nil {
					continue // the role may be gone
				}
				e, _ := f.s.Lookup(context.Background(), resp.Data["auth"].(map[string]any)["client_token"].(string))
				if e != nil {
					_, _ = f.s.Renew(context.Background(), e, 0)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			if i%2 == 0 {
				_, _ = f.call(f.root, logical.DeleteOperation, "roles/p", nil)
			} else {
				_, _ = f.call(f.root, logical.UpdateOperation, "roles/p", map[string]any{"token_period": "2h", "orphan": true})
			}
		}
	}()
	wg.Wait()
	checkStorageInvariants(t, f)
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"dev-*", "dev-", true},
		{"dev-*", "dev-web", true},
		{"dev-*", "prod-web", false},
		{"*-admin", "ci-admin", true},
		{"*-admin", "ci-admins", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"**", "x", true},
		{"a?c", "abc", false}, // only '*' is special
		{"a.c", "abc", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// FuzzGlobMatch checks globMatch against a regular expression built from
// the pattern.
func FuzzGlobMatch(f *testing.F) {
	for _, s := range [][2]string{{"a*b*c", "aXbYc"}, {"*-admin", "ci-admin"}, {"a*a", "a"}, {"", ""}, {"**x", "yx"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(s) {
			t.Skip() // regexp reads invalid bytes as U+FFFD; globMatch compares bytes
		}
		parts := strings.Split(pattern, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re, err := regexp.Compile(`^(?s:` + strings.Join(parts, ".*") + `)$`)
		if err != nil {
			t.Skip()
		}
		if got, want := globMatch(pattern, s), re.MatchString(s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, regexp says %v", pattern, s, got, want)
		}
	})
}
