package plugin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
	"github.com/wardproject/ward/wasm"
)

// Errors returned by the runner.
var (
	// ErrUnavailable: the plugin process is down or could not be reached;
	// the HTTP layer answers 502. The request may be retried.
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrChecksum: the binary on disk does not match the catalog's SHA-256.
	ErrChecksum = errors.New("plugin binary does not match the SHA-256 registered in the catalog")
	// ErrProtocol: the plugin speaks another protocol version or is not a Ward plugin.
	ErrProtocol = errors.New("plugin protocol mismatch")
)

// Observer receives plugin lifecycle events (for metrics).
type Observer interface {
	PluginStarted(name string)
	PluginCrashed(name string)
}

type nopObserver struct{}

func (nopObserver) PluginStarted(string) {}
func (nopObserver) PluginCrashed(string) {}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Catalog  *Catalog
	Logger   *slog.Logger
	LogLevel string    // for go-plugin's logger: trace, debug, info, warn, error
	LogJSON  bool      // go-plugin's logger format
	LogOut   io.Writer // where go-plugin's logger (and plugin stderr) goes
	Observer Observer
	// StartTimeout bounds a plugin's handshake. Default 10s.
	StartTimeout time.Duration
	// WasmCacheDir keeps WASM modules' compiled code across restarts
	// ("" keeps it in memory only).
	WasmCacheDir string
}

// Backend is one mount served by a plugin, whatever runs it: a go-plugin
// process (Handle) or the WASM sandbox.
type Backend interface {
	HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error)
	HandleExistenceCheck(ctx context.Context, req *logical.Request) (found, exists bool, err error)
	SpecialPaths() *logical.Paths
	Schema() *logical.Schema
	// Close tears the mount down in the plugin.
	Close(ctx context.Context)
}

// Runner starts and supervises plugin processes.
type Runner struct {
	cfg    RunnerConfig
	hclog  hclog.Logger
	logger *slog.Logger

	mu       sync.Mutex // protects procs, wasmHost and closed
	procs    map[string]*process
	wasmHost *wasmHost // started with the first WASM mount or registration
	closed   bool      // after Shutdown nothing starts again
}

// setupTimeout bounds starting a process and setting its mounts up. Those
// run detached from the request that triggered them: one client giving up
// must not leave the plugin's other mounts broken.
const setupTimeout = 30 * time.Second

// NewRunner returns a Runner; no process starts until a mount needs one.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.LogOut == nil {
		cfg.LogOut = os.Stderr
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	level := hclog.LevelFromString(cfg.LogLevel)
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return &Runner{
		cfg:    cfg,
		logger: cfg.Logger,
		hclog: hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: cfg.LogOut, Level: level,
			JSONFormat: cfg.LogJSON}),
		procs: map[string]*process{},
	}
}

// MountSpec describes a mount to serve with a plugin.
type MountSpec struct {
	ID         string // the mount's UUID
	Path       string // "secret/"
	PluginType string // catalog type: "secret" or "auth"
	PluginName string // catalog name, e.g. "kv"
	// PluginVersion pins a catalog version; "" runs the unversioned entry.
	PluginVersion string
	Config        map[string]string
	Storage       logical.Storage // the mount's barrier view
	Wasm          WasmLimits      // for WASM plugins only
}

// WasmLimits are a WASM mount's sandbox bounds and grants.
type WasmLimits struct {
	Limits wasm.Limits
	HTTP   wasm.HTTPGrant
}

// Mount sets the mount up with its plugin (starting its process or
// instantiating its module as needed) and returns the backend requests
// go through.
func (r *Runner) Mount(ctx context.Context, spec MountSpec) (Backend, error) {
	entry, err := r.cfg.Catalog.GetVersion(ctx, spec.PluginType, spec.PluginName, spec.PluginVersion)
	if err != nil {
		return nil, err
	}
	if entry.Runtime == RuntimeWasm {
		return r.mountWasm(ctx, entry, spec)
	}
	key := procKey(spec.PluginType, spec.PluginName, spec.PluginVersion)
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: the plugin runner is shut down", ErrUnavailable)
		}
		p := r.procs[key]
		if p == nil {
			p = &process{r: r, key: key, version: spec.PluginVersion, entry: *entry, mounts: map[string]*Handle{}, views: map[string]logical.Storage{}}
			r.procs[key] = p
		}
		r.mu.Unlock()

		h := &Handle{p: p, spec: spec}
		err := p.add(ctx, h)
		if errors.Is(err, errProcessStopped) {
			continue // it was dropped meanwhile: take a fresh one
		}
		if err != nil {
			r.dropIfIdle(p)
			return nil, err
		}
		return h, nil
	}
}

