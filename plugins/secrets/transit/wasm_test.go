//go:build !wasip1

package transit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardproject/ward/plugins/secrets/transit"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/wasm"
)

// The engine compiled to WASM (cmd/transit-wasm) must serve what the
// library serves: these tests build the module, run it in the wasm host
// (wazero) and drive it as the kernel would, next to the in-process
// backend. Building and compiling take a while, so -short skips them.

var (
	wasmOnce   sync.Once
	wasmEngine *wasm.Engine
	wasmModule *wasm.Module
	wasmErr    error
)

// transitModule builds transit-wasm, compiles it (through a compilation
// cache warmed by a helper built without -race: wazero's compiler is
// several times slower under the race detector) and returns the module.
func transitModule(tb testing.TB) (*wasm.Engine, *wasm.Module) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and compiles a WASM module")
	}
	wasmOnce.Do(func() { wasmEngine, wasmModule, wasmErr = buildModule() })
	if wasmErr != nil {
		tb.Fatal(wasmErr)
	}
	return wasmEngine, wasmModule
}

func buildModule() (*wasm.Engine, *wasm.Module, error) {
	dir, err := os.MkdirTemp("", "ward-transit-wasm-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "transit.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./cmd/transit-wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("build transit-wasm: %v\n%s", err, stderr.String())
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, nil, err
	}
	cacheDir := os.Getenv("WARD_WASM_TEST_CACHE")
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cacheDir = filepath.Join(base, "ward", "wasm-test-compilation-cache")
	}
	warmCache(dir, cacheDir, out)
	e, err := wasm.NewEngine(wasm.EngineConfig{CacheDir: cacheDir})
	if err != nil {
		return nil, nil, err
	}
	mod, err := e.Compile(context.Background(), bin)
	if err != nil {
		e.Close(context.Background())
		return nil, nil, fmt.Errorf("compile transit-wasm: %w", err)
	}
	return e, mod, nil
}

// warmCache compiles the module into the cache with the wasm package's
// cachewarm helper, built without -race (and keyed as a test binary's
// wazero, version "dev"). Best effort: without it the test compiles the
// module itself, only slower.
func warmCache(dir, cacheDir, module string) {
	bin := filepath.Join(dir, "cachewarm")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags=-X github.com/tetratelabs/wazero/internal/version.version=dev", "../../../wasm/testdata/cachewarm")
	if err := build.Run(); err != nil {
		return
	}
	_ = exec.Command(bin, cacheDir, module).Run()
}

func mountTransit(tb testing.TB, lim wasm.Limits) (*wasm.Mount, logical.Storage) {
	tb.Helper()
	e, mod := transitModule(tb)
	st := logical.NewInmemStorage()
	m, err := e.Mount(context.Background(), mod, wasm.MountConfig{ID: "transit-uuid", Path: "transit/",
		PluginName: "transit", Storage: st, Limits: lim})
	if err != nil {
		tb.Fatalf("mount: %v", err)
	}
	tb.Cleanup(func() { m.Close(context.Background()) })
	return m, st
}

// handler is the in-process backend or a WASM mount.
type handler interface {
	HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error)
}

type inProcess struct {
	b  logical.Backend
	st logical.Storage
}

func (p inProcess) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	req.Storage = p.st
	return p.b.HandleRequest(ctx, req)
}

type step struct {
	op   logical.Operation
	path string
	data string // JSON
}

