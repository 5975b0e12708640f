package wasm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/plugins/secrets/transit"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

// Test modules are built from source once per `go test` run (the Go build
// cache makes rebuilds a link step) and compiled by one shared Engine whose
// compilation cache persists across runs (wazero keys it by module digest
// and wazero version), because compiling a Go guest takes seconds, and a
// minute under -race. WARD_WASM_TEST_CACHE overrides the cache directory.
var guests = map[string]string{
	"probe":         "./testdata/guests/probe",
	"abiv2":         "./testdata/guests/abiv2",
	"fsimport":      "./testdata/guests/fsimport",
	"sockimport":    "./testdata/guests/sockimport",
	"unknownimport": "./testdata/guests/unknownimport",
	"kv":            "../plugins/secrets/kv/cmd/kv-wasm",
	"transit":       "../plugins/secrets/transit/cmd/transit-wasm", // benchmarks only
}

var (
	binaries   = map[string][]byte{}
	testEngine *Engine
	cacheDir   string

	compiledMu sync.Mutex
	compiled   = map[string]*Module{}
)

func TestMain(m *testing.M) {
	switch os.Getenv("WARD_WASM_TEST_PLUGIN") {
	case "kv":
		// Re-executed by the go-plugin benchmarks: serve KV as a subprocess plugin.
		sdkplugin.Serve(sdkplugin.ServeOpts{Name: "kv", Type: logical.TypeSecret, Version: "bench", Factory: kv.Factory})
		os.Exit(0)
	case "transit":
		sdkplugin.Serve(sdkplugin.ServeOpts{Name: "transit", Type: logical.TypeSecret, Version: "bench", Factory: transit.Factory})
		os.Exit(0)
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ward-wasm-guests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildGuests(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cacheDir = os.Getenv("WARD_WASM_TEST_CACHE")
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cacheDir = filepath.Join(base, "ward", "wasm-test-compilation-cache")
	}
	if err := warmCache(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEngine, err = NewEngine(EngineConfig{CacheDir: cacheDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testEngine.Close(context.Background())
	return m.Run()
}

// buildGuests builds every guest, two at a time.
func buildGuests(dir string) error {
	names := make([]string, 0, len(guests))
	for n := range guests {
		names = append(names, n)
	}
	sort.Strings(names)
	var mu sync.Mutex
	var errs []string
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out := filepath.Join(dir, name+".wasm")
			cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, guests[name])
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("build %s: %v\n%s", name, err, stderr.String()))
				mu.Unlock()
				return
			}
			b, err := os.ReadFile(out)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			binaries[name] = b
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("building test guests:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

// warmModules are compiled into the cache by cachewarm.
var warmModules = []string{"probe", "kv"}

// warmCache compiles the big guests into the cache with a helper built
// without -race (wazero keys test-binary caches as version "dev"; the
// helper is told to do the same).
func warmCache(dir string) error {
	bin := filepath.Join(dir, "cachewarm")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags=-X github.com/tetratelabs/wazero/internal/version.version=dev", "./testdata/cachewarm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build cachewarm: %v\n%s", err, out)
	}
	args := []string{cacheDir}
	for _, n := range warmModules {
		args = append(args, filepath.Join(dir, n+".wasm"))
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("cachewarm: %v\n%s", err, out)
	}
	return nil
}

// module compiles a guest once per run in the shared engine.
func module(t testing.TB, name string) *Module {
	t.Helper()
	compiledMu.Lock()
	defer compiledMu.Unlock()
	if m := compiled[name]; m != nil {
		return m
	}
	start := time.Now()
	m, err := testEngine.Compile(context.Background(), binaries[name])
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	t.Logf("compiled %s (%d KiB) in %s", name, len(binaries[name])>>10, time.Since(start).Round(time.Millisecond))
	compiled[name] = m
	return m
}

// logBuffer collects a mount's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mountProbe mounts the probe guest with the given limits.
func mountProbe(t testing.TB, lim Limits, st logical.Storage) (*Mount, *logBuffer) {
	t.Helper()
	if st == nil {
		st = logical.NewInmemStorage()
	}
	logs := &logBuffer{}
	m, err := testEngine.Mount(context.Background(), module(t, "probe"), MountConfig{
		ID: "probe-uuid", Path: "probe/", PluginName: "probe", Storage: st, Limits: lim, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatalf("mount probe: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m, logs
}

func req(op logical.Operation, path string, data map[string]any) *logical.Request {
	return &logical.Request{Operation: op, Path: path, Data: data, MountPoint: "probe/"}
}
