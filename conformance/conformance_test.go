package conformance

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/pgtest"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/wasm"
)

var update = flag.Bool("update", false, "rewrite golden.txt from the registry")

// The plugins under test are built once per run, without the race
// detector (bcrypt under -race takes a second per hash), in one go build.
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

// samples maps each broken sample plugin (testdata/NAME) to the checks it
// must fail, exactly.
var samples = map[string][]string{
	"badhandshake": {"core.handshake", "core.version.unknown-major"},
	"badschema":    {"core.schema", "core.openapi"},
	"sloppy":       {"core.help", "core.operations", "core.unknown-path", "core.unsupported-operation", "core.malformed-input"},
	"memstate":     {"core.storage.restart"},
	"leakycache":   {"core.storage.isolation"},
	"badlifecycle": {"core.invalidate", "core.cleanup"},
	"racy":         {"core.concurrency"},
	"slowpoke":     {"core.deadline"},
	"badsecret":    {"kv.roundtrip", "kv.list", "kv.delete", "leasing.issue", "leasing.renew", "leasing.revoke"},
	"badauth":      {"auth.login", "auth.login.refused", "auth.renew"},
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "ward-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds the first-party helper and every sample.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		args := []string{"build", "-o", binDir + string(filepath.Separator), "./testdata/firstparty"}
		for name := range samples {
			args = append(args, "./testdata/"+name)
		}
		cmd := exec.Command("go", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, stderr.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// runGoPlugin runs the suite against a binary.
func runGoPlugin(t *testing.T, bin string, args []string, opts Options) *Report {
	t.Helper()
	var log bytes.Buffer
	target, err := NewGoPlugin(GoPluginConfig{Command: bin, Args: args, Log: &syncWriter{w: &log}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	defer target.Close(ctx)
	rep := Run(ctx, target, opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log:\n%s", truncate(log.String(), 8000))
		}
	})
	return rep
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func reportText(rep *Report) string {
	var b strings.Builder
	_ = rep.WriteText(&b)
	return b.String()
}

// knownFailures are first-party plugins failing a check because of a bug
// outside conformance/. They are asserted exactly, so that a fix shows.
var knownFailures = map[string][]string{}

func requirePass(t *testing.T, rep *Report) {
	t.Helper()
	if known, ok := knownFailures[rep.Source]; ok {
		if got := rep.Failed(); !slices.Equal(got, known) || rep.Counts().Blocked > 0 {
			t.Fatalf("known failures %v, got %v:\n%s", known, got, reportText(rep))
		}
		t.Logf("%s fails %v, a known bug outside the suite (see knownFailures)", rep.Source, known)
		return
	}
	if !rep.Passed() {
		t.Fatalf("the plugin does not conform:\n%s", reportText(rep))
	}
	t.Logf("%s: pass in %s", rep.Plugin.Name, rep.Duration.Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("\n%s", reportText(rep))
	}
}

// TestFirstParty runs the suite against every first-party plugin over
// go-plugin, with its fixture from fixtures/.
func TestFirstParty(t *testing.T) {
	dir := binaries(t)
	for _, name := range []string{"kv", "database", "transit", "userpass", "approle", "jwt"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var f *Fixture
			var err error
			if name == "database" {
				pg := pgtest.New(t) // a throwaway PostgreSQL, as the database plugin's own tests use
				user, password := pg.NewSuperuser(t)
				env := map[string]string{"PGHOST": pg.Host, "PGPORT": fmt.Sprint(pg.Port), "PGUSER": user, "PGPASSWORD": password}
				b, _ := builtinFixtures.ReadFile("fixtures/database.json")
				f, err = ParseFixture(b, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			} else {
				f, _, err = BuiltinFixture(name) // none for a plugin that needs none (core only)
			}
			if err != nil {
				t.Fatal(err)
			}
			requirePass(t, runGoPlugin(t, filepath.Join(dir, "firstparty"), []string{name}, Options{Fixture: f, Source: name}))
		})
	}
	t.Run("kv-v2", func(t *testing.T) {
		t.Parallel()
		f := &Fixture{Config: map[string]string{"version": "2"},
			KV: &KVFixture{Write: "data/{key}", Wrap: "data", Unwrap: "data", List: "metadata/{parent}", Delete: "metadata/{key}"}}
		requirePass(t, runGoPlugin(t, filepath.Join(dir, "firstparty"), []string{"kv"}, Options{Fixture: f, Type: "secret", Source: "kv (version 2)"}))
	})
}

// TestWasm runs the suite against the first-party plugins that build as
// WASM modules. The modules are compiled into the compilation cache the
// wasm package's tests share, by their cachewarm helper built without
// -race (wazero's compiler is several times slower under the race
// detector).
func TestWasm(t *testing.T) {
	type module struct {
		pkg string
		typ logical.BackendType
	}
	modules := map[string]module{
		"kv":       {"../plugins/secrets/kv/cmd/kv-wasm", logical.TypeSecret},
		"transit":  {"../plugins/secrets/transit/cmd/transit-wasm", logical.TypeSecret},
		"userpass": {"../plugins/auth/userpass/cmd/userpass-wasm", logical.TypeAuth},
		"approle":  {"../plugins/auth/approle/cmd/approle-wasm", logical.TypeAuth},
		"jwt":      {"../plugins/auth/jwt/cmd/jwt-wasm", logical.TypeAuth},
	}
	dir := t.TempDir()
	args := []string{"build", "-buildmode=c-shared", "-o"}
	var wasmFiles []string
	for name, m := range modules {
		build := exec.Command("go", append(args, filepath.Join(dir, name+".wasm"), m.pkg)...)
		build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s.wasm: %v\n%s", name, err, out)
		}
		wasmFiles = append(wasmFiles, filepath.Join(dir, name+".wasm"))
	}
	cacheDir := os.Getenv("WARD_WASM_TEST_CACHE")
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cacheDir = filepath.Join(base, "ward", "wasm-test-compilation-cache")
	}
	warm := filepath.Join(dir, "cachewarm")
	if out, err := exec.Command("go", "build", "-o", warm,
		"-ldflags=-X github.com/tetratelabs/wazero/internal/version.version=dev", "../wasm/testdata/cachewarm").CombinedOutput(); err != nil {
		t.Fatalf("build cachewarm: %v\n%s", err, out)
	}
	if out, err := exec.Command(warm, append([]string{cacheDir}, wasmFiles...)...).CombinedOutput(); err != nil {
		t.Fatalf("cachewarm: %v\n%s", err, out)
	}
	for name, m := range modules {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bin, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
			if err != nil {
				t.Fatal(err)
			}
			// The mount's per-call deadline is the suite's request timeout:
			// five modules run at once here under -race, and 32 concurrent
			// bcrypt logins queueing for two instances can outlast the
			// server's 5 s default on a loaded 2-core machine, which says
			// nothing about the plugin. core.deadline still checks that
			// request deadlines are honoured.
			target, err := NewWasm(WasmConfig{Module: bin, CacheDir: cacheDir,
				Limits: wasm.Limits{CallTimeout: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			f, _, err := BuiltinFixture(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			defer target.Close(ctx)
			requirePass(t, Run(ctx, target, Options{Type: m.typ, Fixture: f, Source: name + ".wasm"}))
		})
	}
}

// TestBrokenSamples runs the suite against each broken sample and checks
// that exactly the checks it breaks fail, and nothing is blocked.
func TestBrokenSamples(t *testing.T) {
	dir := binaries(t)
	for name, want := range samples {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts Options
			if b, err := os.ReadFile(filepath.Join("testdata", name, "fixture.json")); err == nil {
				if opts.Fixture, err = ParseFixture(b, os.LookupEnv); err != nil {
					t.Fatal(err)
				}
			}
			rep := runGoPlugin(t, filepath.Join(dir, name), nil, opts)
			got := rep.Failed()
			slices.Sort(got)
			w := slices.Sorted(slices.Values(want))
			if !slices.Equal(got, w) || rep.Counts().Blocked > 0 || rep.Passed() {
				t.Fatalf("failed checks %v, want exactly %v (and nothing blocked):\n%s", got, w, reportText(rep))
			}
			for _, res := range rep.Results {
				for _, f := range res.Failures {
					if strings.TrimSpace(f.Message) == "" {
						t.Errorf("%s: a failure without a message", res.ID)
					}
				}
			}
		})
	}
}

