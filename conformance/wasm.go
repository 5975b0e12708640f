package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/wasm"
)

// WasmConfig describes a WASM module to test.
type WasmConfig struct {
	// Module is the module's binary.
	Module []byte
	// CacheDir keeps compiled code across runs (wasm.EngineConfig.CacheDir);
	// "" compiles in memory.
	CacheDir string
	// Log receives the module's log lines (default: discarded).
	Log io.Writer
	// Limits are the sandbox limits of every mount (wasm defaults when zero).
	Limits wasm.Limits
}

// NewWasm returns a Target running a module in the WASM sandbox (wasm/),
// as the server does: one pool of instances per mount.
func NewWasm(cfg WasmConfig) (Target, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(cfg.Log, nil))
	e, err := wasm.NewEngine(wasm.EngineConfig{CacheDir: cfg.CacheDir, Logger: logger})
	if err != nil {
		return nil, err
	}
	return &wasmTarget{cfg: cfg, engine: e, logger: logger, mounts: map[*wasmMount]struct{}{}}, nil
}

type wasmTarget struct {
	cfg    WasmConfig
	engine *wasm.Engine
	logger *slog.Logger

	mu       sync.Mutex // protects the fields below
	mod      *wasm.Module
	info     *Info
	infoErr  error
	mounts   map[*wasmMount]struct{}
	restarts int
}

func (t *wasmTarget) Transport() string { return "wasm" }

func (t *wasmTarget) Describe(ctx context.Context) (Info, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.info == nil && t.infoErr == nil {
		t.info, t.infoErr = t.describeLocked(ctx)
	}
	if t.infoErr != nil {
		return Info{}, t.infoErr
	}
	return *t.info, nil
}

func (t *wasmTarget) describeLocked(ctx context.Context) (*Info, error) {
	mod, err := t.engine.Compile(ctx, t.cfg.Module)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	wi, err := t.engine.Describe(ctx, mod)
	if err != nil {
		return nil, fmt.Errorf("Info: %w", err)
	}
	t.mod = mod
	info := &Info{Name: wi.Name, Type: wi.Type, Version: wi.Version, SDKVersion: wi.SDKVersion, Capabilities: wi.Capabilities}
	if ms, _ := abiMarkers(t.cfg.Module); len(ms) == 1 {
		info.Protocol = ms[0]
	}
	return info, nil
}

// OfferUnknownMajor: a module states the ABI majors it speaks by its
// exports (ward_abi_vN), there is nothing to offer; it must state v1 only.
func (t *wasmTarget) OfferUnknownMajor(context.Context) (bool, string, error) {
	ms, err := abiMarkers(t.cfg.Module)
	if err != nil {
		return false, "", err
	}
	var other []string
	for _, m := range ms {
		if m != 1 {
			other = append(other, "ward_abi_v"+strconv.Itoa(m))
		}
	}
	if len(other) > 0 {
		return true, fmt.Sprintf("the module exports %s besides or instead of ward_abi_v1", strings.Join(other, ", ")), nil
	}
	if len(ms) == 0 {
		return false, "the module exports no ward_abi_vN marker", nil
	}
	return false, "the module exports ward_abi_v1 only; the host refuses any other major at registration", nil
}

func (t *wasmTarget) module(ctx context.Context) (*wasm.Module, string, error) {
	info, err := t.Describe(ctx)
	if err != nil {
		return nil, "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mod, info.Name, nil
}

func (t *wasmTarget) mountConfig(spec MountSpec, name string) wasm.MountConfig {
	return wasm.MountConfig{ID: spec.ID, Path: spec.Path, PluginName: name, Config: spec.Config,
		Storage: spec.Storage, Limits: t.cfg.Limits, Logger: t.logger}
}

func (t *wasmTarget) Mount(ctx context.Context, spec MountSpec) (Mount, error) {
	return t.mount(ctx, spec)
}

func (t *wasmTarget) ControlMount(ctx context.Context, spec MountSpec) (ControlMount, error) {
	return t.mount(ctx, spec)
}

func (t *wasmTarget) mount(ctx context.Context, spec MountSpec) (*wasmMount, error) {
	mod, name, err := t.module(ctx)
	if err != nil {
		return nil, err
	}
	m, err := t.engine.Mount(ctx, mod, t.mountConfig(spec, name))
	if err != nil {
		return nil, err
	}
	wm := &wasmMount{t: t, spec: spec, name: name, cur: m}
	t.mu.Lock()
	t.mounts[wm] = struct{}{}
	t.mu.Unlock()
	return wm, nil
}

// Restart replaces every mount's pool of instances with a fresh one: a
// module keeps nothing across instances but what is in storage.
func (t *wasmTarget) Restart(ctx context.Context) error {
	t.mu.Lock()
	ms := make([]*wasmMount, 0, len(t.mounts))
	for m := range t.mounts {
		ms = append(ms, m)
	}
	t.restarts++
	t.mu.Unlock()
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.Setup(ctx))
	}
	return errors.Join(errs...)
}

