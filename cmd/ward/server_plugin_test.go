package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// TestMountIsolation: two KV mounts served by one plugin process cannot
// see each other's keys.
func TestMountIsolation(t *testing.T) {
	ctx := context.Background()
	_, root := devServer(t, serverOpts{})
	if err := root.Sys().Mount("team-a", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("team-b", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("team-a").Put(ctx, "shared/name", map[string]any{"v": "a-only"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("team-b").Get(ctx, "shared/name"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("team-b read team-a's key: %v", err)
	}
	if l, err := root.Logical().List("team-b/metadata/"); err != nil || l != nil {
		t.Fatalf("team-b lists team-a's keys: %v %v", l, err)
	}
	// Disabling a mount removes its data; re-enabling starts empty.
	if err := root.Sys().Unmount("team-a"); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("team-a", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("team-a").Get(ctx, "shared/name"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("data survived unmount: %v", err)
	}
}

// TestPluginKilledMidLoad kills the KV plugin process while 8 clients
// write: in-flight requests fail with a 5xx, later ones succeed after the
// automatic restart, and the kernel keeps serving throughout.
func TestPluginKilledMidLoad(t *testing.T) {
	ts, root := devServer(t, serverOpts{})
	info, ok := ts.srv.core.PluginProcess("secret", "kv")
	if !ok || info.Pid == os.Getpid() {
		t.Fatalf("kv should run in its own process: %+v", info)
	}
	var ok200, fail5xx, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := root.Logical().Write("secret/data/load/k", map[string]any{"data": map[string]any{"n": n}})
				var re *api.ResponseError
				switch {
				case err == nil:
					ok200.Add(1)
				case errors.As(err, &re) && re.StatusCode >= 500:
					fail5xx.Add(1)
				default:
					other.Add(1)
					t.Errorf("unexpected error: %v", err)
				}
			}
		}(i)
	}
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if _, err := root.Logical().Write("secret/data/load/k", map[string]any{"data": map[string]any{"after": "restart"}}); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	info2, _ := ts.srv.core.PluginProcess("secret", "kv")
	if info2.Pid == info.Pid {
		t.Fatal("plugin was not restarted")
	}
	if h, err := root.Sys().Health(); err != nil || h.Sealed {
		t.Fatalf("kernel unhealthy after plugin crash: %v %v", h, err)
	}
	t.Logf("during the kill: %d ok, %d failed with 5xx", ok200.Load(), fail5xx.Load())
}

// buildExample compiles the third-party example plugin into dir.
func buildExample(t *testing.T, dir, name string) (path, sum string) {
	t.Helper()
	path = filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", path, "github.com/wardproject/ward/sdk/examples/greeter")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build example plugin: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return path, hex.EncodeToString(h[:])
}

// TestThirdPartyPluginRegisteredByCLI builds the SDK example, registers it
// by SHA-256 with the ward CLI, mounts it and calls it. A wrong digest is
// refused with a clear error.
func TestThirdPartyPluginRegisteredByCLI(t *testing.T) {
	pluginDir := t.TempDir()
	_, sum := buildExample(t, pluginDir, "greeter")
	ts, root := devServer(t, serverOpts{pluginDir: pluginDir})
	isolateEnv(t)
	t.Setenv("VAULT_ADDR", ts.addr)
	t.Setenv("VAULT_TOKEN", "root")

	r := ward(t, "", "plugin", "register", "-sha256="+sum, "-command=greeter", "secret", "greeter")
	if r.code != 0 {
		t.Fatalf("register: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ward(t, "", "secrets", "enable", "-path=hello", "greeter"); r.code != 0 {
		t.Fatalf("enable: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := root.Logical().Write("hello/config", map[string]any{"greeting": "Bonjour"}); err != nil {
		t.Fatal(err)
	}
	s, err := root.Logical().Read("hello/greet/ada")
	if err != nil || s.Data["message"] != "Bonjour, ada!" {
		t.Fatalf("greet: %v %v", s, err)
	}
	if r := ward(t, "", "read", "-field=message", "hello/greet/grace"); r.code != 0 || strings.TrimSpace(r.stdout) != "Bonjour, grace!" {
		t.Fatalf("cli read: %d %q %s", r.code, r.stdout, r.stderr)
	}

	// Register a wrong digest under another name: mounting it is refused
	// with an error that names the mismatch.
	bad := strings.Repeat("0", 64)
	if r := ward(t, "", "plugin", "register", "-sha256="+bad, "-command=greeter", "secret", "greeter-bad"); r.code != 0 {
		t.Fatalf("register bad: %d %s", r.code, r.stderr)
	}
	err = root.Sys().Mount("bad", &api.MountInput{Type: "greeter-bad"})
	if statusOf(t, err) != 400 || !strings.Contains(err.Error(), "does not match the SHA-256") {
		t.Fatalf("mount with wrong digest: %v", err)
	}
	// Tampering with the binary after registration is caught at the next launch.
	if err := root.Sys().Unmount("hello"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(pluginDir, "greeter"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	err = root.Sys().Mount("hello", &api.MountInput{Type: "greeter"})
	if statusOf(t, err) != 400 || !strings.Contains(err.Error(), "does not match the SHA-256") {
		t.Fatalf("mount of a tampered binary: %v", err)
	}
}