func (r *Runner) dropIfIdle(p *process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.procs[p.key] == p && p.stopIfIdle() {
		delete(r.procs, p.key)
	}
}

// Reload restarts the process (or the WASM instances) of one plugin; its
// mounts are set up again on the catalog's current entry.
func (r *Runner) Reload(ctx context.Context, typ, name string) error {
	if err := r.reloadWasm(ctx, typ, name); err != nil {
		return err
	}
	r.mu.Lock()
	var procs []*process
	for _, p := range r.procs {
		if p.entry.Type == typ && p.entry.Name == name {
			procs = append(procs, p)
		}
	}
	r.mu.Unlock()
	for _, p := range procs {
		entry, err := r.cfg.Catalog.GetVersion(ctx, typ, name, p.version)
		if err != nil {
			return err
		}
		if err := p.reload(ctx, *entry); err != nil {
			return err
		}
	}
	return nil
}

// procKey names the process serving one catalog entry: each version of a
// plugin runs in its own process.
func procKey(typ, name, version string) string {
	if version == "" {
		return typ + "/" + name
	}
	return typ + "/" + name + "@" + version
}

// Shutdown stops every plugin process.
func (r *Runner) Shutdown() {
	r.mu.Lock()
	procs := r.procs
	r.procs = map[string]*process{}
	w := r.wasmHost
	r.wasmHost = nil
	r.closed = true
	r.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
	if w != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.close(ctx)
	}
}

// Retune prepares a mount to run with a new spec (WASM limits and
// grants): commit applies it, abort drops it. Process plugins take no
// limits: both do nothing.
func (r *Runner) Retune(ctx context.Context, b Backend, spec MountSpec) (commit, abort func(), err error) {
	wb, ok := b.(*wasmBackend)
	if !ok {
		return func() {}, func() {}, nil
	}
	e, err := r.cfg.Catalog.GetVersion(ctx, spec.PluginType, spec.PluginName, spec.PluginVersion)
	if err != nil {
		return nil, nil, err
	}
	return wb.Retune(ctx, r.cfg.Catalog, e, spec)
}

// Info describes the running process of a plugin, if any.
type Info struct {
	Pid      int
	Restarts int
}

// ProcessInfo reports on the process serving a plugin (for sys endpoints and tests).
func (r *Runner) ProcessInfo(typ, name string) (Info, bool) {
	r.mu.Lock()
	p := r.procs[procKey(typ, name, "")]
	r.mu.Unlock()
	if p == nil {
		return Info{}, false
	}
	return p.info()
}

// conn is one running plugin process.
type conn struct {
	client  *goplugin.Client
	rpc     *sdkplugin.Client
	started time.Time
	// calls is held shared by each call on this process; a reload takes
	// it to retire the process once its calls have answered.
	calls   sync.RWMutex
	retired bool // under calls: replaced, take p.cur again
	// setupErr records mounts whose Setup failed on this process.
	setupErr sync.Map // mount ID -> error
}

// alive reports whether the process can serve: running, channel up.
func (c *conn) alive() bool { return !c.client.Exited() && !c.rpc.Broken() }

func (c *conn) stop() {
	c.rpc.Close()
	c.client.Kill()
}

// process supervises the process of one plugin and the mounts it serves.
type process struct {
	r       *Runner
	key     string // procKey
	version string // the catalog version mounts pinned ("" unversioned)

	cur atomic.Pointer[conn] // the live process, nil when down

	mu       sync.Mutex // protects the fields below; held while (re)starting
	entry    Entry
	mounts   map[string]*Handle
	failures int // consecutive quick crashes or failed starts
	lastTry  time.Time
	restarts int
	stopped  bool // stopped for good: never started again

	viewsMu sync.RWMutex // protects views; never held across RPCs
	views   map[string]logical.Storage
}

