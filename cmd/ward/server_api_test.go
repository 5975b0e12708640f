package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openbao/openbao/api/v2"
)

func statusOf(t *testing.T, err error) int {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want an API response error, got %v", err)
	}
	return re.StatusCode
}

// TestOpenBaoClientAcceptance drives a real Ward server with the official
// OpenBao Go client through the foundation's acceptance scenario.
func TestOpenBaoClientAcceptance(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, serverOpts{})
	anon := ts.client("")

	// Before init: health says 501, seal-status says uninitialized.
	st, err := anon.Sys().SealStatus()
	if err != nil || st.Initialized || !st.Sealed {
		t.Fatalf("seal-status before init: %+v %v", st, err)
	}

	// Init 5/3, unseal with 3 keys watching progress.
	init, err := anon.Sys().Init(&api.InitRequest{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(init.Keys) != 5 || len(init.KeysB64) != 5 || init.RootToken == "" {
		t.Fatalf("init response: %+v", init)
	}
	if _, err := anon.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1}); statusOf(t, err) != 400 {
		t.Fatalf("second init: %v", err)
	}
	for i := 0; i < 3; i++ {
		st, err := anon.Sys().Unseal(init.Keys[i])
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 && (st.Progress != i+1 || !st.Sealed || st.T != 3 || st.N != 5) {
			t.Fatalf("unseal progress %d: %+v", i, st)
		}
		if i == 2 && st.Sealed {
			t.Fatalf("still sealed after threshold: %+v", st)
		}
	}
	st, err = anon.Sys().SealStatus()
	if err != nil || st.Sealed || !st.Initialized || st.Type != "shamir" || st.Version == "" {
		t.Fatalf("seal-status after unseal: %+v %v", st, err)
	}

	root := ts.client(init.RootToken)

	// Health (the client sends several unknown parameters).
	h, err := anon.Sys().Health()
	if err != nil || !h.Initialized || h.Sealed || h.Version == "" {
		t.Fatalf("health: %+v %v", h, err)
	}

	// Tokens: create, lookup, lookup-self, revoke.
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", DisplayName: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	child := sec.Auth.ClientToken
	if sec.Auth.LeaseDuration != 3600 || !sec.Auth.Renewable || sec.Auth.Accessor == "" {
		t.Fatalf("token create auth: %+v", sec.Auth)
	}
	look, err := root.Auth().Token().Lookup(child)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := look.TokenTTL(); err != nil || ttl <= 0 {
		t.Fatalf("lookup ttl: %v %v", ttl, err)
	}
	if pols, _ := look.TokenPolicies(); len(pols) != 1 || pols[0] != "default" {
		t.Fatalf("lookup policies: %v", pols)
	}
	childClient := ts.client(child)
	self, err := childClient.Auth().Token().LookupSelf()
	if err != nil || self.Data["type"] != "service" {
		t.Fatalf("lookup-self: %v %v", self, err)
	}
	// A default-policy token cannot read secrets: 403.
	if _, err := childClient.Logical().Read("secret/data/x"); statusOf(t, err) != 403 {
		t.Fatalf("default token read: %v", err)
	}
	if err := root.Auth().Token().RevokeTree(child); err != nil {
		t.Fatal(err)
	}
	if _, err := childClient.Auth().Token().LookupSelf(); statusOf(t, err) != 403 {
		t.Fatalf("revoked token still works: %v", err)
	}
	// Bad token: 403.
	if _, err := ts.client("s.nope").Logical().Read("sys/mounts"); statusOf(t, err) != 403 {
		t.Fatalf("bad token: %v", err)
	}

	// Enable kv-v2 at a new path.
	if err := root.Sys().Mount("apps", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	mounts, err := root.Sys().ListMounts()
	if err != nil || mounts["apps/"] == nil || mounts["apps/"].Options["version"] != "2" || mounts["apps/"].Type != "kv" {
		t.Fatalf("mounts: %v %v", mounts, err)
	}
	kv := root.KVv2("apps")

	// Put, get, versions, CAS conflict.
	if _, err := kv.Put(ctx, "db/creds", map[string]any{"password": "s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "db/creds", map[string]any{"password": "s3cr3t-2"}, api.WithCheckAndSet(1)); err != nil {
		t.Fatal(err)
	}
	_, err = kv.Put(ctx, "db/creds", map[string]any{"password": "stale"}, api.WithCheckAndSet(1))
	if statusOf(t, err) != 400 || !strings.Contains(err.Error(), "check-and-set") {
		t.Fatalf("CAS conflict: %v", err)
	}
	got, err := kv.Get(ctx, "db/creds")
	if err != nil || got.Data["password"] != "s3cr3t-2" || got.VersionMetadata.Version != 2 {
		t.Fatalf("get: %+v %v", got, err)
	}
	v1, err := kv.GetVersion(ctx, "db/creds", 1)
	if err != nil || v1.Data["password"] != "s3cr3t" {
		t.Fatalf("get version 1: %+v %v", v1, err)
	}
	versions, err := kv.GetVersionsAsList(ctx, "db/creds")
	if err != nil || len(versions) != 2 {
		t.Fatalf("versions: %v %v", versions, err)
	}

	// Delete (soft), undelete, destroy.
	if err := kv.Delete(ctx, "db/creds"); err != nil {
		t.Fatal(err)
	}
	// As with Vault, a soft-deleted version reads as 404 with its metadata:
	// the client returns no data and the deletion time.
	if del, err := kv.Get(ctx, "db/creds"); err != nil || del.Data != nil || del.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("read after soft delete: %+v %v", del, err)
	}
	if err := kv.Undelete(ctx, "db/creds", []int{2}); err != nil {
		t.Fatal(err)
	}
	if got, err := kv.Get(ctx, "db/creds"); err != nil || got.Data["password"] != "s3cr3t-2" {
		t.Fatalf("after undelete: %v %v", got, err)
	}
	if err := kv.Destroy(ctx, "db/creds", []int{1}); err != nil {
		t.Fatal(err)
	}
	meta, err := kv.GetMetadata(ctx, "db/creds")
	if err != nil || meta.CurrentVersion != 2 || len(meta.Versions) != 2 || !meta.Versions["1"].Destroyed {
		t.Fatalf("metadata: %+v %v", meta, err)
	}
	if err := kv.PutMetadata(ctx, "db/creds", api.KVMetadataPutInput{MaxVersions: 5, CustomMetadata: map[string]any{"team": "core"}}); err != nil {
		t.Fatal(err)
	}
	if meta, err := kv.GetMetadata(ctx, "db/creds"); err != nil || meta.MaxVersions != 5 || meta.CustomMetadata["team"] != "core" {
		t.Fatalf("metadata after put: %+v %v", meta, err)
	}

	// List (the client sends GET ?list=true).
	list, err := root.Logical().List("apps/metadata/db")
	if err != nil || list == nil || len(list.Data["keys"].([]any)) != 1 || list.Data["keys"].([]any)[0] != "creds" {
		t.Fatalf("list: %v %v", list, err)
	}
	// Missing secret and empty list: 404 → nil from the client.
	if s, err := root.Logical().Read("apps/data/none"); err != nil || s != nil {
		t.Fatalf("missing read: %v %v", s, err)
	}
	if s, err := root.Logical().List("apps/metadata/none"); err != nil || s != nil {
		t.Fatalf("missing list: %v %v", s, err)
	}
	// Unknown mount: 404 with Vault's message.
	_, err = root.Logical().Write("nosuchmount/x", map[string]any{"a": "b"})
	if statusOf(t, err) != 404 || !strings.Contains(err.Error(), "no handler for route") {
		t.Fatalf("unknown mount: %v", err)
	}
	// Malformed JSON: 400.
	req := root.NewRequest(http.MethodPost, "/v1/apps/data/x")
	req.BodyBytes = []byte("{not json")
	_, err = root.RawRequestWithContext(ctx, req)
	if statusOf(t, err) != 400 || !strings.Contains(err.Error(), "failed to decode JSON input") {
		t.Fatalf("malformed JSON: %v", err)
	}

	// The KV version probe used by Vault Agent and CLIs.
	ui, err := root.Logical().Read("sys/internal/ui/mounts/apps/db/creds")
	if err != nil || ui.Data["path"] != "apps/" || ui.Data["options"].(map[string]any)["version"] != "2" {
		t.Fatalf("ui mounts probe: %v %v", ui, err)
	}

	// Seal: 503 afterwards, and health reports it.
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Read("apps/data/db/creds"); statusOf(t, err) != 503 || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("read while sealed: %v", err)
	}
	resp, err := http.Get(ts.addr + "/v1/sys/health")
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("health while sealed: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// Unseal again: the data is still there.
	for i := 2; i < 5; i++ {
		if _, err := anon.Sys().Unseal(init.Keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := kv.Get(ctx, "db/creds"); err != nil || got.Data["password"] != "s3cr3t-2" {
		t.Fatalf("after re-unseal: %v %v", got, err)
	}
}
