package main

import (
	"context"
	"strings"
	"testing"

	"github.com/openbao/openbao/api/v2"
)

const appPolicy = `
path "secret/data/app/*" {
  capabilities = ["read", "list"]
}
path "secret/metadata/app/*" {
  capabilities = ["list"]
}
# Writes of new keys only: create without update.
path "secret/data/inbox/*" {
  capabilities = ["create"]
}
path "secret/data/local/*" {
  capabilities = ["read"]
  condition    = "cidrContains(\"127.0.0.0/8\", request.remote_addr)"
}
path "secret/data/remote/*" {
  capabilities = ["read"]
  condition    = "cidrContains(\"10.0.0.0/8\", request.remote_addr)"
}
path "secret/data/mine/*" {
  capabilities = ["read", "create", "update"]
  condition    = "request.path.startsWith(\"secret/data/mine/\" + token.meta[\"username\"] + \"/\")"
}
path "sys/mounts/+" {
  capabilities = ["update"]
  allowed_parameters = {
    "type" = ["kv"]
    "*"    = []
  }
}
`

// TestPoliciesThroughTheAPI drives HCL policies with CEL conditions end to
// end with the OpenBao client.
func TestPoliciesThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	ts, root := devServer(t, serverOpts{})
	kv := root.KVv2("secret")
	for _, p := range []string{"app/db", "local/x", "remote/x", "mine/ada/x", "mine/bob/x"} {
		if _, err := kv.Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatal(err)
		}
	}

	// CRUD of the policy.
	if err := root.Sys().PutPolicy("app", appPolicy); err != nil {
		t.Fatal(err)
	}
	got, err := root.Sys().GetPolicy("app")
	if err != nil || got != appPolicy {
		t.Fatalf("read back: %q %v", got, err)
	}
	names, err := root.Sys().ListPolicies()
	if err != nil || !contains(names, "app") || !contains(names, "default") || !contains(names, "root") {
		t.Fatalf("list: %v %v", names, err)
	}
	if err := root.Sys().PutPolicy("bad", `path "x" { capabilities = ["read"] condition = "request.path +" }`); statusOf(t, err) != 400 || !strings.Contains(err.Error(), "condition") {
		t.Fatalf("malformed condition: %v", err)
	}
	if err := root.Sys().PutPolicy("bad", `path "x" { capabilities = ["read"] condition = "request.path" }`); statusOf(t, err) != 400 {
		t.Fatalf("non-bool condition: %v", err)
	}
	if err := root.Sys().PutPolicy("root", `path "*" { capabilities = ["deny"] }`); statusOf(t, err) != 400 {
		t.Fatalf("writing root: %v", err)
	}
	if err := root.Sys().DeletePolicy("default"); statusOf(t, err) != 400 {
		t.Fatalf("deleting default: %v", err)
	}

	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"app"}, Metadata: map[string]string{"username": "ada"}})
	if err != nil {
		t.Fatal(err)
	}
	app := ts.client(sec.Auth.ClientToken)
	akv := app.KVv2("secret")

	// Path rules.
	if s, err := akv.Get(ctx, "app/db"); err != nil || s.Data["v"] != "app/db" {
		t.Fatalf("allowed read: %v %v", s, err)
	}
	if _, err := akv.Put(ctx, "app/db", map[string]any{"v": "x"}); statusOf(t, err) != 403 {
		t.Fatalf("write without update: %v", err)
	}
	if _, err := app.Logical().Read("secret/data/other"); statusOf(t, err) != 403 {
		t.Fatalf("read outside the policy: %v", err)
	}
	// create without update: the first write is a create, the second an update.
	if _, err := akv.Put(ctx, "inbox/msg", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := akv.Put(ctx, "inbox/msg", map[string]any{"v": "2"}); statusOf(t, err) != 403 {
		t.Fatalf("update with only create: %v", err)
	}

	// Conditions on the client's address (from the listener, not a header).
	if _, err := akv.Get(ctx, "local/x"); err != nil {
		t.Fatalf("CIDR allow: %v", err)
	}
	if _, err := akv.Get(ctx, "remote/x"); statusOf(t, err) != 403 {
		t.Fatalf("CIDR deny: %v", err)
	}
	// Per-user paths from token metadata.
	if _, err := akv.Get(ctx, "mine/ada/x"); err != nil {
		t.Fatalf("own path: %v", err)
	}
	if _, err := akv.Get(ctx, "mine/bob/x"); statusOf(t, err) != 403 {
		t.Fatalf("someone else's path: %v", err)
	}

	// Parameter constraints.
	if err := app.Sys().Mount("mine", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatalf("allowed mount type: %v", err)
	}
	if err := app.Sys().Mount("other", &api.MountInput{Type: "greeter"}); statusOf(t, err) != 403 {
		t.Fatalf("mount type outside allowed_parameters: %v", err)
	}

	// Capabilities and mount visibility.
	caps, err := app.Sys().CapabilitiesSelf("secret/data/app/db")
	if err != nil || strings.Join(caps, ",") != "list,read" {
		t.Fatalf("capabilities-self: %v %v", caps, err)
	}
	caps, err = root.Sys().Capabilities(sec.Auth.ClientToken, "secret/data/inbox/x")
	if err != nil || strings.Join(caps, ",") != "create" {
		t.Fatalf("capabilities: %v %v", caps, err)
	}
	if ui, err := app.Logical().Read("sys/internal/ui/mounts/secret/data/app/db"); err != nil || ui.Data["path"] != "secret/" {
		t.Fatalf("a token with access under secret/ must see it: %v %v", ui, err)
	}
	dflt, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client(dflt.Auth.ClientToken).Logical().Read("sys/internal/ui/mounts/secret/x"); statusOf(t, err) != 403 {
		t.Fatalf("a token without access under secret/ must not see it: %v", err)
	}

	// Deleting the policy takes effect on the next request.
	if err := root.Sys().DeletePolicy("app"); err != nil {
		t.Fatal(err)
	}
	if _, err := akv.Get(ctx, "app/db"); statusOf(t, err) != 403 {
		t.Fatalf("read after the policy was deleted: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
