package approle

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/logical"
)

func TestFactory(t *testing.T) {
	b, err := Factory(context.Background(), &logical.BackendConfig{StorageView: logical.NewInmemStorage()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Type() != logical.TypeAuth {
		t.Fatalf("type %q", b.Type())
	}
	if got := b.SpecialPaths().Unauthenticated; !slices.Equal(got, []string{"login", "login/*"}) {
		t.Fatalf("unauthenticated paths %v", got)
	}
	if _, err := Factory(context.Background(), nil); err == nil {
		t.Fatal("nil config accepted")
	}
}

func TestRoleDefaultsAndRead(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("web", nil)
	if _, err := uuid.Parse(roleID); err != nil {
		t.Fatalf("role_id %q is not a UUID", roleID)
	}
	got := e.ok(logical.ReadOperation, "role/web", nil).Data
	want := map[string]any{
		"bind_secret_id": true, "secret_id_bound_cidrs": []string{}, "secret_id_num_uses": 0,
		"secret_id_ttl": int64(0), "local_secret_ids": false,
		"token_ttl": int64(0), "token_max_ttl": int64(0), "token_period": int64(0), "token_explicit_max_ttl": int64(0),
		"token_policies": []string{}, "token_no_default_policy": false, "token_num_uses": 0,
		"token_bound_cidrs": []string{}, "token_type": "default",
		"policies": []string{}, "period": int64(0),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read:\n got %#v\nwant %#v", got, want)
	}
	if _, ok := got["role_id"]; ok {
		t.Fatal("role read shows role_id")
	}
}

func TestRoleWriteAllFields(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.UpdateOperation, "role/web", map[string]any{
		"bind_secret_id": true, "secret_id_bound_cidrs": "10.0.0.0/8, 192.168.1.7",
		"secret_id_num_uses": 3, "secret_id_ttl": "10m",
		"token_ttl": "1h", "token_max_ttl": 7200, "token_period": "30m", "token_explicit_max_ttl": "24h",
		"token_policies": []any{"B", "a", "a"}, "token_no_default_policy": true, "token_num_uses": 4,
		"token_bound_cidrs": []any{"10.1.0.0/16"}, "token_type": "service",
	})
	d := e.ok(logical.ReadOperation, "role/web", nil).Data
	checks := map[string]any{
		"secret_id_bound_cidrs": []string{"10.0.0.0/8", "192.168.1.7/32"},
		"secret_id_num_uses":    3, "secret_id_ttl": int64(600),
		"token_ttl": int64(3600), "token_max_ttl": int64(7200), "token_period": int64(1800),
		"token_explicit_max_ttl": int64(86400), "token_policies": []string{"a", "b"},
		"policies": []string{"a", "b"}, "period": int64(1800),
		"token_no_default_policy": true, "token_num_uses": 4, "token_bound_cidrs": []string{"10.1.0.0/16"},
		"token_type": "service",
	}
	for k, v := range checks {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}

	// An update changes only what it names.
	e.ok(logical.UpdateOperation, "role/web", map[string]any{"secret_id_num_uses": 5})
	d = e.ok(logical.ReadOperation, "role/web", nil).Data
	if d["secret_id_num_uses"] != 5 || d["token_ttl"] != int64(3600) || !reflect.DeepEqual(d["token_policies"], []string{"a", "b"}) {
		t.Fatalf("update lost fields: %#v", d)
	}
}

func TestRoleLegacyAliases(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.UpdateOperation, "role/old", map[string]any{
		"policies": "p1,p2", "bound_cidr_list": "127.0.0.1/32", "period": 60,
	})
	d := e.ok(logical.ReadOperation, "role/old", nil).Data
	if !reflect.DeepEqual(d["token_policies"], []string{"p1", "p2"}) ||
		!reflect.DeepEqual(d["secret_id_bound_cidrs"], []string{"127.0.0.1/32"}) ||
		d["token_period"] != int64(60) {
		t.Fatalf("legacy fields not applied: %#v", d)
	}
	// The new names win when both are given.
	e.ok(logical.UpdateOperation, "role/old", map[string]any{"policies": "x", "token_policies": "y"})
	d = e.ok(logical.ReadOperation, "role/old", nil).Data
	if !reflect.DeepEqual(d["token_policies"], []string{"y"}) {
		t.Fatalf("token_policies %v", d["token_policies"])
	}
}

