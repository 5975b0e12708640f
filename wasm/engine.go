package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// CacheDir keeps compiled machine code across restarts (created with
	// mode 0700; nothing else may write there: its files are executed).
	// Empty keeps the cache in memory only.
	CacheDir string
	// Logger receives module log lines and stdout/stderr. Default: discard.
	Logger *slog.Logger
	// Runaway selects how a call past its deadline is stopped. Default
	// RunawayFuel.
	Runaway RunawayMode
}

// RunawayMode selects the mechanism that stops a guest past its deadline.
type RunawayMode int

const (
	// RunawayFuel instruments the module at compile time: function entries
	// and loop headers spend fuel from a counter inside the instance, and
	// every few thousand units the guest calls the host, which stops it
	// if the call's deadline passed (see instrument.go). A few
	// instructions per loop iteration.
	RunawayFuel RunawayMode = iota
	// RunawayCloseOnDone uses wazero's close-on-context-done: compiled
	// code calls into Go at every loop back-edge to check for
	// cancellation (wazero#2466). Sound, but several times slower for a
	// Go guest's request.
	RunawayCloseOnDone

	// runawayOff stops nothing: for benchmarks measuring the cost of the
	// other modes only.
	runawayOff RunawayMode = -1
)

func (c *EngineConfig) withDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine compiles modules and runs their instances. One Engine serves a
// whole server; it is safe for concurrent use.
type Engine struct {
	cfg   EngineConfig
	cache wazero.CompilationCache

	mu       sync.Mutex // protects the fields below
	runtimes map[uint32]*runtimeClass
	closed   bool
}

// runtimeClass is a wazero Runtime for one memory limit, with the host
// modules instantiated in it. Compiled code is shared through the cache.
type runtimeClass struct {
	pages uint32
	rt    wazero.Runtime

	mu       sync.Mutex                       // protects compiled
	compiled map[string]wazero.CompiledModule // module digest -> compiled in this class
}

// NewEngine returns an Engine. With a CacheDir, the directory is created
// (0700) if needed and its permissions are checked.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	cfg.withDefaults()
	e := &Engine{cfg: cfg, runtimes: map[uint32]*runtimeClass{}}
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		if err := os.Chmod(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		e.cache = c
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	return e, nil
}

// Close closes every runtime (and with them every instance) and the cache.
// Close the mounts first: instances must not be running.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	rts := e.runtimes
	e.runtimes = map[uint32]*runtimeClass{}
	e.closed = true
	e.mu.Unlock()
	var errs []error
	for _, rc := range rts {
		errs = append(errs, rc.rt.Close(ctx))
	}
	errs = append(errs, e.cache.Close(ctx))
	return errors.Join(errs...)
}

// runtime returns the runtime of a memory class, creating it on first use.
func (e *Engine) runtime(ctx context.Context, pages uint32) (*runtimeClass, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if rc := e.runtimes[pages]; rc != nil {
		return rc, nil
	}
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(e.cfg.Runaway == RunawayCloseOnDone)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if err := instantiateHostModules(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	rc := &runtimeClass{pages: pages, rt: rt, compiled: map[string]wazero.CompiledModule{}}
	e.runtimes[pages] = rc
	return rc, nil
}

// Module is a compiled, checked Ward module. It can be mounted any number
// of times, with any limits.
type Module struct {
	e *Engine
	// Digest is the hex SHA-256 of the binary.
	Digest string
	// code is what is compiled: the binary, instrumented under RunawayFuel.
	code []byte
}

// Compile checks a module and compiles it (into the cache), so that
// mounting it later only instantiates. It refuses, with a *logical.Error
// of code InvalidRequest matching ErrNotWardModule, ErrABIVersion or
// ErrForbiddenImport, a module that is not a Ward ABI v1 module or
// imports anything the sandbox does not provide.
func (e *Engine) Compile(ctx context.Context, bin []byte) (*Module, error) {
	imports, exports, err := inspect(bin)
	if err != nil {
		return nil, compileError(ErrNotWardModule, "%v: %v", ErrNotWardModule, err)
	}
	if err := checkSurface(imports, exports); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bin)
	m := &Module{e: e, Digest: hex.EncodeToString(sum[:]), code: append([]byte(nil), bin...)}
	if e.cfg.Runaway == RunawayFuel {
		if m.code, err = e.instrumented(bin, m.Digest); err != nil {
			return nil, compileError(ErrNotWardModule, "%v: %v", ErrNotWardModule, err)
		}
	}
	rc, err := e.runtime(ctx, DefaultMemoryPages)
	if err != nil {
		return nil, err
	}
	cm, err := rc.compile(ctx, m)
	if err != nil {
		return nil, err
	}
	if err := checkSignatures(cm); err != nil {
		return nil, err
	}
	return m, nil
}

// instrumentCacheDir holds instrumented binaries in the cache directory,
// so a restart does not instrument again. The name carries the
// instrumenter's version: change it whenever instrument's output changes.
const instrumentCacheDir = "ward-fuel-v1"

