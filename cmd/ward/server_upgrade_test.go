package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// copyExecutable puts a copy of this test binary (which serves builtin
// plugins with `plugin exec NAME`) in dir and returns its digest.
func copyExecutable(t *testing.T, dir, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return digestOf(b)
}

// TestPluginUpgradeInPlaceUnderLoad moves a KV mount from version 1.0.0
// of its plugin to 2.0.0 and reloads it while clients write and read
// continuously: no request fails and no acknowledged write is lost.
func TestPluginUpgradeInPlaceUnderLoad(t *testing.T) {
	pluginDir := t.TempDir()
	ts, root := devServer(t, serverOpts{pluginDir: pluginDir})
	for _, v := range []struct{ version, file string }{{"1.0.0", "kv-a"}, {"2.0.0", "kv-b"}} {
		sum := copyExecutable(t, pluginDir, v.file)
		if _, err := root.Logical().Write("sys/plugins/catalog/secret/kv", map[string]any{
			"sha256": sum, "command": v.file, "args": []string{"plugin", "exec", "kv"}, "version": v.version}); err != nil {
			t.Fatal(err)
		}
	}
	// Several versions side by side, and the builtin still there.
	cat, err := root.Logical().Read("sys/plugins/catalog")
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, d := range cat.Data["detailed"].([]any) {
		if m := d.(map[string]any); m["name"] == "kv" && m["type"] == "secret" {
			versions = append(versions, fmt.Sprint(m["version"]))
		}
	}
	if len(versions) != 3 {
		t.Fatalf("catalog versions of kv: %v", versions)
	}
	if info, err := root.Logical().ReadWithData("sys/plugins/catalog/secret/kv", map[string][]string{"version": {"2.0.0"}}); err != nil || info.Data["command"] != "kv-b" {
		t.Fatalf("read version 2.0.0: %v %v", info, err)
	}
	_, err = root.Logical().Write("sys/mounts/nope", map[string]any{"type": "kv", "plugin_version": "9.9.9"})
	if err == nil || statusOf(t, err) != 400 || !strings.Contains(err.Error(), "versions: 0.1.0, 1.0.0, 2.0.0") {
		t.Fatalf("mount of a missing version: %v", err)
	}
	if _, err := root.Logical().Write("sys/mounts/kvp", map[string]any{"type": "kv", "plugin_version": "1.0.0",
		"options": map[string]any{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().DeleteWithData("sys/plugins/catalog/secret/kv", map[string][]string{"version": {"1.0.0"}}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("deregistering a version in use: %v", err)
	}

	// Load: each client writes its own key over and over and reads it back.
	ctx := context.Background()
	kv := root.KVv2("kvp")
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		acked    = map[string]int{}
		ops      atomic.Int64
	)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("client-%d", c)
			for n := 1; !stop.Load(); n++ {
				_, err := kv.Put(ctx, key, map[string]any{"n": n})
				if err == nil {
					mu.Lock()
					acked[key] = n
					mu.Unlock()
					var s *api.KVSecret
					s, err = kv.Get(ctx, key)
					if err == nil && fmt.Sprint(s.Data["n"]) != fmt.Sprint(n) {
						err = fmt.Errorf("read %v after writing %d", s.Data["n"], n)
					}
				}
				ops.Add(1)
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if _, err := root.Logical().Write("sys/mounts/kvp/tune", map[string]any{"plugin_version": "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("tune to 2.0.0 took %s", time.Since(start))
	time.Sleep(300 * time.Millisecond)
	start = time.Now()
	if _, err := root.Logical().Write("sys/plugins/reload/backend", map[string]any{"plugin": "kv"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload took %s", time.Since(start))
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d operations failed during the upgrade: %v", len(failures), ops.Load(), failures[:min(len(failures), 5)])
	}
	t.Logf("%d operations, none failed", ops.Load())
	for key, n := range acked {
		s, err := kv.Get(ctx, key)
		if err != nil || fmt.Sprint(s.Data["n"]) != fmt.Sprint(n) || s.VersionMetadata.Version != n {
			t.Fatalf("%s after the upgrade: %+v %v, want n=%d", key, s, err, n)
		}
	}
	m, err := root.Logical().Read("sys/mounts/kvp/tune")
	if err != nil || m.Data["plugin_version"] != "2.0.0" {
		t.Fatalf("mount after the upgrade: %v %v", m, err)
	}
	// The version 1.0.0 process is gone with its last mount.
	if _, err := root.Logical().DeleteWithData("sys/plugins/catalog/secret/kv", map[string][]string{"version": {"1.0.0"}}); err != nil {
		t.Fatalf("deregister the version no longer in use: %v", err)
	}
	_ = ts
}
