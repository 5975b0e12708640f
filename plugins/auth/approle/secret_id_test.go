package approle

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/logical"
)

func TestSecretIDGenerate(t *testing.T) {
	e := newEnv(t)
	e.role("web", map[string]any{"secret_id_num_uses": 10, "secret_id_ttl": "1h"})
	resp := e.ok(logical.UpdateOperation, "role/web/secret-id", nil)
	secret, acc := resp.Data["secret_id"].(string), resp.Data["secret_id_accessor"].(string)
	for _, v := range []string{secret, acc} {
		u, err := uuid.Parse(v)
		if err != nil || u.Version() != 4 || len(v) != 36 {
			t.Fatalf("%q is not a UUIDv4", v)
		}
	}
	if secret == acc {
		t.Fatal("accessor equals the secret ID")
	}
	// The role's limits are the defaults.
	if resp.Data["secret_id_ttl"] != int64(3600) || resp.Data["secret_id_num_uses"] != 10 {
		t.Fatalf("response %#v", resp.Data)
	}
	if e.storageContains(secret) {
		t.Fatal("the raw secret ID is in storage")
	}

	// Explicit values within the limits.
	resp = e.ok(logical.UpdateOperation, "role/web/secret-id", map[string]any{"ttl": "10m", "num_uses": 2})
	if resp.Data["secret_id_ttl"] != int64(600) || resp.Data["secret_id_num_uses"] != 2 {
		t.Fatalf("response %#v", resp.Data)
	}
	if got := e.ok(logical.ListOperation, "role/web/secret-id", nil).Data["keys"].([]string); len(got) != 2 || !slices.Contains(got, acc) {
		t.Fatalf("accessor list %v", got)
	}
	// Two generations never collide.
	s2, _ := e.secretID("web", nil)
	if s2 == secret {
		t.Fatal("duplicate secret ID")
	}
}

func TestSecretIDLimitsAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.role("lim", map[string]any{
		"secret_id_num_uses": 3, "secret_id_ttl": 600,
		"secret_id_bound_cidrs": "10.0.0.0/8", "token_bound_cidrs": "10.1.0.0/16",
	})
	p := "role/lim/secret-id"
	for _, c := range []struct {
		data map[string]any
		msg  string
	}{
		{map[string]any{"num_uses": 4}, "num_uses cannot be higher"},
		{map[string]any{"num_uses": 0}, "num_uses cannot be higher"},
		{map[string]any{"num_uses": -1}, "negative"},
		{map[string]any{"num_uses": "x"}, "num_uses"},
		{map[string]any{"ttl": 601}, "ttl cannot be longer"},
		{map[string]any{"ttl": 0}, "ttl cannot be longer"},
		{map[string]any{"ttl": "soon"}, "ttl"},
		{map[string]any{"cidr_list": "192.168.0.0/24"}, "secret_id_bound_cidrs"},
		{map[string]any{"cidr_list": "10.0.0.0/7"}, "secret_id_bound_cidrs"},
		{map[string]any{"cidr_list": "bogus"}, "cidr_list"},
		{map[string]any{"token_bound_cidrs": "10.2.0.0/16"}, "token_bound_cidrs"},
		{map[string]any{"token_bound_cidrs": []any{1}}, "token_bound_cidrs"},
		{map[string]any{"metadata": "{not json"}, "metadata"},
		{map[string]any{"metadata": `{"a": 1}`}, "metadata"},
		{map[string]any{"metadata": `["a"]`}, "metadata"},
		{map[string]any{"metadata": map[string]any{"a": "b"}}, "metadata"},
	} {
		e.fails(logical.UpdateOperation, p, c.data, logical.CodeInvalidRequest, c.msg)
	}
	if keys := e.keysUnder(secretIDPrefix); len(keys) != 0 {
		t.Fatalf("refused generations stored %v", keys)
	}
	resp := e.ok(logical.UpdateOperation, p, map[string]any{
		"num_uses": 3, "ttl": 600, "cidr_list": "10.5.0.0/16,10.6.7.8", "token_bound_cidrs": "10.1.2.0/24",
		"metadata": `{"team": "blue"}`,
	})
	if resp.Data["secret_id_num_uses"] != 3 {
		t.Fatalf("%#v", resp.Data)
	}

	// Unlimited role: anything goes.
	e.role("free", nil)
	resp = e.ok(logical.UpdateOperation, "role/free/secret-id", map[string]any{"num_uses": 100, "ttl": "240h"})
	if resp.Data["secret_id_num_uses"] != 100 || resp.Data["secret_id_ttl"] != int64(864000) {
		t.Fatalf("%#v", resp.Data)
	}

	e.fails(logical.UpdateOperation, "role/nope/secret-id", nil, logical.CodeNotFound, "does not exist")
	e.role("nobind", map[string]any{"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.1"})
	e.fails(logical.UpdateOperation, "role/nobind/secret-id", nil, logical.CodeInvalidRequest, "bind_secret_id")
}

