package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPluginNewScaffold: `ward plugin new` writes a module that builds
// both ways, passes its own tests and the conformance suite over both
// transports, and registers and mounts on a server.
func TestPluginNewScaffold(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin module")
	}
	wardRoot, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "notes")
	ward(t, "", "plugin", "new", "-module=example.com/notes", "-ward-path="+wardRoot, "-dir="+dir, "notes").wantCode(t, 0)
	if r := ward(t, "", "plugin", "new", "-dir="+dir, "notes"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("scaffolding over an existing directory: %+v", r)
	}
	if r := ward(t, "", "plugin", "new", "-type=auth", "-dir="+dir+"2", "login"); r.code == 0 {
		t.Fatalf("-type=auth: %+v", r)
	}
	for _, f := range []string{"go.mod", "main.go", "wasm/main.go", "backend/backend.go", "backend/backend_test.go", "Makefile", "README.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("scaffold lacks %s: %v", f, err)
		}
	}

	// Offline: every module it needs is Ward's, already in the module cache.
	goCmd := func(env []string, args ...string) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off"), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("go %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}
	// (What `go mod tidy` would do online: Ward's go.sum covers every
	// module the plugin builds with.)
	sums, err := os.ReadFile(filepath.Join(wardRoot, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sums, 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd(nil, "test", "./...")
	goCmd(nil, "build", "-o", "bin/notes", ".")
	goCmd([]string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}, "build", "-buildmode=c-shared", "-o", "bin/notes.wasm", "./wasm")

	// It conforms, over both transports.
	for _, p := range []string{"bin/notes", "bin/notes.wasm"} {
		r := ward(t, "", "plugin", "conformance", filepath.Join(dir, p))
		if r.code != 0 {
			t.Fatalf("conformance of %s: %d\n%s\n%s", p, r.code, r.stdout, r.stderr)
		}
	}

	// It registers and mounts, as a process and as a WASM module.
	pluginDir := t.TempDir()
	bin, err := os.ReadFile(filepath.Join(dir, "bin/notes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, "notes"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ts, root := devServer(t, serverOpts{pluginDir: pluginDir, wasmCache: t.TempDir()})
	isolateEnv(t)
	t.Setenv("VAULT_ADDR", ts.addr)
	t.Setenv("VAULT_TOKEN", "root")
	ward(t, "", "plugin", "register", "-sha256="+digestOf(bin), "secret", "notes").wantCode(t, 0)
	ward(t, "", "plugin", "register", "-wasm="+filepath.Join(dir, "bin/notes.wasm"), "secret", "notes-wasm").wantCode(t, 0)
	for _, typ := range []string{"notes", "notes-wasm"} {
		ward(t, "", "secrets", "enable", "-path="+typ, typ).wantCode(t, 0)
		ward(t, "", "write", typ+"/notes/first", "text=hello").wantCode(t, 0)
		s, err := root.Logical().Read(typ + "/notes/first")
		if err != nil || s == nil || s.Data["text"] != "hello" {
			t.Fatalf("%s: read back: %v %v", typ, s, err)
		}
	}
}
