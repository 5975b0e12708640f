package plugin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/wasm"
)

// RuntimeWasm marks a catalog entry served by the WASM sandbox; an empty
// Runtime is a go-plugin process.
const RuntimeWasm = "wasm"

// MaxWasmModuleBytes bounds a module given at registration (a Go guest
// is a few MiB; the HTTP body limit is 32 MiB, base64 included).
const MaxWasmModuleBytes = 20 << 20

// wasmFile is where a registered module lives in the plugin directory:
// named by its digest, so an entry always names the bytes it was
// registered with and two entries of the same module share one file.
func wasmFile(digest string) string { return digest + ".wasm" }

// wasmHost runs the catalog's WASM plugins: modules compiled once per
// digest, one wasm.Mount per mount.
type wasmHost struct {
	engine *wasm.Engine

	mu      sync.Mutex                // protects modules and mounts
	modules map[string]*wasm.Module   // digest -> compiled module
	mounts  map[*wasmBackend]struct{} // live mounts, for Reload
}

func newWasmHost(cfg RunnerConfig) (*wasmHost, error) {
	e, err := wasm.NewEngine(wasm.EngineConfig{CacheDir: cfg.WasmCacheDir, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &wasmHost{engine: e, modules: map[string]*wasm.Module{}, mounts: map[*wasmBackend]struct{}{}}, nil
}

// CheckWasm validates a module offered for registration: digest, size,
// ABI, imports (wasm.Compile refuses what the sandbox does not provide),
// and the type the module says it is. It compiles the module, so the
// first mount only instantiates. It returns the module's own description.
func (r *Runner) CheckWasm(ctx context.Context, typ, sha string, bin []byte) (wasm.Info, error) {
	if len(bin) == 0 || len(bin) > MaxWasmModuleBytes {
		return wasm.Info{}, logical.InvalidRequest("a WASM module must be 1 byte to %d MiB", MaxWasmModuleBytes>>20)
	}
	sum := sha256.Sum256(bin)
	if want, err := hex.DecodeString(sha); err != nil || subtle.ConstantTimeCompare(want, sum[:]) != 1 {
		return wasm.Info{}, logical.InvalidRequest("the module's SHA-256 is %x, not the sha256 given", sum)
	}
	info, err := r.DescribeWasm(ctx, bin)
	var le *logical.Error
	if errors.As(err, &le) && le.Code == logical.CodeInvalidRequest {
		return wasm.Info{}, err // refused at compile: not Ward's ABI, forbidden imports
	} else if err != nil {
		return wasm.Info{}, logical.InvalidRequest("the module failed to start: %v", err)
	}
	if string(info.Type) != typ {
		return wasm.Info{}, logical.InvalidRequest("the module is a %q plugin, not %q", info.Type, typ)
	}
	return info, nil
}

// DescribeWasm compiles a module and returns what it says about itself.
func (r *Runner) DescribeWasm(ctx context.Context, bin []byte) (wasm.Info, error) {
	w, err := r.wasm()
	if err != nil {
		return wasm.Info{}, err
	}
	sum := sha256.Sum256(bin)
	mod, err := w.compiled(ctx, hex.EncodeToString(sum[:]), bin)
	if err != nil {
		return wasm.Info{}, err
	}
	return w.engine.Describe(ctx, mod)
}

// StoreWasm writes a checked module into the plugin directory under its
// digest and returns the catalog command naming it.
func (c *Catalog) StoreWasm(sha string, bin []byte) (string, error) {
	name := wasmFile(sha)
	p, err := c.commandPath(name)
	if err != nil {
		return "", err
	}
	if existing, err := os.ReadFile(p); err == nil && sha256.Sum256(existing) == sha256.Sum256(bin) {
		return name, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".upload-*")
	if err != nil {
		return "", fmt.Errorf("store WASM module: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(bin); err != nil {
		tmp.Close()
		return "", fmt.Errorf("store WASM module: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("store WASM module: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("store WASM module: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("store WASM module: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("store WASM module: %w", err)
	}
	return name, nil
}

// wasm returns the runner's WASM host, started on first use.
func (r *Runner) wasm() (*wasmHost, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("%w: the plugin runner is shut down", ErrUnavailable)
	}
	if r.wasmHost == nil {
		w, err := newWasmHost(r.cfg)
		if err != nil {
			return nil, err
		}
		r.wasmHost = w
	}
	return r.wasmHost, nil
}

// compiled returns the compiled module of a digest, compiling bin once.
func (w *wasmHost) compiled(ctx context.Context, digest string, bin []byte) (*wasm.Module, error) {
	w.mu.Lock()
	m := w.modules[digest]
	w.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := w.engine.Compile(ctx, bin)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if prev := w.modules[digest]; prev != nil {
		return prev, nil // compiled twice concurrently: the cache made it cheap
	}
	w.modules[digest] = m
	return m, nil
}

// load reads an entry's module from the plugin directory, checking its
// digest (the file could have been replaced since registration).
func (w *wasmHost) load(ctx context.Context, c *Catalog, e *Entry) (*wasm.Module, error) {
	w.mu.Lock()
	m := w.modules[e.SHA256]
	w.mu.Unlock()
	if m != nil {
		return m, nil
	}
	p, err := c.commandPath(e.Command)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, e.Name, err)
	}
	sum := sha256.Sum256(bin)
	if got := hex.EncodeToString(sum[:]); got != e.SHA256 {
		return nil, &logical.Error{Code: logical.CodeInvalidRequest,
			Message: fmt.Sprintf("plugin %q: %v (catalog %s, file %s)", e.Name, ErrChecksum, e.SHA256, got)}
	}
	return w.compiled(ctx, e.SHA256, bin)
}

// mountWasm sets a mount up on a WASM plugin.
func (r *Runner) mountWasm(ctx context.Context, e *Entry, spec MountSpec) (Backend, error) {
	w, err := r.wasm()
	if err != nil {
		return nil, err
	}
	b := &wasmBackend{w: w, spec: spec}
	m, err := b.start(ctx, r.cfg.Catalog, e, spec)
	if err != nil {
		return nil, err
	}
	b.cur.Store(m)
	w.mu.Lock()
	w.mounts[b] = struct{}{}
	w.mu.Unlock()
	return b, nil
}

// reloadWasm restarts every mount of one WASM plugin on the catalog's
// current module: each new mount is ready before it replaces the old one,
// so requests never find the mount missing.
func (r *Runner) reloadWasm(ctx context.Context, typ, name string) error {
	r.mu.Lock()
	w := r.wasmHost
	r.mu.Unlock()
	if w == nil {
		return nil
	}
	w.mu.Lock()
	var mine []*wasmBackend
	for b := range w.mounts {
		if s := b.Spec(); s.PluginType == typ && s.PluginName == name {
			mine = append(mine, b)
		}
	}
	w.mu.Unlock()
	for _, b := range mine {
		e, err := r.cfg.Catalog.GetVersion(ctx, typ, name, b.Spec().PluginVersion)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if e.Runtime != RuntimeWasm {
			return fmt.Errorf("plugin %s/%s is no longer a WASM plugin: disable and enable its mounts", typ, name)
		}
		commit, _, err := b.Retune(ctx, r.cfg.Catalog, e, b.Spec())
		if err != nil {
			return err
		}
		commit()
	}
	return nil
}

// wasmBackend is one mount served by a WASM module. The wasm.Mount behind
// it can be replaced (reload, new limits) while requests keep flowing.
type wasmBackend struct {
	w    *wasmHost
	cur  atomic.Pointer[wasm.Mount]
	gate gate // calls in flight: to the mount (Replace) and to cur (Retune)

	mu   sync.Mutex // protects spec
	spec MountSpec
}

// Spec is the mount's current specification.
func (b *wasmBackend) Spec() MountSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spec
}

func (b *wasmBackend) start(ctx context.Context, c *Catalog, e *Entry, spec MountSpec) (*wasm.Mount, error) {
	mod, err := b.w.load(ctx, c, e)
	if err != nil {
		return nil, err
	}
	return b.w.engine.Mount(ctx, mod, wasm.MountConfig{ID: spec.ID, Path: spec.Path, PluginName: spec.PluginName,
		Config: spec.Config, Storage: spec.Storage, Limits: spec.Wasm.Limits, HTTP: spec.Wasm.HTTP})
}

// Retune prepares the mount to run e's module with spec's limits: commit
// switches to it and closes the previous pool (its calls in flight
// finish first); abort discards it.
func (b *wasmBackend) Retune(ctx context.Context, c *Catalog, e *Entry, spec MountSpec) (commit, abort func(), err error) {
	m, err := b.start(ctx, c, e, spec)
	if err != nil {
		return nil, nil, err
	}
	bg := context.WithoutCancel(ctx)
	commit = func() {
		// Not two pools at once: wait for the old pool's calls, then swap.
		b.gate.mu.Lock()
		old := b.cur.Swap(m)
		b.gate.mu.Unlock()
		b.mu.Lock()
		b.spec = spec
		b.mu.Unlock()
		go old.Close(bg)
	}
	return commit, func() { m.Close(bg) }, nil
}

func (b *wasmBackend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if next, ok := b.gate.enter(); !ok {
		return forwardRequest(ctx, next, req)
	}
	defer b.gate.leave()
	return b.cur.Load().HandleRequest(ctx, req)
}

func (b *wasmBackend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	if next, ok := b.gate.enter(); !ok {
		return forwardExistence(ctx, next, req)
	}
	defer b.gate.leave()
	return b.cur.Load().HandleExistenceCheck(ctx, req)
}

func (b *wasmBackend) SpecialPaths() *logical.Paths { return b.cur.Load().SpecialPaths() }
func (b *wasmBackend) Schema() *logical.Schema      { return b.cur.Load().Schema() }

// Stats reports the mount's instance pool.
func (b *wasmBackend) Stats() wasm.Stats { return b.cur.Load().Stats() }

func (b *wasmBackend) Close(ctx context.Context) {
	if b.gate.shut(nil, nil) {
		b.teardown(ctx)
	}
}

func (b *wasmBackend) teardown(ctx context.Context) {
	b.w.mu.Lock()
	delete(b.w.mounts, b)
	b.w.mu.Unlock()
	b.cur.Load().Close(ctx)
}

func (w *wasmHost) close(ctx context.Context) {
	w.mu.Lock()
	mounts := w.mounts
	w.mounts = map[*wasmBackend]struct{}{}
	w.mu.Unlock()
	for b := range mounts {
		b.cur.Load().Close(ctx)
	}
	_ = w.engine.Close(ctx)
}