func TestCustomSecretID(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("c", nil)
	resp := e.ok(logical.UpdateOperation, "role/c/custom-secret-id", map[string]any{"secret_id": "my-very-own-secret", "num_uses": 1})
	if resp.Data["secret_id"] != "my-very-own-secret" || resp.Data["secret_id_num_uses"] != 1 {
		t.Fatalf("%#v", resp.Data)
	}
	if e.storageContains("my-very-own-secret") {
		t.Fatal("custom secret ID stored in clear")
	}
	e.fails(logical.UpdateOperation, "role/c/custom-secret-id", map[string]any{"secret_id": "my-very-own-secret"},
		logical.CodeInvalidRequest, "already registered")
	e.fails(logical.UpdateOperation, "role/c/custom-secret-id", map[string]any{}, logical.CodeInvalidRequest, "secret_id")
	e.fails(logical.UpdateOperation, "role/c/custom-secret-id", map[string]any{"secret_id": " "}, logical.CodeInvalidRequest, "empty")
	e.fails(logical.UpdateOperation, "role/c/custom-secret-id", map[string]any{"secret_id": strings.Repeat("s", maxCredentialSz+1)},
		logical.CodeInvalidRequest, "longer")
	e.mustLogin(roleID, "my-very-own-secret", "127.0.0.1")
	e.loginFails(roleID, "my-very-own-secret", "127.0.0.1")
	// Spent, it can be registered again.
	e.ok(logical.UpdateOperation, "role/c/custom-secret-id", map[string]any{"secret_id": "my-very-own-secret"})
}

