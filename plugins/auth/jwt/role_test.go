package jwt

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func TestRoleDefaultsAndReadBack(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.UpdateOperation, "role/Dev", map[string]any{"bound_subject": "alice"})
	d := e.ok(logical.ReadOperation, "role/dev", nil).Data
	want := map[string]any{
		"role_type": "jwt", "bound_audiences": []string{}, "bound_subject": "alice",
		"bound_claims_type": "string", "bound_claims": map[string]any{}, "claim_mappings": map[string]string{},
		"user_claim": "sub", "user_claim_json_pointer": false, "groups_claim": "",
		"clock_skew_leeway": int64(60), "expiration_leeway": int64(0), "not_before_leeway": int64(0),
		"token_ttl": int64(0), "token_max_ttl": int64(0), "token_period": int64(0), "token_explicit_max_ttl": int64(0),
		"token_policies": []string{}, "token_no_default_policy": false, "token_num_uses": 0,
		"token_bound_cidrs": []string{}, "token_type": "default",
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("role read:\n got %#v\nwant %#v", d, want)
	}
}

func TestRoleFullWriteUpdateListDelete(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.UpdateOperation, "role/app", map[string]any{
		"role_type":         "jwt",
		"bound_audiences":   "a,b",
		"bound_claims_type": "glob",
		"bound_claims":      map[string]any{"env": "prod-*", "/team/name": []any{"x", "y"}},
		"claim_mappings":    map[string]any{"email": "mail", "/profile/dept": "dept"},
		"user_claim":        "/profile/login", "user_claim_json_pointer": true,
		"groups_claim":      "groups",
		"clock_skew_leeway": json.Number("-1"), "expiration_leeway": "2m", "not_before_leeway": 30,
		"token_policies": "B,a", "token_ttl": "1h", "token_max_ttl": "2h", "token_bound_cidrs": "10.0.0.0/8",
	})
	d := e.ok(logical.ReadOperation, "role/app", nil).Data
	checks := map[string]any{
		"bound_audiences":   []string{"a", "b"},
		"bound_claims_type": "glob",
		"bound_claims":      map[string]any{"env": "prod-*", "/team/name": []any{"x", "y"}},
		"claim_mappings":    map[string]string{"email": "mail", "/profile/dept": "dept"},
		"user_claim":        "/profile/login", "user_claim_json_pointer": true,
		"groups_claim":      "groups",
		"clock_skew_leeway": int64(-1), "expiration_leeway": int64(120), "not_before_leeway": int64(30),
		"token_policies": []string{"a", "b"}, "token_ttl": int64(3600), "token_max_ttl": int64(7200),
		"token_bound_cidrs": []string{"10.0.0.0/8"},
	}
	for k, v := range checks {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}

	// An update changes only what it sets.
	e.ok(logical.UpdateOperation, "role/app", map[string]any{"bound_subject": "svc", "token_ttl": 60})
	d = e.ok(logical.ReadOperation, "role/app", nil).Data
	if d["bound_subject"] != "svc" || d["token_ttl"] != int64(60) || d["groups_claim"] != "groups" ||
		!reflect.DeepEqual(d["token_policies"], []string{"a", "b"}) {
		t.Fatalf("update lost fields: %+v", d)
	}

	e.role("other", nil)
	if keys := e.ok(logical.ListOperation, "role/", nil).Data["keys"]; !reflect.DeepEqual(keys, []string{"app", "other"}) {
		t.Fatalf("list = %v", keys)
	}
	if keys := e.ok(logical.ListOperation, "role", nil).Data["keys"]; !reflect.DeepEqual(keys, []string{"app", "other"}) {
		t.Fatalf("list without slash = %v", keys)
	}
	e.ok(logical.DeleteOperation, "role/APP", nil)
	if resp := e.ok(logical.ReadOperation, "role/app", nil); resp != nil {
		t.Fatalf("deleted role still reads: %+v", resp)
	}
	e.ok(logical.DeleteOperation, "role/other", nil)
	if resp := e.ok(logical.ListOperation, "role/", nil); resp != nil {
		t.Fatalf("list after deleting all = %+v", resp)
	}
}

func TestRoleLegacyPolicies(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.UpdateOperation, "role/a", map[string]any{"bound_subject": "x", "policies": "p1, P2"})
	if got := e.ok(logical.ReadOperation, "role/a", nil).Data["token_policies"]; !reflect.DeepEqual(got, []string{"p1", "p2"}) {
		t.Fatalf("token_policies from policies = %v", got)
	}
	// token_policies wins over policies.
	e.ok(logical.UpdateOperation, "role/a", map[string]any{"policies": "old", "token_policies": "new"})
	if got := e.ok(logical.ReadOperation, "role/a", nil).Data["token_policies"]; !reflect.DeepEqual(got, []string{"new"}) {
		t.Fatalf("token_policies = %v", got)
	}
}

func TestRoleRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	bound := map[string]any{"bound_subject": "x"}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range bound {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name string
		data map[string]any
		msg  string
	}{
		{"oidc role", with(map[string]any{"role_type": "oidc"}), "not supported"},
		{"unknown role type", with(map[string]any{"role_type": "saml"}), `role_type must be "jwt"`},
		{"no bound constraint", map[string]any{"token_policies": "a"}, "at least one bound constraint"},
		{"empty user claim", with(map[string]any{"user_claim": ""}), "user_claim is required"},
		{"pointer flag without pointer", with(map[string]any{"user_claim": "sub", "user_claim_json_pointer": true}), "must be a JSON pointer"},
		{"numeric bound claim", with(map[string]any{"bound_claims": map[string]any{"n": json.Number("1")}}), "must be a string or a list of strings"},
		{"object bound claim", with(map[string]any{"bound_claims": map[string]any{"n": map[string]any{}}}), "must be a string or a list"},
		{"list with number", with(map[string]any{"bound_claims": map[string]any{"n": []any{"a", 1.0}}}), "list values must be strings"},
		{"empty bound claim name", with(map[string]any{"bound_claims": map[string]any{"": "a"}}), "must not be empty"},
		{"bound claims not a map", with(map[string]any{"bound_claims": "a=b"}), "bound_claims"},
		{"bad bound claims type", with(map[string]any{"bound_claims_type": "regex"}), "allowed values"},
		{"mapping to role", with(map[string]any{"claim_mappings": map[string]any{"x": "role"}}), `"role" is reserved`},
		{"mapping to groups", with(map[string]any{"groups_claim": "g", "claim_mappings": map[string]any{"x": "groups"}}), `"groups" is reserved`},
		{"duplicate mapping", with(map[string]any{"claim_mappings": map[string]any{"a": "k", "b": "k"}}), `claims "a" and "b" map to the same metadata key "k"`},
		{"mapping not string", with(map[string]any{"claim_mappings": map[string]any{"a": 1.0}}), "claim_mappings"},
		{"bad leeway", with(map[string]any{"clock_skew_leeway": "soon"}), "clock_skew_leeway: invalid duration"},
		{"huge leeway", with(map[string]any{"expiration_leeway": "48h"}), "expiration_leeway: must not exceed"},
		{"ttl over max", with(map[string]any{"token_ttl": "2h", "token_max_ttl": "1h"}), "token_ttl must not be greater"},
		{"bad cidr", with(map[string]any{"token_bound_cidrs": "nope"}), "token_bound_cidrs"},
		{"bad duration", with(map[string]any{"token_ttl": "forever"}), "token_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.fails(logical.UpdateOperation, "role/r", tc.data, logical.CodeInvalidRequest, tc.msg)
		})
	}
	if resp := e.ok(logical.ListOperation, "role/", nil); resp != nil {
		t.Fatalf("refused writes stored roles: %+v", resp.Data)
	}
	// token_bound_cidrs alone is a binding.
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"token_bound_cidrs": "10.0.0.0/8"})
}

func TestRoleExistenceCheck(t *testing.T) {
	e := newEnv(t)
	found, exists, err := e.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "role/x", Storage: e.s})
	if err != nil || !found || exists {
		t.Fatalf("before create: found=%v exists=%v err=%v", found, exists, err)
	}
	e.role("x", nil)
	found, exists, err = e.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "role/X", Storage: e.s})
	if err != nil || !found || !exists {
		t.Fatalf("after create: found=%v exists=%v err=%v", found, exists, err)
	}
}

func TestCorruptRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_ = e.s.Put(ctx, &logical.StorageEntry{Key: "role/bad", Value: []byte("{")})
	_ = e.s.Put(ctx, &logical.StorageEntry{Key: "config", Value: []byte("[")})
	e.fails(logical.ReadOperation, "role/bad", nil, logical.CodeInternal, "corrupt")
	e.fails(logical.ReadOperation, "config", nil, logical.CodeInternal, "corrupt")
	e.fails(logical.UpdateOperation, "login", map[string]any{"role": "bad", "jwt": "x.y.z"}, logical.CodeInternal, "corrupt")
}
