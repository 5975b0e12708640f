package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func selfSHA(t testing.TB) (string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := fileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	return exe, hex.EncodeToString(sum)
}

// testRunner returns a runner whose catalog has the test plugins as builtins.
func testRunner(t testing.TB, sumOverride string) (*Runner, *Catalog) {
	exe, sum := selfSHA(t)
	if sumOverride != "" {
		sum = sumOverride
	}
	var builtins []Entry
	for _, name := range []string{"echo", "protocol2"} {
		builtins = append(builtins, Entry{Name: name, Type: "secret", Command: exe, SHA256: sum,
			Env: []string{"WARD_TEST_PLUGIN=" + name}})
	}
	builtins = append(builtins, Entry{Name: "auth-typed", Type: "secret", Command: exe, SHA256: sum,
		Env: []string{"WARD_TEST_PLUGIN=auth-typed"}})
	cat := NewCatalog(logical.NewInmemStorage(), "", builtins)
	r := NewRunner(RunnerConfig{Catalog: cat, LogLevel: "error"})
	t.Cleanup(r.Shutdown)
	return r, cat
}

func mountEcho(t testing.TB, r *Runner, id string, st logical.Storage) *Handle {
	t.Helper()
	h, err := r.Mount(context.Background(), MountSpec{ID: id, Path: id + "/", PluginType: "secret", PluginName: "echo", Storage: st})
	if err != nil {
		t.Fatalf("mount %s: %v", id, err)
	}
	return h.(*Handle)
}

func do(h *Handle, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return h.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data})
}

func TestRoundTripAndMultiplexing(t *testing.T) {
	r, _ := testRunner(t, "")
	a, b := logical.NewInmemStorage(), logical.NewInmemStorage()
	ha, hb := mountEcho(t, r, "a", a), mountEcho(t, r, "b", b)

	if _, err := do(ha, logical.UpdateOperation, "kv/k", map[string]any{"value": "from-a"}); err != nil {
		t.Fatal(err)
	}
	resp, err := do(ha, logical.ReadOperation, "kv/k", nil)
	if err != nil || resp.Data["value"] != "from-a" {
		t.Fatalf("read back: %v %v", resp, err)
	}
	// Mount b shares the process but not the storage.
	resp, err = do(hb, logical.ReadOperation, "kv/k", nil)
	if err != nil || resp != nil {
		t.Fatalf("mount b sees mount a's data: %v %v", resp, err)
	}
	if e, _ := a.Get(context.Background(), "k"); e == nil || string(e.Value) != "from-a" {
		t.Fatal("write did not land in mount a's view")
	}
	pa, _ := do(ha, logical.ReadOperation, "pid", nil)
	pb, _ := do(hb, logical.ReadOperation, "pid", nil)
	if pa.Data["pid"] != pb.Data["pid"] {
		t.Fatal("two mounts of one plugin should share one process")
	}
	if pa.Data["pid"] == os.Getpid() {
		t.Fatal("plugin ran in the kernel's process")
	}
}

func TestBatchThroughTheChannel(t *testing.T) {
	r, _ := testRunner(t, "")
	st := logical.NewInmemStorage()
	h := mountEcho(t, r, "batch", st)
	if _, err := do(h, logical.UpdateOperation, "batch/one/two", nil); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"one": "A", "two": "B"} {
		if e, _ := st.Get(context.Background(), k); e == nil || string(e.Value) != want {
			t.Fatalf("key %s: %v", k, e)
		}
	}
}