func TestSecretIDLookup(t *testing.T) {
	e := newEnv(t)
	e.role("l", map[string]any{"secret_id_bound_cidrs": "10.0.0.0/8"})
	resp := e.ok(logical.UpdateOperation, "role/l/secret-id", map[string]any{
		"metadata": `{"env":"prod"}`, "cidr_list": "10.1.0.0/16", "token_bound_cidrs": "10.9.9.9", "ttl": 90, "num_uses": 7,
	})
	secret, acc := resp.Data["secret_id"].(string), resp.Data["secret_id_accessor"].(string)
	want := map[string]any{
		"secret_id_accessor": acc, "secret_id_num_uses": 7, "secret_id_ttl": int64(90),
		"creation_time": "2026-11-24T04:38:52Z", "last_updated_time": "2026-11-24T04:38:52Z",
		"expiration_time": "2026-11-24T04:40:22Z", "metadata": map[string]string{"env": "prod"},
		"cidr_list": []string{"10.1.0.0/16"}, "token_bound_cidrs": []string{"10.9.9.9/32"},
	}
	got := e.ok(logical.UpdateOperation, "role/l/secret-id/lookup", map[string]any{"secret_id": secret}).Data
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lookup:\n got %#v\nwant %#v", got, want)
	}
	got = e.ok(logical.UpdateOperation, "role/l/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}).Data
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("accessor lookup:\n got %#v\nwant %#v", got, want)
	}
	for _, v := range got {
		if s, ok := v.(string); ok && s == secret {
			t.Fatal("lookup shows the secret ID")
		}
	}

	// A use updates the count and last_updated_time.
	roleID := e.ok(logical.ReadOperation, "role/l/role-id", nil).Data["role_id"].(string)
	e.clock.Advance(10 * time.Second)
	e.mustLogin(roleID, secret, "10.1.2.3:4567")
	got = e.ok(logical.UpdateOperation, "role/l/secret-id/lookup", map[string]any{"secret_id": secret}).Data
	if got["secret_id_num_uses"] != 6 || got["last_updated_time"] != "2026-11-24T04:39:02Z" {
		t.Fatalf("after a use: %#v", got)
	}

	// Unknown secret ID: nothing; unknown or malformed accessor: 404.
	if resp := e.ok(logical.UpdateOperation, "role/l/secret-id/lookup", map[string]any{"secret_id": "nope"}); resp != nil {
		t.Fatalf("unknown secret: %+v", resp)
	}
	e.fails(logical.UpdateOperation, "role/l/secret-id/lookup", nil, logical.CodeInvalidRequest, "missing secret_id")
	e.fails(logical.UpdateOperation, "role/l/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": uuid.NewString()},
		logical.CodeNotFound, "failed to find accessor")
	e.fails(logical.UpdateOperation, "role/l/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": "../../salt"},
		logical.CodeNotFound, "failed to find accessor")
	e.fails(logical.UpdateOperation, "role/l/secret-id-accessor/lookup", nil, logical.CodeInvalidRequest, "missing secret_id_accessor")
	e.fails(logical.UpdateOperation, "role/zz/secret-id/lookup", map[string]any{"secret_id": secret}, logical.CodeNotFound, "does not exist")

	// A secret ID of another role is unknown here.
	e.role("other", nil)
	if resp := e.ok(logical.UpdateOperation, "role/other/secret-id/lookup", map[string]any{"secret_id": secret}); resp != nil {
		t.Fatalf("cross-role lookup: %+v", resp)
	}
	e.fails(logical.UpdateOperation, "role/other/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc},
		logical.CodeNotFound, "failed to find accessor")
}

func TestSecretIDDestroy(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("d", nil)
	s1, a1 := e.secretID("d", nil)
	s2, a2 := e.secretID("d", nil)
	s3, _ := e.secretID("d", nil)

	e.ok(logical.UpdateOperation, "role/d/secret-id/destroy", map[string]any{"secret_id": s1})
	e.loginFails(roleID, s1, "127.0.0.1")
	e.fails(logical.UpdateOperation, "role/d/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": a1},
		logical.CodeNotFound, "failed to find")
	e.ok(logical.DeleteOperation, "role/d/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": a2})
	e.loginFails(roleID, s2, "127.0.0.1")
	e.ok(logical.DeleteOperation, "role/d/secret-id/destroy", map[string]any{"secret_id": s3})
	e.loginFails(roleID, s3, "127.0.0.1")
	if keys := append(e.keysUnder(secretIDPrefix), e.keysUnder(accessorPrefix)...); len(keys) != 0 {
		t.Fatalf("destroy left %v", keys)
	}
	// Destroying what is gone: nothing for a secret, 404 for an accessor.
	e.ok(logical.UpdateOperation, "role/d/secret-id/destroy", map[string]any{"secret_id": s1})
	e.fails(logical.UpdateOperation, "role/d/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": a1},
		logical.CodeNotFound, "failed to find")
	e.fails(logical.UpdateOperation, "role/d/secret-id/destroy", nil, logical.CodeInvalidRequest, "missing secret_id")

	// Another role's secret ID cannot be destroyed through this role.
	e.role("x", nil)
	sx, _ := e.secretID("x", nil)
	e.ok(logical.UpdateOperation, "role/d/secret-id/destroy", map[string]any{"secret_id": sx})
	e.mustLogin(e.ok(logical.ReadOperation, "role/x/role-id", nil).Data["role_id"].(string), sx, "127.0.0.1")
}