func (p *process) resolve(mountID string) (logical.Storage, bool) {
	p.viewsMu.RLock()
	defer p.viewsMu.RUnlock()
	s, ok := p.views[mountID]
	return s, ok
}

// errProcessStopped: the process was stopped for good (its last mount
// left, or the runner shut down).
var errProcessStopped = fmt.Errorf("%w: plugin process stopped", ErrUnavailable)

// stopIfIdle stops the process for good if it serves no mount.
func (p *process) stopIfIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.mounts) > 0 {
		return false
	}
	p.stopped = true
	if c := p.cur.Swap(nil); c != nil {
		c.stop()
	}
	return true
}

func (p *process) info() (Info, bool) {
	c := p.cur.Load()
	if c == nil {
		return Info{}, false
	}
	rc := c.client.ReattachConfig()
	p.mu.Lock()
	defer p.mu.Unlock()
	if rc == nil {
		return Info{}, false
	}
	return Info{Pid: rc.Pid, Restarts: p.restarts}, true
}

// add registers a mount and sets it up on the live process.
func (p *process) add(ctx context.Context, h *Handle) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return errProcessStopped
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	p.viewsMu.Lock()
	p.views[h.spec.ID] = h.spec.Storage
	p.viewsMu.Unlock()

	// Registered after the process is live: a process started here sets
	// up the mounts it already had, and this one once, below.
	c, err := p.liveLocked(ctx)
	p.mounts[h.spec.ID] = h
	if err == nil {
		err = h.setup(ctx, c)
	}
	if err != nil {
		delete(p.mounts, h.spec.ID)
		p.viewsMu.Lock()
		delete(p.views, h.spec.ID)
		p.viewsMu.Unlock()
		return err
	}
	return nil
}

func (p *process) remove(ctx context.Context, h *Handle) {
	p.mu.Lock()
	delete(p.mounts, h.spec.ID)
	p.mu.Unlock()
	if c := p.cur.Load(); c != nil && c.alive() {
		_ = c.rpc.Cleanup(ctx, h.spec.ID)
	}
	p.viewsMu.Lock()
	delete(p.views, h.spec.ID)
	p.viewsMu.Unlock()
	p.r.dropIfIdle(p)
}

// live returns the running process, restarting it if it died.
func (p *process) live(ctx context.Context) (*conn, error) {
	if c := p.cur.Load(); c != nil && c.alive() {
		return c, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	return p.liveLocked(ctx)
}

func backoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := 100 * time.Millisecond << min(failures-2, 9)
	return min(d, 30*time.Second)
}

func (p *process) liveLocked(ctx context.Context) (*conn, error) {
	if p.stopped {
		return nil, errProcessStopped
	}
	if c := p.cur.Load(); c != nil {
		if c.alive() {
			return c, nil
		}
		// It died: count a crash, quick ones towards backoff.
		p.r.cfg.Observer.PluginCrashed(p.entry.Name)
		p.r.logger.Warn("plugin process exited; restarting", "plugin", p.entry.Name)
		if time.Since(c.started) < 10*time.Second {
			p.failures++
		} else {
			p.failures = 1
		}
		p.cur.Store(nil)
		c.stop()
	}
	if wait := backoff(p.failures); wait > 0 && time.Since(p.lastTry) < wait {
		return nil, fmt.Errorf("%w: plugin %q keeps failing; next restart in %s", ErrUnavailable, p.entry.Name,
			(wait - time.Since(p.lastTry)).Round(time.Millisecond))
	}
	p.lastTry = time.Now()
	c, err := p.start(ctx)
	if err != nil {
		p.failures++
		return nil, err
	}
	for _, h := range p.mounts {
		if err := h.setup(ctx, c); err != nil {
			p.r.logger.Error("plugin mount setup failed", "plugin", p.entry.Name, "mount", h.spec.Path, "error", err)
		}
	}
	if p.restarts > 0 || p.failures > 0 {
		p.r.logger.Info("plugin process restarted", "plugin", p.entry.Name)
	}
	p.restarts++
	p.cur.Store(c)
	return c, nil
}

