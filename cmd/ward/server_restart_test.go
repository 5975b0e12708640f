package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/openbao/openbao/api/v2"
)

// TestRestartKeepsDataAndEncryptsAtRest writes secrets, stops the server,
// starts a new one on the same data directory and checks the data is back
// after unsealing, that wrong keys open nothing, and that no plaintext is
// on disk.
func TestRestartKeepsDataAndEncryptsAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const marker = "plaintext-marker-7f3a9c-never-on-disk"

	ts := startServer(t, serverOpts{dataDir: dir})
	keys, rootToken := ts.initUnseal(3, 2)
	root := ts.client(rootToken)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("legacy", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"password": marker}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("legacy/app", map[string]any{"api_key": marker}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()

	// No plaintext secret, root token or child token anywhere on disk.
	for _, needle := range []string{marker, rootToken, tok.Auth.ClientToken} {
		if found := grepDir(t, dir, []byte(needle)); found != "" {
			t.Fatalf("plaintext found on disk in %s", found)
		}
	}

	// A new server on the same directory starts sealed.
	ts2 := startServer(t, serverOpts{dataDir: dir})
	anon := ts2.client("")
	st, err := anon.Sys().SealStatus()
	if err != nil || !st.Initialized || !st.Sealed || st.T != 2 || st.N != 3 {
		t.Fatalf("after restart: %+v %v", st, err)
	}

	// Wrong keys (from another cluster) do not unseal and read nothing.
	other := startServer(t, serverOpts{})
	otherKeys, _ := other.initUnseal(3, 2)
	if _, err := anon.Sys().Unseal(otherKeys[0]); err != nil {
		t.Fatal(err)
	}
	_, err = anon.Sys().Unseal(otherKeys[1])
	if statusOf(t, err) != 400 {
		t.Fatalf("wrong keys: want 400, got %v", err)
	}
	if st, _ := anon.Sys().SealStatus(); !st.Sealed || st.Progress != 0 {
		t.Fatalf("wrong keys left the server %+v", st)
	}
	if _, err := ts2.client(rootToken).Logical().Read("secret/data/app/db"); statusOf(t, err) != 503 {
		t.Fatalf("read with wrong keys: %v", err)
	}

	// The right keys bring everything back.
	for _, k := range keys[1:] {
		if _, err := anon.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	root2 := ts2.client(rootToken)
	got, err := root2.KVv2("secret").Get(ctx, "app/db")
	if err != nil || got.Data["password"] != marker {
		t.Fatalf("kv v2 after restart: %v %v", got, err)
	}
	v1, err := root2.Logical().Read("legacy/app")
	if err != nil || v1.Data["api_key"] != marker {
		t.Fatalf("kv v1 after restart: %v %v", v1, err)
	}
	if _, err := ts2.client(tok.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("token after restart: %v", err)
	}
}

// grepDir returns the first file under dir containing needle.
func grepDir(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			found = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