func TestPluginEnvironmentIsOnlyItsCatalogEnv(t *testing.T) {
	t.Setenv("WARD_TOKEN", "host-secret-token")
	r, _ := testRunner(t, "")
	h := mountEcho(t, r, "env", logical.NewInmemStorage())
	resp, err := do(h, logical.ReadOperation, "env", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Data["env"].([]any) {
		if strings.Contains(kv.(string), "host-secret-token") {
			t.Fatal("the host environment leaked into the plugin")
		}
	}
}

func TestStorageConfinedToOwnMounts(t *testing.T) {
	r, _ := testRunner(t, "")
	st := logical.NewInmemStorage()
	h := mountEcho(t, r, "own", st)
	// The host's resolver is what a forged mount ID hits.
	if _, ok := h.p.resolve("someone-else"); ok {
		t.Fatal("resolver answered for a mount the process does not serve")
	}
	if s, ok := h.p.resolve("own"); !ok || s != logical.Storage(st) {
		t.Fatal("resolver lost the process's own mount")
	}
	h.Close(context.Background())
	if _, ok := h.p.resolve("own"); ok {
		t.Fatal("resolver still answers for an unmounted mount")
	}
}

func TestChecksumMismatchRefused(t *testing.T) {
	bad := hex.EncodeToString(make([]byte, sha256.Size))
	r, _ := testRunner(t, bad)
	_, err := r.Mount(context.Background(), MountSpec{ID: "x", Path: "x/", PluginType: "secret", PluginName: "echo", Storage: logical.NewInmemStorage()})
	if err == nil || !strings.Contains(err.Error(), "does not match the SHA-256") {
		t.Fatalf("want checksum error, got %v", err)
	}
	if logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("checksum error should be a 400-class error, got code %v", logical.CodeOf(err))
	}
}

func TestProtocolVersion2Refused(t *testing.T) {
	r, _ := testRunner(t, "")
	_, err := r.Mount(context.Background(), MountSpec{ID: "p", Path: "p/", PluginType: "secret", PluginName: "protocol2", Storage: logical.NewInmemStorage()})
	if err == nil || !strings.Contains(err.Error(), "protocol mismatch") || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("want protocol error naming version 1, got %v", err)
	}
}

func TestWrongPluginTypeRefused(t *testing.T) {
	r, _ := testRunner(t, "")
	_, err := r.Mount(context.Background(), MountSpec{ID: "t", Path: "t/", PluginType: "secret", PluginName: "auth-typed", Storage: logical.NewInmemStorage()})
	if err == nil || !strings.Contains(err.Error(), "is of type \"auth\"") {
		t.Fatalf("want type mismatch, got %v", err)
	}
}

func TestPanicBecomesErrorAndProcessSurvives(t *testing.T) {
	r, _ := testRunner(t, "")
	h := mountEcho(t, r, "p", logical.NewInmemStorage())
	before, _ := do(h, logical.ReadOperation, "pid", nil)
	_, err := do(h, logical.ReadOperation, "panic", nil)
	if err == nil || strings.Contains(err.Error(), "secret-value-must-not-leak") {
		t.Fatalf("want a redacted panic error, got %v", err)
	}
	after, _ := do(h, logical.ReadOperation, "pid", nil)
	if before.Data["pid"] != after.Data["pid"] {
		t.Fatal("a panic restarted the process")
	}
}

func TestCrashRestartsOnNextRequest(t *testing.T) {
	r, _ := testRunner(t, "")
	st := logical.NewInmemStorage()
	h := mountEcho(t, r, "c", st)
	if _, err := do(h, logical.UpdateOperation, "kv/k", map[string]any{"value": "v"}); err != nil {
		t.Fatal(err)
	}
	first, _ := do(h, logical.ReadOperation, "pid", nil)
	_, err := do(h, logical.ReadOperation, "exit", nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("in-flight request on a dying plugin: want ErrUnavailable, got %v", err)
	}
	waitExited(t, h)
	resp, err := do(h, logical.ReadOperation, "kv/k", nil)
	if err != nil || resp.Data["value"] != "v" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
	second, _ := do(h, logical.ReadOperation, "pid", nil)
	if first.Data["pid"] == second.Data["pid"] {
		t.Fatal("process was not restarted")
	}
}

func waitExited(t *testing.T, h *Handle) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c := h.p.cur.Load(); c == nil || c.client.Exited() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("plugin did not exit")
}