func TestRoleConstraintRule(t *testing.T) {
	e := newEnv(t)
	e.fails(logical.UpdateOperation, "role/r", map[string]any{"bind_secret_id": false},
		logical.CodeInvalidRequest, "at least one constraint")
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8"})
	e.ok(logical.UpdateOperation, "role/t", map[string]any{"bind_secret_id": false, "token_bound_cidrs": "10.0.0.0/8"})
	// Removing the last constraint of an existing role is refused too.
	e.fails(logical.UpdateOperation, "role/r", map[string]any{"secret_id_bound_cidrs": ""},
		logical.CodeInvalidRequest, "at least one constraint")
}

func TestRoleBadInput(t *testing.T) {
	e := newEnv(t)
	for _, data := range []map[string]any{
		{"secret_id_bound_cidrs": "not-a-cidr"},
		{"bound_cidr_list": []any{"10.0.0.0/33"}},
		{"token_bound_cidrs": "x"},
		{"secret_id_num_uses": -1},
		{"secret_id_num_uses": "many"},
		{"secret_id_ttl": "forever"},
		{"secret_id_ttl": -5},
		{"token_ttl": "2h", "token_max_ttl": "1h"},
		{"token_num_uses": -1},
		{"token_type": "batch"},
		{"bind_secret_id": "perhaps"},
		{"token_policies": map[string]any{"a": 1}},
		{"role_id": ""},
		{"role_id": "   "},
		{"role_id": strings.Repeat("r", maxCredentialSz+1)},
		{"role_id": []any{"x"}},
	} {
		resp, err := e.do(logical.UpdateOperation, "role/bad", data)
		if logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Errorf("%v: want 400, got %v %+v", data, err, resp)
		}
	}
	if keys := e.keysUnder(rolePrefix); len(keys) != 0 {
		t.Fatalf("bad writes left roles: %v", keys)
	}
	e.fails(logical.UpdateOperation, "role/"+strings.Repeat("a", maxCredentialSz+1), nil, logical.CodeInvalidRequest, "invalid role name")
	e.fails(logical.UpdateOperation, "role/a/b", nil, logical.CodeNotFound, "unsupported path")
}

func TestRoleNamesAreCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	e.role("MyRole", map[string]any{"token_ttl": 5})
	if d := e.ok(logical.ReadOperation, "role/myrole", nil).Data; d["token_ttl"] != int64(5) {
		t.Fatalf("read by lowercase name: %#v", d)
	}
	resp := e.ok(logical.ListOperation, "role/", nil)
	if !reflect.DeepEqual(resp.Data["keys"], []string{"myrole"}) {
		t.Fatalf("list %v", resp.Data["keys"])
	}
}

func TestRoleListExistenceDelete(t *testing.T) {
	e := newEnv(t)
	if resp := e.ok(logical.ListOperation, "role", nil); resp != nil {
		t.Fatalf("empty list answered %+v", resp)
	}
	ctx := context.Background()
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "role/a", Storage: e.s}
	if found, exists, err := e.b.HandleExistenceCheck(ctx, req); err != nil || !found || exists {
		t.Fatalf("existence before create: %v %v %v", found, exists, err)
	}
	e.role("a", nil)
	e.role("b", nil)
	if found, exists, err := e.b.HandleExistenceCheck(ctx, req); err != nil || !found || !exists {
		t.Fatalf("existence after create: %v %v %v", found, exists, err)
	}
	if keys := e.ok(logical.ListOperation, "role/", nil).Data["keys"]; !reflect.DeepEqual(keys, []string{"a", "b"}) {
		t.Fatalf("list %v", keys)
	}
	e.secretID("a", nil)
	e.secretID("a", nil)
	e.ok(logical.DeleteOperation, "role/a", nil)
	if resp := e.ok(logical.ReadOperation, "role/a", nil); resp != nil {
		t.Fatalf("deleted role reads %+v", resp)
	}
	// Only the salt and role b (with its index entry) remain.
	var left []string
	for _, k := range e.storageKeys() {
		if !strings.HasPrefix(k, "role/b") && !strings.HasPrefix(k, roleIDPrefix) && k != saltKey {
			left = append(left, k)
		}
	}
	if len(left) != 0 || len(e.keysUnder(roleIDPrefix)) != 1 {
		t.Fatalf("role delete left %v (index %v)", left, e.keysUnder(roleIDPrefix))
	}
	// Deleting a missing role is not an error.
	e.ok(logical.DeleteOperation, "role/a", nil)
	e.fails(logical.ListOperation, "role/a/secret-id", nil, logical.CodeNotFound, "does not exist")
}