// start launches the process after checking its digest.
func (p *process) start(ctx context.Context) (*conn, error) {
	e := p.entry
	path, err := p.r.cfg.Catalog.executable(&e)
	if err != nil {
		return nil, err
	}
	want, err := hex.DecodeString(e.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("plugin %q: catalog entry has no valid sha256", e.Name)
	}
	got, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", e.Name, err)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, &logical.Error{Code: logical.CodeInvalidRequest,
			Message: fmt.Sprintf("plugin %q: %v (catalog %s, file %s)", e.Name, ErrChecksum, e.SHA256, hex.EncodeToString(got))}
	}

	cmd := exec.Command(path, e.Args...)
	// The plugin learns our PID so it exits if we die without stopping
	// it (sdk/plugin: a plugin never outlives its server).
	// (Last, so that it wins over an entry of the catalog's env.)
	cmd.Env = append(append([]string{}, e.Env...), sdkplugin.ServerPIDEnv+"="+strconv.Itoa(os.Getpid()))
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  sdkplugin.Handshake,
		VersionedPlugins: sdkplugin.HostPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           p.r.hclog.Named(e.Name),
		AutoMTLS:         true,
		StartTimeout:     p.r.cfg.StartTimeout,
	})
	rpc, err := sdkplugin.Connect(ctx, client, p.resolve)
	if err != nil {
		client.Kill()
		return nil, classifyStartErr(e.Name, err)
	}
	info, err := rpc.Info(ctx)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("%w: plugin %q: %v", ErrUnavailable, e.Name, err)
	}
	if info.Type != e.Type {
		client.Kill()
		return nil, &logical.Error{Code: logical.CodeInvalidRequest,
			Message: fmt.Sprintf("plugin %q is of type %q, registered as %q", e.Name, info.Type, e.Type)}
	}
	p.r.cfg.Observer.PluginStarted(e.Name)
	p.r.logger.Info("plugin started", "plugin", e.Name, "version", info.Version, "sdk", info.SdkVersion)
	return &conn{client: client, rpc: rpc, started: time.Now()}, nil
}

func classifyStartErr(name string, err error) error {
	// go-plugin reports these only as text; this is the one place we must
	// read an error's message, and only to pick a clearer one.
	msg := strings.ToLower(err.Error())
	switch {
	case containsAny(msg, "incompatible api version", "unrecognized remote plugin message", "incompatible core api version"):
		return &logical.Error{Code: logical.CodeInvalidRequest,
			Message: fmt.Sprintf("plugin %q: %v: this server speaks plugin protocol version %d: %v", name, ErrProtocol, sdkplugin.ProtocolVersion, err)}
	case containsAny(msg, "checksums did not match"):
		return &logical.Error{Code: logical.CodeInvalidRequest, Message: fmt.Sprintf("plugin %q: %v", name, ErrChecksum)}
	}
	return fmt.Errorf("%w: plugin %q failed to start: %v", ErrUnavailable, name, err)
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// reload restarts the process with a possibly updated catalog entry. The
// new process is started and its mounts set up while the old one serves;
// then the old one's calls in flight finish (new calls wait), the new one
// takes over and the old one stops. Never two processes serving at once,
// and no call fails: a reload only delays calls by the switch-over. If the
// new process cannot start, the old one keeps serving.
func (p *process) reload(ctx context.Context, e Entry) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	prev := p.entry
	p.entry = e
	c, err := p.start(ctx)
	if err != nil {
		p.entry = prev
		return err
	}
	for _, h := range p.mounts {
		if err := h.setup(ctx, c); err != nil {
			p.r.logger.Error("plugin mount setup failed", "plugin", p.entry.Name, "mount", h.spec.Path, "error", err)
		}
	}
	p.failures = 0
	p.restarts++
	old := p.cur.Load()
	if old != nil {
		old.calls.Lock() // wait for its calls; new ones queue here
	}
	p.cur.Store(c)
	if old != nil {
		old.retired = true
		old.calls.Unlock()
		old.stop()
	}
	return nil
}

func (p *process) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	if c := p.cur.Swap(nil); c != nil {
		c.stop()
	}
}