// script exercises every endpoint, including failures. Values that differ
// between runs (ciphertexts, signatures, keys, times) are masked in the
// comparison; the steps that feed one output into the next use "$N", the
// masked-out value of step N's first string field named like the key.
var script = []step{
	{logical.UpdateOperation, "keys/aes", `{"exportable": true, "allow_plaintext_backup": true}`},
	{logical.ReadOperation, "keys/aes", ``},
	{logical.UpdateOperation, "encrypt/aes", `{"plaintext": "dGhlIHF1aWNrIGJyb3duIGZveAo="}`},
	{logical.UpdateOperation, "decrypt/aes", `{"ciphertext": "$2"}`},
	{logical.UpdateOperation, "keys/aes/rotate", ``},
	{logical.UpdateOperation, "rewrap/aes", `{"ciphertext": "$2"}`},
	{logical.UpdateOperation, "decrypt/aes", `{"ciphertext": "$5"}`},
	{logical.UpdateOperation, "keys/aes/config", `{"min_decryption_version": 2}`},
	{logical.UpdateOperation, "decrypt/aes", `{"ciphertext": "$2"}`},
	{logical.UpdateOperation, "encrypt/aes", `{"batch_input": [{"plaintext": "YQ==", "reference": "a"}, {"plaintext": "!"}, {"plaintext": "Yg==", "key_version": 1}]}`},
	{logical.UpdateOperation, "datakey/plaintext/aes", `{"bits": 512}`},
	{logical.CreateOperation, "encrypt/conv", `{"plaintext": "eA==", "context": "Yw==", "convergent_encryption": true}`},
	{logical.UpdateOperation, "encrypt/conv", `{"plaintext": "eA==", "context": "Yw=="}`},
	{logical.UpdateOperation, "keys/ed", `{"type": "ed25519", "derived": true}`},
	{logical.UpdateOperation, "sign/ed", `{"input": "adba32==", "context": "YWJjZA=="}`},
	{logical.UpdateOperation, "verify/ed", `{"input": "adba32==", "context": "YWJjZA==", "signature": "$14"}`},
	{logical.UpdateOperation, "keys/ec", `{"type": "ecdsa-p256"}`},
	{logical.UpdateOperation, "sign/ec/sha2-384", `{"input": "adba32==", "marshaling_algorithm": "jws"}`},
	{logical.UpdateOperation, "verify/ec/sha2-384", `{"input": "adba32==", "marshaling_algorithm": "jws", "signature": "$17"}`},
	{logical.UpdateOperation, "hmac/aes/sha2-512", `{"input": "adba32=="}`},
	{logical.UpdateOperation, "verify/aes/sha2-512", `{"input": "adba32==", "hmac": "$19"}`},
	{logical.ReadOperation, "export/encryption-key/aes/latest", ``},
	{logical.ReadOperation, "backup/aes", ``},
	{logical.UpdateOperation, "restore/copy", `{"backup": "$22"}`},
	{logical.UpdateOperation, "decrypt/copy", `{"ciphertext": "$5"}`},
	{logical.ListOperation, "keys/", ``},
	{logical.UpdateOperation, "random/16", `{"format": "hex"}`},
	{logical.UpdateOperation, "hash/sha2-256", `{"input": "adba32=="}`},
	{logical.UpdateOperation, "encrypt/aes", `{"plaintext": "not base64"}`},
	{logical.UpdateOperation, "decrypt/aes", `{"ciphertext": "vault:v9:AAAA"}`},
	{logical.UpdateOperation, "encrypt/missing", `{"plaintext": "eA=="}`},
	{logical.ReadOperation, "export/signing-key/ec", ``},
	{logical.DeleteOperation, "keys/aes", ``},
	{logical.HelpOperation, "encrypt/aes", ``},
}

var (
	versioned = regexp.MustCompile(`vault:v(\d+):[A-Za-z0-9+/=_-]+`)
	timestamp = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
)