func (t *wasmTarget) Generation() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return "restart " + strconv.Itoa(t.restarts)
}

func (t *wasmTarget) IsTransportError(err error) bool {
	return errors.Is(err, wasm.ErrModuleFailed) || errors.Is(err, wasm.ErrClosed)
}

func (t *wasmTarget) Close(ctx context.Context) {
	t.mu.Lock()
	ms := t.mounts
	t.mounts = map[*wasmMount]struct{}{}
	t.mu.Unlock()
	for m := range ms {
		m.current().Close(ctx)
	}
	_ = t.engine.Close(ctx)
}

// wasmMount is one mount; Setup and Restart swap its pool.
type wasmMount struct {
	t    *wasmTarget
	spec MountSpec
	name string

	mu  sync.Mutex // protects cur
	cur *wasm.Mount
}

func (m *wasmMount) current() *wasm.Mount {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

func (m *wasmMount) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	return m.current().HandleRequest(ctx, req)
}

func (m *wasmMount) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	return m.current().HandleExistenceCheck(ctx, req)
}

func (m *wasmMount) SpecialPaths() *logical.Paths { return m.current().SpecialPaths() }
func (m *wasmMount) Schema() *logical.Schema      { return m.current().Schema() }
func (m *wasmMount) Type() logical.BackendType    { return m.current().Type() }

func (m *wasmMount) InvalidateKey(ctx context.Context, key string) error {
	m.current().InvalidateKey(ctx, key)
	return nil
}

// Cleanup closes the pool: every instance runs the plugin's Cleanup.
func (m *wasmMount) Cleanup(ctx context.Context) error {
	m.current().Close(ctx)
	return nil
}

// Setup replaces the pool with a fresh one set up from scratch.
func (m *wasmMount) Setup(ctx context.Context) error {
	nm, err := m.t.engine.Mount(ctx, m.t.mod, m.t.mountConfig(m.spec, m.name))
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.cur
	m.cur = nm
	m.mu.Unlock()
	old.Close(ctx)
	return nil
}

func (m *wasmMount) Close(ctx context.Context) {
	m.t.mu.Lock()
	delete(m.t.mounts, m)
	m.t.mu.Unlock()
	m.current().Close(ctx)
}

// abiMarkers returns the N of every ward_abi_vN function a module exports.
// It reads only the section framing and the export section.
func abiMarkers(bin []byte) ([]int, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly binary")
	}
	r := wasmReader{b: bin[8:]}
	var out []int
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		body := wasmReader{b: r.bytes(int(r.u32()))}
		if id != 7 { // exports
			continue
		}
		n := body.u32()
		for i := uint32(0); i < n && body.err == nil; i++ {
			name := string(body.bytes(int(body.u32())))
			kind := body.byte()
			body.u32()
			if rest, ok := strings.CutPrefix(name, "ward_abi_v"); ok && kind == 0 {
				if v, err := strconv.Atoi(rest); err == nil {
					out = append(out, v)
				}
			}
		}
		if body.err != nil {
			return nil, body.err
		}
	}
	return out, r.err
}

type wasmReader struct {
	b   []byte
	err error
}

var errWasmTruncated = errors.New("truncated WebAssembly binary")

func (r *wasmReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errWasmTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errWasmTruncated
	return 0
}

func (r *wasmReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errWasmTruncated
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}
