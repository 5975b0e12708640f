package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// TestTokenRolesThroughTheAPI drives auth/token/roles and
// auth/token/create/<role> end to end with the OpenBao client.
func TestTokenRolesThroughTheAPI(t *testing.T) {
	_, root := devServer(t, serverOpts{})

	if _, err := root.Logical().Write("auth/token/roles/ci", map[string]any{
		"allowed_policies":       "ci,deploy",
		"disallowed_policies":    "admin",
		"orphan":                 true,
		"token_explicit_max_ttl": "2h",
		"path_suffix":            "v1-0",
	}); err != nil {
		t.Fatal(err)
	}
	role, err := root.Logical().Read("auth/token/roles/ci")
	if err != nil || role == nil {
		t.Fatalf("read role: %v %v", role, err)
	}
	if role.Data["name"] != "ci" || role.Data["orphan"] != true || role.Data["token_type"] != "default-service" ||
		role.Data["token_explicit_max_ttl"] != json.Number("7200") || role.Data["path_suffix"] != "v1-0" {
		t.Fatalf("role: %v", role.Data)
	}
	list, err := root.Logical().List("auth/token/roles")
	if err != nil || list == nil || len(list.Data["keys"].([]any)) != 1 {
		t.Fatalf("list roles: %v %v", list, err)
	}

	// Create through the role: the role's explicit max caps the ttl, the
	// token is an orphan and its path names the role.
	sec, err := root.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"deploy"}, TTL: "5h"}, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if sec.Auth == nil || !sec.Auth.Orphan || sec.Auth.LeaseDuration != 7200 ||
		!slices.Equal(sec.Auth.Policies, []string{"default", "deploy"}) {
		t.Fatalf("auth: %+v", sec.Auth)
	}
	look, err := root.Auth().Token().Lookup(sec.Auth.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	policies, _ := look.TokenPolicies()
	ttl, _ := look.TokenTTL()
	if !slices.Equal(policies, []string{"default", "deploy"}) || ttl <= 0 || ttl > 2*time.Hour ||
		look.Data["orphan"] != true || look.Data["role"] != "ci" || look.Data["path"] != "auth/token/create/ci/v1-0" ||
		look.Data["explicit_max_ttl"] != json.Number("7200") {
		t.Fatalf("lookup: %v", look.Data)
	}

	// A disallowed policy, or one outside allowed_policies, is refused.
	for _, p := range []string{"admin", "other"} {
		if _, err := root.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{p}}, "ci"); statusOf(t, err) != 400 {
			t.Fatalf("policy %s: %v", p, err)
		}
	}

	// A caller allowed to use the role gets the role's policies without
	// holding them, but may not write roles.
	if err := root.Sys().PutPolicy("ci-creator", `path "auth/token/create/ci" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	creator, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"ci-creator"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(creator.Auth.ClientToken)
	sec, err = c.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"ci"}}, "ci")
	if err != nil || !slices.Equal(sec.Auth.Policies, []string{"ci", "default"}) {
		t.Fatalf("create as a non-root caller: %v %v", sec, err)
	}
	if _, err := c.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"admin"}}, "ci"); statusOf(t, err) != 400 {
		t.Fatalf("non-root, disallowed policy: %v", err)
	}
	if _, err := c.Logical().Write("auth/token/roles/ci", map[string]any{"allowed_policies": "admin"}); statusOf(t, err) != 403 {
		t.Fatalf("non-root role write: %v", err)
	}
	if _, err := c.Auth().Token().CreateWithRole(&api.TokenCreateRequest{}, "other"); statusOf(t, err) != 403 {
		t.Fatalf("another role: %v", err)
	}

	// Batch roles are refused; deleting the role stops renewals.
	if _, err := root.Logical().Write("auth/token/roles/b", map[string]any{"token_type": "batch"}); statusOf(t, err) != 400 {
		t.Fatalf("batch role: %v", err)
	}
	if _, err := root.Logical().Delete("auth/token/roles/ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Auth().Token().Renew(sec.Auth.ClientToken, 0); statusOf(t, err) != 400 {
		t.Fatalf("renew after the role was deleted: %v", err)
	}
	if r, err := root.Logical().Read("auth/token/roles/ci"); r != nil || err != nil {
		t.Fatalf("read after delete: %v %v", r, err)
	}
}