func TestRoleID(t *testing.T) {
	e := newEnv(t)
	first := e.role("a", map[string]any{"role_id": "custom-a"})
	if first != "custom-a" {
		t.Fatalf("role_id %q", first)
	}
	secret, _ := e.secretID("a", nil)
	e.mustLogin("custom-a", secret, "127.0.0.1")

	e.ok(logical.UpdateOperation, "role/a/role-id", map[string]any{"role_id": "renamed"})
	if got := e.ok(logical.ReadOperation, "role/a/role-id", nil).Data["role_id"]; got != "renamed" {
		t.Fatalf("role_id %v", got)
	}
	e.loginFails("custom-a", secret, "127.0.0.1")
	e.mustLogin("renamed", secret, "127.0.0.1")
	if n := len(e.keysUnder(roleIDPrefix)); n != 1 {
		t.Fatalf("%d index entries, want 1", n)
	}

	// Unique across roles, on create, on role update and on role-id update.
	e.role("b", nil)
	e.fails(logical.UpdateOperation, "role/c", map[string]any{"role_id": "renamed"}, logical.CodeInvalidRequest, "already in use")
	e.fails(logical.UpdateOperation, "role/b", map[string]any{"role_id": "renamed"}, logical.CodeInvalidRequest, "already in use")
	e.fails(logical.UpdateOperation, "role/b/role-id", map[string]any{"role_id": "renamed"}, logical.CodeInvalidRequest, "already in use")
	if resp := e.ok(logical.ReadOperation, "role/c", nil); resp != nil {
		t.Fatal("refused create stored the role")
	}
	// Setting a role's own role ID again is fine; freeing it lets another take it.
	e.ok(logical.UpdateOperation, "role/a/role-id", map[string]any{"role_id": "renamed"})
	e.ok(logical.UpdateOperation, "role/a", map[string]any{"role_id": "other"})
	e.ok(logical.UpdateOperation, "role/b/role-id", map[string]any{"role_id": "renamed"})

	e.fails(logical.UpdateOperation, "role/b/role-id", map[string]any{}, logical.CodeInvalidRequest, "must not be empty")
	e.fails(logical.UpdateOperation, "role/zz/role-id", map[string]any{"role_id": "x"}, logical.CodeNotFound, "does not exist")
	if resp := e.ok(logical.ReadOperation, "role/zz/role-id", nil); resp != nil {
		t.Fatalf("role-id of missing role: %+v", resp)
	}
}

// A stale index entry (a crash between the index write and the role write)
// neither logs in nor blocks the role ID.
func TestRoleIDStaleIndex(t *testing.T) {
	e := newEnv(t)
	e.role("a", map[string]any{"role_id": "id-a"})
	key, err := e.b.hmacKey(context.Background(), e.s)
	if err != nil {
		t.Fatal(err)
	}
	ent, _ := logical.StorageEntryJSON(roleIDPrefix+mac(key, domainRoleID, "stale"), roleIDIndex{Name: "a"})
	if err := e.s.Put(context.Background(), ent); err != nil {
		t.Fatal(err)
	}
	secret, _ := e.secretID("a", nil)
	e.loginFails("stale", secret, "127.0.0.1")
	e.role("b", map[string]any{"role_id": "stale"})
	e.mustLogin("stale", mustSecret(e, "b"), "127.0.0.1")
}

func mustSecret(e *env, role string) string {
	s, _ := e.secretID(role, nil)
	return s
}

func TestLocalSecretIDs(t *testing.T) {
	e := newEnv(t)
	e.role("a", map[string]any{"local_secret_ids": true})
	if d := e.ok(logical.ReadOperation, "role/a/local-secret-ids", nil).Data; d["local_secret_ids"] != true {
		t.Fatalf("%#v", d)
	}
	e.fails(logical.UpdateOperation, "role/a", map[string]any{"local_secret_ids": false}, logical.CodeInvalidRequest, "role creation")
	e.ok(logical.UpdateOperation, "role/a", map[string]any{"local_secret_ids": true})
}

func TestUnknownFieldWarns(t *testing.T) {
	e := newEnv(t)
	resp := e.ok(logical.UpdateOperation, "role/a", map[string]any{"colour": "blue"})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "colour") {
		t.Fatalf("warnings %+v", resp)
	}
}