func TestKillMidLoad(t *testing.T) {
	r, _ := testRunner(t, "")
	h := mountEcho(t, r, "m", logical.NewInmemStorage())
	info, ok := r.ProcessInfo("secret", "echo")
	if !ok {
		t.Fatal("no process info")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures, other int
	stop := make(chan struct{})
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := do(h, logical.UpdateOperation, "kv/x", map[string]any{"value": "1"})
				mu.Lock()
				switch {
				case err == nil:
				case errors.Is(err, ErrUnavailable):
					failures++
				default:
					other++
					t.Errorf("unexpected error class: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if _, err := do(h, logical.UpdateOperation, "kv/x", map[string]any{"value": "2"}); err != nil {
		t.Fatalf("after the kill and restart: %v", err)
	}
	info2, _ := r.ProcessInfo("secret", "echo")
	if info2.Pid == info.Pid {
		t.Fatal("process was not replaced")
	}
	t.Logf("requests failed cleanly during the crash: %d", failures)
}

func TestDeadlineHonoured(t *testing.T) {
	r, _ := testRunner(t, "")
	h := mountEcho(t, r, "d", logical.NewInmemStorage())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "sleep"})
	if err == nil {
		t.Fatal("want a deadline error")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("deadline not honoured: %v", time.Since(start))
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {1, 0}, {2, 100 * time.Millisecond}, {3, 200 * time.Millisecond}, {20, 30 * time.Second}} {
		if got := backoff(c.failures); got != c.want {
			t.Errorf("backoff(%d) = %v, want %v", c.failures, got, c.want)
		}
	}
}

// BenchmarkPluginRoundTrip measures kernel -> plugin -> kernel with one
// storage callback (a read of a stored key) against a real subprocess.
func BenchmarkPluginRoundTrip(b *testing.B) {
	r, _ := testRunner(b, "")
	st := logical.NewInmemStorage()
	h := mountEcho(b, r, "bench", st)
	_ = st.Put(context.Background(), &logical.StorageEntry{Key: "k", Value: []byte("value")})
	req := &logical.Request{Operation: logical.ReadOperation, Path: "kv/k"}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		resp, err := h.HandleRequest(context.Background(), req)
		lat = append(lat, time.Since(t0))
		if err != nil || resp == nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func TestNothingRestartsAfterShutdownOrLastUnmount(t *testing.T) {
	r, _ := testRunner(t, "")
	h := mountEcho(t, r, "s", logical.NewInmemStorage())
	info, _ := r.ProcessInfo("secret", "echo")
	r.Shutdown()
	if _, err := do(h, logical.ReadOperation, "pid", nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request after Shutdown: %v", err)
	}
	if _, ok := r.ProcessInfo("secret", "echo"); ok {
		t.Fatal("a process is known after Shutdown")
	}
	if err := syscall.Kill(info.Pid, 0); err == nil {
		waitGone(t, info.Pid)
	}
	if _, err := r.Mount(context.Background(), MountSpec{ID: "n", Path: "n/", PluginType: "secret", PluginName: "echo", Storage: logical.NewInmemStorage()}); err == nil {
		t.Fatal("Mount after Shutdown started a process")
	}

	r2, _ := testRunner(t, "")
	h2 := mountEcho(t, r2, "last", logical.NewInmemStorage())
	h2.Close(context.Background())
	if _, err := do(h2, logical.ReadOperation, "pid", nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request on a closed handle: %v", err)
	}
	if _, ok := r2.ProcessInfo("secret", "echo"); ok {
		t.Fatal("a closed handle revived its process")
	}
	// A new mount after the last one left gets a fresh process.
	h3 := mountEcho(t, r2, "again", logical.NewInmemStorage())
	if _, err := do(h3, logical.ReadOperation, "pid", nil); err != nil {
		t.Fatal(err)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still alive after Shutdown", pid)
}

// TestRestartIsNotBoundToTheTriggeringRequest: a request with a tiny
// deadline triggers the restart; the other mounts must still come back.
func TestRestartIsNotBoundToTheTriggeringRequest(t *testing.T) {
	r, _ := testRunner(t, "")
	var hs []*Handle
	for i := 0; i < 20; i++ {
		hs = append(hs, mountEcho(t, r, string(rune('a'+i)), logical.NewInmemStorage()))
	}
	info, _ := r.ProcessInfo("secret", "echo")
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExited(t, hs[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, _ = hs[0].HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "pid"})
	for i, h := range hs {
		if _, err := do(h, logical.ReadOperation, "pid", nil); err != nil {
			t.Fatalf("mount %d after a restart triggered by an impatient client: %v", i, err)
		}
	}
}
