package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// WASM guests for the server tests, built once per test binary. Their
// compiled code is kept in a cache directory shared with the wasm
// package's tests and warmed by a helper built without -race: wazero
// compiles a Go guest in seconds, but in about a minute under -race.
var wasmGuestSources = map[string]string{
	"kv-wasm":       "../../plugins/secrets/kv/cmd/kv-wasm",
	"userpass-wasm": "../../plugins/auth/userpass/cmd/userpass-wasm",
	"probe":         "../../wasm/testdata/guests/probe",
	"fsimport":      "../../wasm/testdata/guests/fsimport",
	"abiv2":         "../../wasm/testdata/guests/abiv2",
}

var wasmGuests struct {
	once  sync.Once
	dir   string // the built modules, NAME.wasm
	cache string // the compilation cache to give servers (wasm_cache_dir)
	err   error
}

// wasmGuest returns a guest module's bytes, building every guest first.
func wasmGuest(t *testing.T, name string) []byte {
	t.Helper()
	wasmGuests.once.Do(buildWasmGuests)
	if wasmGuests.err != nil {
		t.Fatal(wasmGuests.err)
	}
	b, err := os.ReadFile(filepath.Join(wasmGuests.dir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func buildWasmGuests() {
	dir, err := os.MkdirTemp("", "ward-cmd-wasm-guests-")
	if err != nil {
		wasmGuests.err = err
		return
	}
	wasmGuests.dir = dir
	for name, src := range wasmGuestSources {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, name+".wasm"), src)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			wasmGuests.err = fmt.Errorf("build %s: %v\n%s", name, err, stderr.String())
			return
		}
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	wasmGuests.cache = filepath.Join(base, "ward", "wasm-test-compilation-cache")
	warm := filepath.Join(dir, "cachewarm")
	// Unlike the wasm package's test binary, this one reports wazero's
	// module version, which keys the cache: so does a plain build.
	build := exec.Command("go", "build", "-o", warm, "../../wasm/testdata/cachewarm")
	if out, err := build.CombinedOutput(); err != nil {
		wasmGuests.err = fmt.Errorf("build cachewarm: %v\n%s", err, out)
		return
	}
	args := []string{wasmGuests.cache, filepath.Join(dir, "kv-wasm.wasm"), filepath.Join(dir, "userpass-wasm.wasm"), filepath.Join(dir, "probe.wasm")}
	if out, err := exec.Command(warm, args...).CombinedOutput(); err != nil {
		wasmGuests.err = fmt.Errorf("cachewarm: %v\n%s", err, out)
	}
}
