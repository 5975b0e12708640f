package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	kplugin "github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

// GoPluginConfig describes a go-plugin executable to test.
type GoPluginConfig struct {
	// Command is the plugin executable. Args and Env are what it is
	// started with: like the server, the harness gives a plugin no
	// environment but Env.
	Command string
	Args    []string
	Env     []string
	// Log receives go-plugin's log, with the plugin's stderr (default:
	// discarded).
	Log io.Writer
	// StartTimeout bounds a handshake (default 10s).
	StartTimeout time.Duration
}

// unknownMajor is the protocol major OfferUnknownMajor offers: one SDK v1
// does not define.
const unknownMajor = sdkplugin.ProtocolVersion + 1

// NewGoPlugin returns a Target running a go-plugin executable: mounts go
// through the kernel's plugin runner (kernel/plugin: catalog entry pinned
// to the file's SHA-256, no inherited environment, supervision), the
// control-plane checks through a second connection made the same way.
func NewGoPlugin(cfg GoPluginConfig) (Target, error) {
	path, err := filepath.Abs(cfg.Command)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("plugin executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("plugin executable: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	return &goPluginTarget{cfg: cfg, path: path, sum: h.Sum(nil),
		hlog: hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: cfg.Log, Level: hclog.Debug})}, nil
}

type goPluginTarget struct {
	cfg  GoPluginConfig
	path string
	sum  []byte
	hlog hclog.Logger

	mu      sync.Mutex // protects the fields below
	ctrl    *ctrlConn
	info    *Info
	infoErr error
	runner  *kplugin.Runner
	name    string // catalog name
	typ     string // catalog type
}

// ctrlConn is the control connection: one process of the plugin, reached
// with sdk/plugin as the runner reaches its own.
type ctrlConn struct {
	client *goplugin.Client
	rpc    *sdkplugin.Client

	mu    sync.RWMutex // protects views
	views map[string]logical.Storage
}

func (c *ctrlConn) resolve(id string) (logical.Storage, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.views[id]
	return s, ok
}

func (t *goPluginTarget) Transport() string { return "go-plugin" }

// newClient configures go-plugin as kernel/plugin's runner does.
func (t *goPluginTarget) newClient(versions map[int]goplugin.PluginSet) *goplugin.Client {
	cmd := exec.Command(t.path, t.cfg.Args...)
	cmd.Env = append([]string{}, t.cfg.Env...)
	return goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  sdkplugin.Handshake,
		VersionedPlugins: versions,
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     &goplugin.SecureConfig{Checksum: t.sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           t.hlog,
		AutoMTLS:         true,
		StartTimeout:     t.cfg.StartTimeout,
	})
}

func (t *goPluginTarget) Describe(ctx context.Context) (Info, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.info == nil && t.infoErr == nil {
		t.info, t.infoErr = t.connectLocked(ctx)
	}
	if t.infoErr != nil {
		return Info{}, t.infoErr
	}
	return *t.info, nil
}

func (t *goPluginTarget) connectLocked(ctx context.Context) (*Info, error) {
	client := t.newClient(sdkplugin.HostPlugins())
	cc := &ctrlConn{client: client, views: map[string]logical.Storage{}}
	rpc, err := sdkplugin.Connect(ctx, client, cc.resolve)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	cc.rpc = rpc
	pi, err := rpc.Info(ctx)
	if err != nil {
		rpc.Close()
		client.Kill()
		return nil, fmt.Errorf("Info: %w", err)
	}
	t.ctrl = cc
	return &Info{Name: pi.Name, Type: logical.BackendType(pi.Type), Version: pi.Version, SDKVersion: pi.SdkVersion,
		Capabilities: pi.Capabilities, Protocol: client.NegotiatedVersion()}, nil
}

func (t *goPluginTarget) OfferUnknownMajor(ctx context.Context) (bool, string, error) {
	set := sdkplugin.HostPlugins()[sdkplugin.ProtocolVersion]
	client := t.newClient(map[int]goplugin.PluginSet{unknownMajor: set})
	defer client.Kill()
	if _, err := client.Client(); err != nil {
		return false, err.Error(), nil
	}
	return true, fmt.Sprintf("the plugin completed the handshake with protocol version %d", client.NegotiatedVersion()), nil
}

var catalogNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ensureRunner builds the harness kernel's runner around a catalog that
// holds only the plugin under test, pinned to its digest.
func (t *goPluginTarget) ensureRunner(ctx context.Context) (*kplugin.Runner, error) {
	info, err := t.Describe(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runner != nil {
		return t.runner, nil
	}
	if info.Type != logical.TypeSecret && info.Type != logical.TypeAuth {
		return nil, fmt.Errorf("the plugin's type %q is neither %q nor %q: the kernel cannot mount it", info.Type, logical.TypeSecret, logical.TypeAuth)
	}
	t.name, t.typ = info.Name, string(info.Type)
	if !catalogNameRe.MatchString(t.name) {
		t.name = "plugin-under-test"
	}
	entry := kplugin.Entry{Name: t.name, Type: t.typ, Version: info.Version, Command: t.path,
		Args: t.cfg.Args, Env: t.cfg.Env, SHA256: hex.EncodeToString(t.sum), Builtin: true}
	t.runner = kplugin.NewRunner(kplugin.RunnerConfig{
		Catalog:      kplugin.NewCatalog(logical.NewInmemStorage(), "", []kplugin.Entry{entry}),
		Logger:       slog.New(slog.NewTextHandler(t.cfg.Log, nil)),
		LogLevel:     "debug",
		LogOut:       t.cfg.Log,
		StartTimeout: t.cfg.StartTimeout,
	})
	return t.runner, nil
}

func (t *goPluginTarget) Mount(ctx context.Context, spec MountSpec) (Mount, error) {
	r, err := t.ensureRunner(ctx)
	if err != nil {
		return nil, err
	}
	b, err := r.Mount(ctx, kplugin.MountSpec{ID: spec.ID, Path: spec.Path, PluginType: t.typ, PluginName: t.name,
		Config: spec.Config, Storage: spec.Storage})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (t *goPluginTarget) ControlMount(ctx context.Context, spec MountSpec) (ControlMount, error) {
	if _, err := t.Describe(ctx); err != nil {
		return nil, err
	}
	t.mu.Lock()
	cc, name := t.ctrl, t.info.Name
	t.mu.Unlock()
	cc.mu.Lock()
	cc.views[spec.ID] = spec.Storage
	cc.mu.Unlock()
	m := &ctrlMount{cc: cc, cfg: sdkplugin.MountConfig{ID: spec.ID, MountPoint: spec.Path, MountType: name, Config: spec.Config}}
	if err := m.Setup(ctx); err != nil {
		cc.mu.Lock()
		delete(cc.views, spec.ID)
		cc.mu.Unlock()
		return nil, err
	}
	return m, nil
}

func (t *goPluginTarget) Restart(ctx context.Context) error {
	r, err := t.ensureRunner(ctx)
	if err != nil {
		return err
	}
	return r.Reload(ctx, t.typ, t.name)
}

func (t *goPluginTarget) Generation() string {
	t.mu.Lock()
	r := t.runner
	t.mu.Unlock()
	if r == nil {
		return ""
	}
	pi, ok := r.ProcessInfo(t.typ, t.name)
	if !ok {
		return "down"
	}
	return fmt.Sprintf("pid %d, start %d", pi.Pid, pi.Restarts)
}

func (t *goPluginTarget) IsTransportError(err error) bool {
	return errors.Is(err, kplugin.ErrUnavailable) || errors.Is(err, sdkplugin.ErrTransport)
}

func (t *goPluginTarget) Close(context.Context) {
	t.mu.Lock()
	r, cc := t.runner, t.ctrl
	t.runner, t.ctrl = nil, nil
	t.mu.Unlock()
	if r != nil {
		r.Shutdown()
	}
	if cc != nil {
		cc.rpc.Close()
		cc.client.Kill()
	}
}

// ctrlMount is a mount on the control connection.
type ctrlMount struct {
	cc  *ctrlConn
	cfg sdkplugin.MountConfig

	mu  sync.Mutex // protects res
	res *sdkplugin.SetupResult
}

func (m *ctrlMount) Setup(ctx context.Context) error {
	res, err := m.cc.rpc.Setup(ctx, m.cfg)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.res = res
	m.mu.Unlock()
	return nil
}

func (m *ctrlMount) result() *sdkplugin.SetupResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.res
}

func (m *ctrlMount) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	return m.cc.rpc.HandleRequest(ctx, m.cfg.ID, req)
}

func (m *ctrlMount) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	return m.cc.rpc.ExistenceCheck(ctx, m.cfg.ID, req)
}

func (m *ctrlMount) SpecialPaths() *logical.Paths      { return m.result().SpecialPaths }
func (m *ctrlMount) Schema() *logical.Schema           { return m.result().Schema }
func (m *ctrlMount) Type() logical.BackendType         { return m.result().Type }
func (m *ctrlMount) Cleanup(ctx context.Context) error { return m.cc.rpc.Cleanup(ctx, m.cfg.ID) }

func (m *ctrlMount) InvalidateKey(ctx context.Context, key string) error {
	return m.cc.rpc.InvalidateKey(ctx, m.cfg.ID, key)
}

func (m *ctrlMount) Close(ctx context.Context) {
	_ = m.cc.rpc.Cleanup(ctx, m.cfg.ID)
	m.cc.mu.Lock()
	delete(m.cc.views, m.cfg.ID)
	m.cc.mu.Unlock()
}