// runScript runs the script and returns each step's masked outcome.
func runScript(t *testing.T, h handler) []string {
	t.Helper()
	ctx := context.Background()
	outputs := make([]map[string]any, len(script))
	var lines []string
	for i, s := range script {
		raw := s.data
		for j := i - 1; j >= 0; j-- { // "$12" before "$1"
			raw = strings.ReplaceAll(raw, fmt.Sprintf("$%d", j), firstString(outputs[j]))
		}
		var data map[string]any
		if raw != "" {
			dec := json.NewDecoder(strings.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&data); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		resp, err := h.HandleRequest(ctx, &logical.Request{Operation: s.op, Path: s.path, Data: data, MountPoint: "transit/", MountType: "transit"})
		out := map[string]any{}
		if err != nil {
			out["error"] = map[string]any{"code": logical.CodeOf(err), "message": err.Error()}
		}
		if resp != nil {
			b, _ := json.Marshal(resp.Data)
			var d map[string]any
			_ = json.Unmarshal(b, &d)
			outputs[i] = d
			out["data"], out["warnings"], out["status"] = d, resp.Warnings, resp.StatusCode
		}
		lines = append(lines, fmt.Sprintf("%d %s %s: %s", i, s.op, s.path, mask(out)))
	}
	return lines
}

// firstString returns the value of the field a later step feeds on.
func firstString(d map[string]any) string {
	for _, k := range []string{"ciphertext", "signature", "hmac", "backup"} {
		if s, ok := d[k].(string); ok {
			return s
		}
	}
	return ""
}

// mask replaces what differs between two runs of the script.
func mask(orig map[string]any) string {
	var out map[string]any
	b, _ := json.Marshal(orig) // a copy: later steps feed on the real values
	_ = json.Unmarshal(b, &out)
	if d, ok := out["data"].(map[string]any); ok {
		for _, k := range []string{"random_bytes", "backup", "plaintext", "public_key"} {
			if _, ok := d[k]; ok && k != "plaintext" {
				d[k] = "<random>"
			}
		}
		if keys, ok := d["keys"].(map[string]any); ok {
			for v, k := range keys {
				switch k.(type) {
				case string:
					keys[v] = "<key>"
				case float64:
					keys[v] = "<time>"
				case map[string]any:
					k.(map[string]any)["public_key"] = "<public key>"
				}
			}
		}
		if p, ok := d["plaintext"].(string); ok && len(p) > 40 { // data keys
			d["plaintext"] = "<data key>"
		}
		if res, ok := d["batch_results"].([]any); ok {
			for _, r := range res {
				delete(r.(map[string]any), "publickey")
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
	s := versioned.ReplaceAllString(strings.TrimSpace(buf.String()), "vault:v$1:<b64>")
	return timestamp.ReplaceAllString(s, "<time>")
}

// The same script gives the same (masked) outcomes in process and in WASM.
func TestWASMDifferential(t *testing.T) {
	m, _ := mountTransit(t, wasm.Limits{PoolSize: 2})
	ctx := context.Background()
	st := logical.NewInmemStorage()
	b, err := transit.Factory(ctx, &logical.BackendConfig{StorageView: st, MountPoint: "transit/", MountType: "transit"})
	if err != nil {
		t.Fatal(err)
	}
	want := runScript(t, inProcess{b: b, st: st})
	got := runScript(t, m)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step differs:\n in-process: %s\n       wasm: %s", want[i], got[i])
		}
	}
	if testing.Verbose() {
		for _, l := range got {
			t.Log(l)
		}
	}
	if len(m.Schema().Paths) != len(b.Schema().Paths) {
		t.Fatalf("schema: %d paths in wasm, %d in process", len(m.Schema().Paths), len(b.Schema().Paths))
	}
}

// Encrypt and decrypt through the WASM host: a batch of 1,000 in one
// request, then every ciphertext decrypted by another instance of the
// pool, and a ciphertext made in process decrypts in WASM (same layout,
// same key after a backup and restore).
func TestWASMEncryptDecrypt(t *testing.T) {
	m, _ := mountTransit(t, wasm.Limits{PoolSize: 2})
	ctx := context.Background()
	do := func(op logical.Operation, path string, data map[string]any) *logical.Response {
		t.Helper()
		resp, err := m.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, MountPoint: "transit/"})
		if err != nil {
			t.Fatalf("%s %s: %v", op, path, err)
		}
		return resp
	}
	do(logical.UpdateOperation, "keys/k", map[string]any{"exportable": true, "allow_plaintext_backup": true})
	items := make([]any, 1000)
	for i := range items {
		items[i] = map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte(fmt.Sprint("item ", i)))}
	}
	res := do(logical.UpdateOperation, "encrypt/k", map[string]any{"batch_input": items}).Data["batch_results"].([]any)
	if len(res) != 1000 {
		t.Fatalf("%d results", len(res))
	}
	dec := make([]any, len(res))
	for i, r := range res {
		dec[i] = map[string]any{"ciphertext": r.(map[string]any)["ciphertext"]}
	}
	out := do(logical.UpdateOperation, "decrypt/k", map[string]any{"batch_input": dec}).Data["batch_results"].([]any)
	for i, r := range out {
		pt, _ := base64.StdEncoding.DecodeString(r.(map[string]any)["plaintext"].(string))
		if string(pt) != fmt.Sprint("item ", i) {
			t.Fatalf("item %d decrypts to %q", i, pt)
		}
	}
	// Concurrent single requests over both instances.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				pt := base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(w, "/", i)))
				r, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/k", Data: map[string]any{"plaintext": pt}})
				if err != nil {
					t.Error(err)
					return
				}
				r, err = m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "decrypt/k", Data: map[string]any{"ciphertext": r.Data["ciphertext"]}})
				if err != nil || r.Data["plaintext"] != pt {
					t.Errorf("round trip: %v %v", err, r)
					return
				}
			}
		}()
	}
	wg.Wait()

	// In process and WASM read each other's ciphertexts.
	backup := do(logical.ReadOperation, "backup/k", nil).Data["backup"].(string)
	st := logical.NewInmemStorage()
	b, _ := transit.Factory(ctx, &logical.BackendConfig{StorageView: st})
	if _, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "restore", Data: map[string]any{"backup": backup}, Storage: st}); err != nil {
		t.Fatal(err)
	}
	r, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/k", Data: map[string]any{"plaintext": "aW4gcHJvY2Vzcw=="}, Storage: st})
	if err != nil {
		t.Fatal(err)
	}
	if got := do(logical.UpdateOperation, "decrypt/k", map[string]any{"ciphertext": r.Data["ciphertext"]}).Data["plaintext"]; got != "aW4gcHJvY2Vzcw==" {
		t.Fatalf("in-process ciphertext decrypts in wasm to %v", got)
	}
}

