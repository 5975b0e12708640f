package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// registerWasm registers a module through the HTTP API.
func registerWasm(c *api.Client, typ, name string, bin []byte) error {
	_, err := c.Logical().Write("sys/plugins/catalog/"+typ+"/"+name, map[string]any{
		"sha256": digestOf(bin), "wasm_module": base64.StdEncoding.EncodeToString(bin)})
	return err
}

// TestWasmPluginLifecycle takes a WASM plugin through what an operator
// does: register (with every refusal registration owes), mount with
// limits, serve the OpenBao client's KV v2 calls, tune, reload, survive a
// restart from the compilation cache, and stay isolated from a hostile
// module mounted beside it.
func TestWasmPluginLifecycle(t *testing.T) {
	kvBin := wasmGuest(t, "kv-wasm")
	probeBin := wasmGuest(t, "probe")
	wasmGuest(t, "fsimport")
	t0 := time.Now()
	pluginDir, dataDir := t.TempDir(), t.TempDir()
	opts := serverOpts{dataDir: dataDir, pluginDir: pluginDir, wasmCache: wasmGuests.cache}
	ts := startServer(t, opts)
	keys, rootToken := ts.initUnseal(1, 1)
	root := ts.client(rootToken)
	ctx := context.Background()
	t.Logf("%s: unsealed", time.Since(t0))

	// Registration refuses, with a 400 naming the problem, anything that
	// is not a well-formed Ward module of the type given.
	refusals := []struct {
		name, typ string
		body      map[string]any
		want      string
	}{
		{"wrong-digest", "secret", map[string]any{"sha256": strings.Repeat("ab", 32), "wasm_module": base64.StdEncoding.EncodeToString([]byte("\x00asm"))}, "SHA-256"},
		{"not-base64", "secret", map[string]any{"sha256": digestOf(kvBin), "wasm_module": "%%%"}, "base64"},
		{"garbage", "secret", map[string]any{"sha256": digestOf([]byte("garbage")), "wasm_module": base64.StdEncoding.EncodeToString([]byte("garbage"))}, "not a Ward WASM module"},
		{"fs", "secret", map[string]any{"sha256": digestOf(wasmGuest(t, "fsimport")), "wasm_module": base64.StdEncoding.EncodeToString(wasmGuest(t, "fsimport"))}, "WASI filesystem function"},
		{"abi2", "secret", map[string]any{"sha256": digestOf(wasmGuest(t, "abiv2")), "wasm_module": base64.StdEncoding.EncodeToString(wasmGuest(t, "abiv2"))}, "ABI"},
		{"kv-as-auth", "auth", map[string]any{"sha256": digestOf(kvBin), "wasm_module": base64.StdEncoding.EncodeToString(kvBin)}, `is a "secret" plugin`},
		{"with-command", "secret", map[string]any{"sha256": digestOf([]byte("\x00asm")), "wasm_module": base64.StdEncoding.EncodeToString([]byte("\x00asm")), "command": "kv"}, "no command"},
	}
	for _, r := range refusals {
		_, err := root.Logical().Write("sys/plugins/catalog/"+r.typ+"/"+r.name, r.body)
		if err == nil || statusOf(t, err) != 400 || !strings.Contains(err.Error(), r.want) {
			t.Errorf("register %s: want a 400 mentioning %q, got %v", r.name, r.want, err)
		}
		if s, err := root.Logical().Read("sys/plugins/catalog/" + r.typ + "/" + r.name); err != nil || s != nil {
			t.Errorf("register %s: a refused module is in the catalog: %v %v", r.name, s, err)
		}
	}
	t.Logf("%s: refusals", time.Since(t0))
	if files, _ := filepath.Glob(filepath.Join(pluginDir, "*")); len(files) != 0 {
		t.Fatalf("refused modules left files in the plugin directory: %v", files)
	}

	if err := registerWasm(root, "secret", "kv-wasm", kvBin); err != nil {
		t.Fatal(err)
	}
	entry, err := root.Logical().Read("sys/plugins/catalog/secret/kv-wasm")
	if err != nil || entry.Data["runtime"] != "wasm" || entry.Data["command"] != digestOf(kvBin)+".wasm" {
		t.Fatalf("catalog entry: %v %v", entry, err)
	}
	if stored, err := os.ReadFile(filepath.Join(pluginDir, digestOf(kvBin)+".wasm")); err != nil || digestOf(stored) != digestOf(kvBin) {
		t.Fatalf("the module is not pinned in the plugin directory: %v", err)
	}

	t.Logf("%s: registered", time.Since(t0))

	// WASM limits belong to WASM mounts, and bad ones are refused.
	err = root.Sys().Mount("proc", &api.MountInput{Type: "kv", Config: api.MountConfigInput{}, Options: map[string]string{"version": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = root.Logical().Write("sys/mounts/proc/tune", map[string]any{"wasm_memory_mb": 64})
	if err == nil || statusOf(t, err) != 400 || !strings.Contains(err.Error(), "WASM plugins only") {
		t.Fatalf("wasm limits on a process mount: %v", err)
	}
	_, err = root.Logical().Write("sys/mounts/kvw", map[string]any{"type": "kv-wasm", "options": map[string]any{"version": "2"},
		"config": map[string]any{"wasm_memory_mb": 100000}})
	if err == nil || statusOf(t, err) != 400 {
		t.Fatalf("absurd memory limit: %v", err)
	}
	_, err = root.Logical().Write("sys/mounts/kvw", map[string]any{"type": "kv-wasm", "options": map[string]any{"version": "2"},
		// The deadline includes waiting for an instance, and 64 clients queue
		// behind one write at a time: generous, for slow shared machines.
		"config": map[string]any{"wasm_memory_mb": 128, "wasm_timeout": "60s", "wasm_pool_size": 2}})
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("%s: registered and mounted", time.Since(t0))

	// The OpenBao client's KV v2 calls work against the WASM mount.
	kv := root.KVv2("kvw")
	if _, err := kv.Put(ctx, "app/db", map[string]any{"password": "s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "app/db", map[string]any{"password": "n3w"}); err != nil {
		t.Fatal(err)
	}
	got, err := kv.Get(ctx, "app/db")
	if err != nil || got.Data["password"] != "n3w" || got.VersionMetadata.Version != 2 {
		t.Fatalf("kv get: %+v %v", got, err)
	}
	old, err := kv.GetVersion(ctx, "app/db", 1)
	if err != nil || old.Data["password"] != "s3cr3t" {
		t.Fatalf("kv get version 1: %+v %v", old, err)
	}
	if list, err := root.Logical().List("kvw/metadata/app"); err != nil || fmt.Sprint(list.Data["keys"]) != "[db]" {
		t.Fatalf("kv list: %v %v", list, err)
	}

	// 64 concurrent clients: no lost write.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				if _, err := kv.Put(ctx, fmt.Sprintf("load/%d", i), map[string]any{"n": j}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 64 {
		s, err := kv.Get(ctx, fmt.Sprintf("load/%d", i))
		if err != nil || s.VersionMetadata.Version != 3 || fmt.Sprint(s.Data["n"]) != "2" {
			t.Fatalf("load/%d after concurrent writes: %+v %v", i, s, err)
		}
	}

	t.Logf("%s: KV v2 and 64 clients", time.Since(t0))

	// Tuning the limits swaps the instance pool; data stays.
	if _, err := root.Logical().Write("sys/mounts/kvw/tune", map[string]any{"wasm_pool_size": 3, "wasm_timeout": "50s"}); err != nil {
		t.Fatal(err)
	}
	tune, err := root.Logical().Read("sys/mounts/kvw/tune")
	if err != nil || fmt.Sprint(tune.Data["wasm_pool_size"]) != "3" || fmt.Sprint(tune.Data["wasm_timeout"]) != "50" || fmt.Sprint(tune.Data["wasm_memory_mb"]) != "128" {
		t.Fatalf("tune read: %v %v", tune, err)
	}
	_, err = root.Logical().Write("sys/mounts/kvw/tune", map[string]any{"wasm_memory_mb": 1})
	if err == nil || statusOf(t, err) != 400 {
		t.Fatalf("tune below the minimum memory: %v", err)
	}
	if tune, _ := root.Logical().Read("sys/mounts/kvw/tune"); fmt.Sprint(tune.Data["wasm_memory_mb"]) != "128" {
		t.Fatalf("a refused tune changed the mount: %v", tune.Data)
	}
	if got, err := kv.Get(ctx, "app/db"); err != nil || got.Data["password"] != "n3w" {
		t.Fatalf("after tune: %+v %v", got, err)
	}
	if _, err := root.Logical().Write("sys/plugins/reload/backend", map[string]any{"plugin": "kv-wasm"}); err != nil {
		t.Fatal(err)
	}
	if got, err := kv.Get(ctx, "app/db"); err != nil || got.Data["password"] != "n3w" {
		t.Fatalf("after reload: %+v %v", got, err)
	}

	t.Logf("%s: tune and reload", time.Since(t0))

	// A hostile module beside it: a runaway loop is cut at the mount's
	// deadline, a panic is a clean 502 that leaks nothing, and the KV
	// mount keeps serving throughout.
	if err := registerWasm(root, "secret", "probe", probeBin); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("sys/mounts/probe", map[string]any{"type": "probe", "config": map[string]any{"wasm_timeout": "1s"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = root.Logical().Read("probe/loop")
	if err == nil || statusOf(t, err) < 500 || time.Since(start) > 20*time.Second {
		t.Fatalf("runaway loop: %v after %s", err, time.Since(start))
	}
	_, err = root.Logical().Read("probe/panic")
	if err == nil || statusOf(t, err) < 500 || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("panicking module: %v", err)
	}
	if s, err := root.Logical().Write("probe/echo", map[string]any{"x": "y"}); err != nil || s == nil {
		t.Fatalf("the probe mount after its failures: %v %v", s, err)
	}
	if got, err := kv.Get(ctx, "app/db"); err != nil || got.Data["password"] != "n3w" {
		t.Fatalf("kv beside a hostile module: %+v %v", got, err)
	}

	t.Logf("%s: hostile module", time.Since(t0))

	// A restart serves the WASM mount again, from the compilation cache.
	ts.stop()
	ts = startServer(t, opts)
	c := ts.client("")
	if _, err := c.Sys().Unseal(keys[0]); err != nil {
		t.Fatal(err)
	}
	root = ts.client(rootToken)
	start = time.Now()
	got, err = root.KVv2("kvw").Get(ctx, "app/db")
	if err != nil || got.Data["password"] != "n3w" {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	t.Logf("first WASM request after unseal: %s", time.Since(start))
	if tune, err := root.Logical().Read("sys/mounts/kvw/tune"); err != nil || fmt.Sprint(tune.Data["wasm_pool_size"]) != "3" {
		t.Fatalf("limits after restart: %v %v", tune, err)
	}

	// Tampering with the stored module is caught when it is next loaded.
	if err := root.Sys().Unmount("kvw"); err != nil {
		t.Fatal(err)
	}
	ts.stop()
	if err := os.WriteFile(filepath.Join(pluginDir, digestOf(kvBin)+".wasm"), append(kvBin, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, opts)
	if _, err := ts.client("").Sys().Unseal(keys[0]); err != nil {
		t.Fatal(err)
	}
	root = ts.client(rootToken)
	err = root.Sys().Mount("kvw", &api.MountInput{Type: "kv-wasm", Options: map[string]string{"version": "2"}})
	if err == nil || statusOf(t, err) != 400 || !strings.Contains(err.Error(), "does not match the SHA-256") {
		t.Fatalf("mount of a tampered module: %v", err)
	}
}

// TestWasmPluginRegisteredByCLI registers a module with `ward plugin
// register -wasm`, mounts it with `ward secrets enable -wasm-*` and tunes
// it with `ward secrets tune`.
func TestWasmPluginRegisteredByCLI(t *testing.T) {
	kvBin := wasmGuest(t, "kv-wasm")
	dir := t.TempDir()
	modPath := filepath.Join(dir, "kv.wasm")
	if err := os.WriteFile(modPath, kvBin, 0o644); err != nil {
		t.Fatal(err)
	}
	ts, root := devServer(t, serverOpts{pluginDir: t.TempDir(), wasmCache: wasmGuests.cache})
	isolateEnv(t)
	t.Setenv("VAULT_ADDR", ts.addr)
	t.Setenv("VAULT_TOKEN", "root")

	if r := ward(t, "", "plugin", "register", "-wasm="+modPath, "-sha256="+strings.Repeat("0", 64), "secret", "kvw"); r.code == 0 || !strings.Contains(r.stderr, "not the -sha256 given") {
		t.Fatalf("register with a wrong digest: %d %s", r.code, r.stderr)
	}
	if r := ward(t, "", "plugin", "register", "-wasm="+modPath, "secret", "kvw"); r.code != 0 {
		t.Fatalf("register: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ward(t, "", "plugin", "info", "-format=json", "secret", "kvw"); r.code != 0 || !strings.Contains(r.stdout, `"runtime": "wasm"`) {
		t.Fatalf("info: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ward(t, "", "secrets", "enable", "-path=w", "-version=2", "-wasm-memory-mb=96", "-wasm-timeout=2s", "kvw"); r.code != 0 {
		t.Fatalf("enable: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ward(t, "", "kv", "put", "w/app", "k=v"); r.code != 0 {
		t.Fatalf("kv put: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ward(t, "", "secrets", "tune", "-wasm-pool-size=2", "-wasm-allowed-host=api.example.com", "w"); r.code != 0 {
		t.Fatalf("tune: %d %s %s", r.code, r.stdout, r.stderr)
	}
	tune, err := root.Logical().Read("sys/mounts/w/tune")
	if err != nil || fmt.Sprint(tune.Data["wasm_memory_mb"]) != "96" || fmt.Sprint(tune.Data["wasm_pool_size"]) != "2" ||
		fmt.Sprint(tune.Data["wasm_allowed_hosts"]) != "[api.example.com]" {
		t.Fatalf("tune read: %v %v", tune, err)
	}
	if r := ward(t, "", "kv", "get", "-field=k", "w/app"); r.code != 0 || strings.TrimSpace(r.stdout) != "v" {
		t.Fatalf("kv get after tune: %d %q %s", r.code, r.stdout, r.stderr)
	}
}
