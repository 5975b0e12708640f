package mount

import (
	"context"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{"secret": "secret/", "/a/b/": "a/b/", " kv ": "kv/"} {
		if got, err := NormalizePath(in); err != nil || got != want {
			t.Errorf("NormalizePath(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/", "a//b", "a/../b", "./x", "a*", "a+b", "a b"} {
		if _, err := NormalizePath(bad); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Errorf("NormalizePath(%q) = %v, want 400", bad, err)
		}
	}
}

func TestTableConflictsAndPersistence(t *testing.T) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	tab, err := Load(ctx, st, "mounts", SecretReserved)
	if err != nil {
		t.Fatal(err)
	}
	tab.AddBuiltin(&Entry{Path: "sys/", Type: "system"})
	if err := tab.Add(ctx, NewEntry("team/a/", "kv")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"team/", "team/a/b/", "team/a/", "sys/x/", "auth/foo/", "cubbyhole/", "identity/"} {
		if err := tab.Add(ctx, NewEntry(p, "kv")); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Errorf("Add(%q) = %v, want conflict", p, err)
		}
	}
	if err := tab.Add(ctx, NewEntry("team/b/", "kv")); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Remove(ctx, "sys/"); err == nil {
		t.Error("builtin mount removed")
	}
	if _, err := tab.Update(ctx, "team/b/", func(e *Entry) error { e.Description = "B"; return nil }); err != nil {
		t.Fatal(err)
	}
	again, err := Load(ctx, st, "mounts", SecretReserved)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Entries()) != 2 || again.Get("team/b/").Description != "B" || again.Get("sys/") != nil {
		t.Fatalf("reloaded table: %+v", again.Entries())
	}
	a, b := again.Get("team/a/"), again.Get("team/b/")
	if a.UUID == b.UUID || a.StoragePrefix() == b.StoragePrefix() || a.Accessor == b.Accessor {
		t.Fatal("mounts share an identity or a storage prefix")
	}
}

func TestConcurrentAddsCannotOverlap(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 200; round++ {
		tab, _ := Load(ctx, logical.NewInmemStorage(), "mounts", SecretReserved)
		paths := []string{"a/", "a/", "a/b/"}
		errs := make(chan error, len(paths))
		for _, p := range paths {
			go func(p string) { errs <- tab.Add(ctx, NewEntry(p, "kv")) }(p)
		}
		ok := 0
		for range paths {
			if <-errs == nil {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d overlapping mounts were added", round, ok)
		}
	}
}