// TestEveryCheckFailsSomewhere: each check has a sample that fails it.
func TestEveryCheckFailsSomewhere(t *testing.T) {
	covered := map[string]bool{}
	for _, ids := range samples {
		for _, id := range ids {
			covered[id] = true
		}
	}
	for _, c := range Checks() {
		if !covered[c.ID] {
			t.Errorf("no broken sample fails %s", c.ID)
		}
	}
}

// TestGolden: the registry matches golden.txt (IDs, profiles, Since).
func TestGolden(t *testing.T) {
	var b strings.Builder
	for _, c := range Checks() {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", c.ID, c.Profile, c.Since)
	}
	raw, err := os.ReadFile("golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	var header, body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "#") || line == "" {
			header.WriteString(line + "\n")
		} else {
			body.WriteString(line + "\n")
		}
	}
	if *update {
		if err := os.WriteFile("golden.txt", []byte(header.String()+b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if body.String() != b.String() {
		t.Fatalf("golden.txt does not match the registry (IDs are never renamed or reused; run with -update after adding a check):\n--- golden\n%s--- registry\n%s", body.String(), b.String())
	}
	seen := map[string]bool{}
	for _, c := range Checks() {
		if seen[c.ID] || !strings.HasPrefix(c.ID, map[Profile]string{ProfileCore: "core.", ProfileKV: "kv.", ProfileLeasing: "leasing.", ProfileAuthLogin: "auth."}[c.Profile]) {
			t.Errorf("check %s: duplicate, or its ID does not name its profile %s", c.ID, c.Profile)
		}
		seen[c.ID] = true
		if c.Run == nil || c.Description == "" {
			t.Errorf("check %s: no Run or no description", c.ID)
		}
		if _, err := semverMajor(c.Since); err != nil {
			t.Errorf("check %s: Since %q is not a release", c.ID, c.Since)
		}
	}
}
