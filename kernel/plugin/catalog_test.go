package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// TestCatalogVersions: versions of one plugin live side by side with its
// unversioned entry and its builtin; each is found, listed and removed on
// its own.
func TestCatalogVersions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kv-next"), []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := "aa" + "00000000000000000000000000000000000000000000000000000000000000"[:62]
	c := NewCatalog(logical.NewInmemStorage(), dir, []Entry{{Name: "kv", Type: "secret", Version: "0.1.0", Command: "/ward"}})

	for _, bad := range []string{"latest", "1.2", "01.2.3"} {
		if err := c.Set(ctx, Entry{Name: "kv", Type: "secret", Version: bad, Command: "kv-next", SHA256: sum}); err == nil {
			t.Errorf("version %q accepted", bad)
		}
	}
	if err := c.Set(ctx, Entry{Name: "kv", Type: "secret", Version: "0.1.0", Command: "kv-next", SHA256: sum}); err == nil {
		t.Error("registering the builtin's version accepted")
	}
	for _, v := range []string{"1.0.0", "v2.0.0-rc.1"} {
		if err := c.Set(ctx, Entry{Name: "kv", Type: "secret", Version: v, Command: "kv-next", SHA256: sum}); err != nil {
			t.Fatal(err)
		}
	}
	// The unversioned lookup is still the builtin.
	if e, err := c.Get(ctx, "secret", "kv"); err != nil || !e.Builtin {
		t.Fatalf("unversioned: %+v %v", e, err)
	}
	for v, builtin := range map[string]bool{"0.1.0": true, "1.0.0": false, "v2.0.0-rc.1": false} {
		if e, err := c.GetVersion(ctx, "secret", "kv", v); err != nil || e.Builtin != builtin || e.Version != v {
			t.Errorf("version %s: %+v %v", v, e, err)
		}
	}
	if _, err := c.GetVersion(ctx, "secret", "kv", "3.0.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing version: %v", err)
	}
	if vs, err := c.Versions(ctx, "secret", "kv"); err != nil || !slices.Equal(vs, []string{"0.1.0", "1.0.0", "v2.0.0-rc.1"}) {
		t.Errorf("versions: %v %v", vs, err)
	}
	all, err := c.List(ctx, "secret")
	if err != nil || len(all) != 3 {
		t.Fatalf("list: %+v %v", all, err)
	}
	if err := c.Delete(ctx, "secret", "kv", "0.1.0"); err == nil {
		t.Error("deleting the builtin's version accepted")
	}
	if err := c.Delete(ctx, "secret", "kv", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVersion(ctx, "secret", "kv", "1.0.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted version still found: %v", err)
	}
	if e, err := c.GetVersion(ctx, "secret", "kv", "v2.0.0-rc.1"); err != nil || e.Command != "kv-next" {
		t.Errorf("the other version after a delete: %+v %v", e, err)
	}
}