// BenchmarkWASMEncrypt1KiB encrypts 1 KiB (aes256-gcm96) through the WASM
// host from 32 concurrent clients. "one-write" is the host's default (one
// mutating request at a time per mount: encrypt is an update, so requests
// are serialised whatever the pool size); "concurrent-writes" lifts it
// (Limits.ConcurrentWrites), which transit's data path tolerates but its
// key management does not across instances (see doc.go). The pool has
// GOMAXPROCS instances.
func BenchmarkWASMEncrypt1KiB(b *testing.B) {
	for _, c := range []struct {
		name       string
		concurrent bool
	}{{"one-write", false}, {"concurrent-writes", true}} {
		b.Run(c.name, func(b *testing.B) {
			m, _ := mountTransit(b, wasm.Limits{ConcurrentWrites: c.concurrent, CallTimeout: time.Minute})
			ctx := context.Background()
			if _, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "keys/bench"}); err != nil {
				b.Fatal(err)
			}
			pt := make([]byte, 1024)
			_, _ = rand.Read(pt)
			data := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}
			// Warm every instance.
			for range 8 {
				if _, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/bench", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.SetParallelism((32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.SetBytes(1024)
			cpu := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/bench", Data: data}
					if _, err := m.HandleRequest(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}

// processCPU is the process's CPU time: on a shared machine CPU per op is
// steadier than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