// Handle is one mount served by a plugin process.
type Handle struct {
	p    *process
	spec MountSpec

	gate gate // calls in flight; see Replace

	mu     sync.RWMutex // protects result
	result *sdkplugin.SetupResult
}

func (h *Handle) setup(ctx context.Context, c *conn) error {
	res, err := c.rpc.Setup(ctx, sdkplugin.MountConfig{ID: h.spec.ID, MountPoint: h.spec.Path,
		MountType: h.spec.PluginName, Config: h.spec.Config})
	if err != nil {
		c.setupErr.Store(h.spec.ID, err)
		return err
	}
	c.setupErr.Delete(h.spec.ID)
	h.mu.Lock()
	h.result = res
	h.mu.Unlock()
	return nil
}

// retrySetup sets the mount up again on c after an earlier failure.
func (h *Handle) retrySetup(ctx context.Context, c *conn) error {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if _, failed := c.setupErr.Load(h.spec.ID); !failed {
		return nil // another request fixed it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	return h.setup(ctx, c)
}

// SpecialPaths returns the paths the plugin declared at setup.
func (h *Handle) SpecialPaths() *logical.Paths {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.result == nil {
		return &logical.Paths{}
	}
	return h.result.SpecialPaths
}

// Schema returns the schema the plugin declared at setup.
func (h *Handle) Schema() *logical.Schema {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.result == nil {
		return &logical.Schema{}
	}
	return h.result.Schema
}

// HandleExistenceCheck implements logical.ExistenceChecker for the mount.
func (h *Handle) HandleExistenceCheck(ctx context.Context, req *logical.Request) (found, exists bool, err error) {
	if next, ok := h.gate.enter(); !ok {
		return forwardExistence(ctx, next, req)
	}
	defer h.gate.leave()
	c, err := h.enterConn(ctx)
	if err != nil {
		return false, false, err
	}
	defer c.calls.RUnlock()
	found, exists, err = c.rpc.ExistenceCheck(ctx, h.spec.ID, req)
	if errors.Is(err, sdkplugin.ErrTransport) {
		return false, false, fmt.Errorf("%w: %s: %v", ErrUnavailable, h.p.entry.Name, err)
	}
	return found, exists, err
}

// HandleRequest forwards a request to the plugin. Transport failures come
// back as ErrUnavailable; the next call restarts a dead process.
func (h *Handle) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if next, ok := h.gate.enter(); !ok {
		return forwardRequest(ctx, next, req)
	}
	defer h.gate.leave()
	c, err := h.enterConn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.calls.RUnlock()
	resp, err := c.rpc.HandleRequest(ctx, h.spec.ID, req)
	if errors.Is(err, sdkplugin.ErrTransport) {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, h.p.entry.Name, err)
	}
	return resp, err
}

// enterConn returns the live process with a call registered on it (the
// caller releases c.calls.RUnlock); a process retired by a reload
// meanwhile is skipped for its successor.
func (h *Handle) enterConn(ctx context.Context) (*conn, error) {
	for {
		c, err := h.ready(ctx)
		if err != nil {
			return nil, err
		}
		c.calls.RLock()
		if !c.retired {
			return c, nil
		}
		c.calls.RUnlock()
	}
}

// ready returns the live process with this mount set up on it.
func (h *Handle) ready(ctx context.Context) (*conn, error) {
	c, err := h.p.live(ctx)
	if err != nil {
		// A start that fails while serving data (bad digest after a binary
		// swap, wrong protocol...) is the plugin being unavailable: 502.
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil, err
	}
	if _, failed := c.setupErr.Load(h.spec.ID); failed {
		if err := h.retrySetup(ctx, c); err != nil {
			return nil, fmt.Errorf("%w: mount %s failed to set up: %v", ErrUnavailable, h.spec.Path, err)
		}
	}
	return c, nil
}

// errMountClosed answers a call that reached a mount's old backend after
// it was replaced or disabled.
var errMountClosed = fmt.Errorf("%w: the mount was closed", ErrUnavailable)

// Close waits for the calls in flight, then tears the mount down in the
// plugin; the process stops with its last mount.
func (h *Handle) Close(ctx context.Context) {
	if h.gate.shut(nil, nil) {
		h.p.remove(ctx, h)
	}
}