// instrumented returns bin instrumented for RunawayFuel, from the cache
// directory when it holds a sound copy. Each cached file ends with the
// SHA-256 of its content; a file that fails the check is redone.
func (e *Engine) instrumented(bin []byte, digest string) ([]byte, error) {
	var path string
	if e.cfg.CacheDir != "" {
		path = filepath.Join(e.cfg.CacheDir, instrumentCacheDir, digest+".wasm")
		if b, err := os.ReadFile(path); err == nil && len(b) > sha256.Size {
			code, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
			if got := sha256.Sum256(code); bytes.Equal(got[:], sum) {
				return code, nil
			}
		}
	}
	code, err := instrument(bin)
	if err != nil || path == "" {
		return code, err
	}
	sum := sha256.Sum256(code)
	if err := writeFileAtomic(path, append(code[:len(code):len(code)], sum[:]...)); err != nil {
		e.cfg.Logger.Warn("wasm: could not cache an instrumented module", "error", err)
	}
	return code, nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Close releases the module's compiled code in every memory class. Close
// its mounts first.
func (m *Module) Close(ctx context.Context) error {
	m.e.mu.Lock()
	rcs := make([]*runtimeClass, 0, len(m.e.runtimes))
	for _, rc := range m.e.runtimes {
		rcs = append(rcs, rc)
	}
	m.e.mu.Unlock()
	var errs []error
	for _, rc := range rcs {
		rc.mu.Lock()
		cm := rc.compiled[m.Digest]
		delete(rc.compiled, m.Digest)
		rc.mu.Unlock()
		if cm != nil {
			errs = append(errs, cm.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// compile returns the module compiled in this class (from the cache when
// another class or a previous run compiled it).
func (rc *runtimeClass) compile(ctx context.Context, m *Module) (wazero.CompiledModule, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if cm := rc.compiled[m.Digest]; cm != nil {
		return cm, nil
	}
	// Compile functions on every core: a Go guest has thousands.
	ctx = experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0))
	cm, err := rc.rt.CompileModule(ctx, m.code)
	if err != nil {
		return nil, compileError(ErrNotWardModule, "%v: compile: %v", ErrNotWardModule, err)
	}
	rc.compiled[m.Digest] = cm
	return cm, nil
}

var (
	sigI32       = []api.ValueType{api.ValueTypeI32}
	sigI32I32    = []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}
	sigI32I32I32 = []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}
	sigI64       = []api.ValueType{api.ValueTypeI64}
)

// wardSignatures are the signatures of module "ward"'s functions.
var wardSignatures = map[string][2][]api.ValueType{
	abi.ImportInput:   {sigI32, nil},
	abi.ImportOutput:  {sigI32I32, sigI32},
	abi.ImportStorage: {sigI32I32, sigI64},
	abi.ImportHTTP:    {sigI32I32, sigI64},
	abi.ImportTake:    {sigI32I32, sigI32},
	abi.ImportLog:     {sigI32I32I32, nil},
	abi.ImportLock:    {sigI32I32I32, sigI64},
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkSignatures checks the ABI's exports and imports have their types.
func checkSignatures(cm wazero.CompiledModule) error {
	want := map[string][2][]api.ValueType{
		abi.Marker: {nil, sigI32},
		abi.Call:   {sigI32I32, sigI32},
	}
	exports := cm.ExportedFunctions()
	for name, sig := range want {
		f := exports[name]
		if f == nil || !sameTypes(f.ParamTypes(), sig[0]) || !sameTypes(f.ResultTypes(), sig[1]) {
			return compileError(ErrNotWardModule, "%v: export %q does not have the ABI v%d signature", ErrNotWardModule, name, abi.Major)
		}
	}
	if f := exports[abi.Initialize]; f != nil && (len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0) {
		return compileError(ErrNotWardModule, "%v: export %q must take and return nothing", ErrNotWardModule, abi.Initialize)
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != abi.ImportModule {
			continue // WASI signatures are checked by wazero at instantiation
		}
		sig := wardSignatures[name]
		if !sameTypes(f.ParamTypes(), sig[0]) || !sameTypes(f.ResultTypes(), sig[1]) {
			return compileError(ErrForbiddenImport, "%v: it imports %s.%s with the wrong signature", ErrForbiddenImport, mod, name)
		}
	}
	return nil
}

// instantiateHostModules provides WASI (inert except clocks, randomness
// and stdio, which are configured per instance) and module "ward".
func instantiateHostModules(ctx context.Context, rt wazero.Runtime) error {
	wasi := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(wasi)
	overrideInertWASI(wasi)
	if _, err := wasi.Instantiate(ctx); err != nil {
		return fmt.Errorf("wasm: WASI host module: %w", err)
	}
	if _, err := buildWardModule(rt).Instantiate(ctx); err != nil {
		return fmt.Errorf("wasm: ward host module: %w", err)
	}
	sandbox := rt.NewHostModuleBuilder(sandboxModule)
	sandbox.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostTick), nil, sigI32).Export(tickName)
	if _, err := sandbox.Instantiate(ctx); err != nil {
		return fmt.Errorf("wasm: sandbox host module: %w", err)
	}
	return nil
}
