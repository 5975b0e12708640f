package kernel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/config"
	"github.com/wardproject/ward/kernel/metrics"
	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/logical"
)

// Errors returned by the core.
var (
	// ErrSealed: the server is sealed (HTTP 503).
	ErrSealed = errors.New("Vault is sealed")
	// ErrNotInitialized: sys/init has not run (HTTP 400 on unseal).
	ErrNotInitialized = errors.New("Vault is not initialized")
	// ErrAlreadyInitialized: sys/init ran before (HTTP 400).
	ErrAlreadyInitialized = errors.New("Vault is already initialized")
)

// Config configures a Core. Zero values take the defaults in withDefaults.
type Config struct {
	Storage storage.Backend
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Version is reported by sys/health and sys/seal-status. Tools gate
	// features on it, so it is a Vault-compatible semver.
	Version         string
	ClusterName     string
	DefaultLeaseTTL time.Duration
	MaxLeaseTTL     time.Duration
	// BuiltinPlugins are the plugins shipped in the ward binary.
	BuiltinPlugins  []plugin.Entry
	PluginDirectory string
	PluginLogLevel  string
	PluginLogJSON   bool
	PluginLogOut    io.Writer
	// AuditDevices are enabled at every unseal (the configuration's audit
	// stanzas). AllowAPIAuditCreation lets sys/audit create more: off
	// unless the configuration says unsafe_allow_api_audit_creation or the
	// server runs in dev mode (CVE-2025-6000).
	AuditDevices          []config.Audit
	AllowAPIAuditCreation bool
	// MaxRequestDuration bounds every request, plugin call included.
	MaxRequestDuration time.Duration
	Now                func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New()
	}
	if c.Version == "" {
		c.Version = config.DefaultReportedVersion
	}
	if c.DefaultLeaseTTL == 0 {
		c.DefaultLeaseTTL = 768 * time.Hour
	}
	if c.MaxLeaseTTL == 0 {
		c.MaxLeaseTTL = 768 * time.Hour
	}
	if c.MaxRequestDuration == 0 {
		c.MaxRequestDuration = 90 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	if c.Storage == nil {
		return errors.New("kernel: Config.Storage is required")
	}
	if c.DefaultLeaseTTL > c.MaxLeaseTTL {
		return errors.New("kernel: default_lease_ttl must not exceed max_lease_ttl")
	}
	return nil
}

// Core is one Ward server's kernel.
type Core struct {
	cfg     Config
	logger  *slog.Logger
	barrier *barrier.Barrier
	seal    *seal.Shamir

	// initMu serialises init, unseal and seal transitions.
	initMu sync.Mutex

	mu sync.RWMutex // protects the fields below
	// unsealed is the state built at unseal and torn down at seal; nil
	// while sealed.
	unsealed *unsealedState
}

// unsealedState is everything that only exists while unsealed.
type unsealedState struct {
	tokens    *token.Store
	policies  *policyStore
	audit     *auditDevices
	secrets   *mountKind // sys/mounts
	auths     *mountKind // sys/auth, routed under auth/
	router    *router.Router
	catalog   *plugin.Catalog
	runner    *plugin.Runner
	handlesMu sync.Mutex                // protects handles
	handles   map[string]*plugin.Handle // route prefix -> handle

	// opMu serialises the operations that change mounts or plugins, and
	// Seal takes it so none is half-done when the state goes away.
	opMu    sync.Mutex
	closed  bool // set by Seal under opMu: operations must not commit
	system  logical.Backend
	cluster clusterInfo
	stop    context.CancelFunc
	bg      sync.WaitGroup
}

type clusterInfo struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// New builds a Core. It starts sealed.
func New(cfg Config) (*Core, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := barrier.New(cfg.Storage)
	c := &Core{cfg: cfg, logger: cfg.Logger, barrier: b, seal: seal.NewShamir(cfg.Storage, b)}
	return c, nil
}

// Version returns the version the server reports.
func (c *Core) Version() string { return c.cfg.Version }

// Metrics returns the core's metrics.
func (c *Core) Metrics() *metrics.Metrics { return c.cfg.Metrics }

// Initialized reports whether sys/init has run.
func (c *Core) Initialized(ctx context.Context) (bool, error) {
	return c.barrier.Initialized(ctx)
}

// Sealed reports whether the core is sealed.
func (c *Core) Sealed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.unsealed == nil
}

// InitParams are sys/init's parameters.
type InitParams struct {
	SecretShares    int
	SecretThreshold int
	// RootTokenID sets the root token's ID (dev servers only).
	RootTokenID string
}

// InitResult holds the unseal key shares and the root token: shown once.
type InitResult struct {
	Keys      [][]byte
	RootToken string
}

// Initialize creates the keys, the root token and the initial tables, then
// leaves the server sealed, as Vault does.
func (c *Core) Initialize(ctx context.Context, p InitParams) (*InitResult, error) {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if ok, err := c.barrier.Initialized(ctx); err != nil {
		return nil, err
	} else if ok {
		return nil, ErrAlreadyInitialized
	}
	cfg := seal.Config{Type: "shamir", SecretShares: p.SecretShares, SecretThreshold: p.SecretThreshold}
	if err := cfg.Validate(); err != nil {
		return nil, &logical.Error{Code: logical.CodeInvalidRequest, Message: err.Error()}
	}
	shares, err := c.seal.Initialize(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Init leaves the server sealed, as Vault does, and whatever fails
	// from here on must not leave the barrier open: a half-initialized
	// server would otherwise unseal with any share.
	defer func() {
		c.barrier.Seal()
		c.seal.ResetUnseal()
	}()
	for i := 0; i < p.SecretThreshold; i++ {
		if _, err := c.seal.Unseal(ctx, shares[i]); err != nil {
			return nil, fmt.Errorf("unseal after init: %w", err)
		}
	}
	var clusterID [16]byte
	_, _ = rand.Read(clusterID[:])
	cluster := clusterInfo{Name: c.cfg.ClusterName, ID: uuid.NewString()}
	if cluster.Name == "" {
		cluster.Name = "ward-cluster-" + hex.EncodeToString(clusterID[:4])
	}
	ce, err := logical.StorageEntryJSON("core/cluster", cluster)
	if err != nil {
		return nil, err
	}
	if err := c.barrier.Put(ctx, ce.Key, ce.Value); err != nil {
		return nil, err
	}
	tokens, err := token.NewStore(ctx, c.barrier.View("sys/token/"), c.tokenOptions())
	if err != nil {
		return nil, err
	}
	root, err := tokens.Create(ctx, &token.Entry{ID: p.RootTokenID, Policies: []string{"root"},
		DisplayName: "root", Path: "auth/token/root"})
	if err != nil {
		return nil, fmt.Errorf("create root token: %w", err)
	}
	c.logger.Info("server initialized", "shares", p.SecretShares, "threshold", p.SecretThreshold)
	return &InitResult{Keys: shares, RootToken: root.ID}, nil
}

func (c *Core) tokenOptions() token.Options {
	return token.Options{Now: c.cfg.Now, DefaultTTL: c.cfg.DefaultLeaseTTL, MaxTTL: c.cfg.MaxLeaseTTL, Logger: c.logger}
}

// SealStatus is what sys/seal-status reports.
type SealStatus struct {
	Type        string
	Initialized bool
	Sealed      bool
	Threshold   int
	Shares      int
	Progress    int
	Nonce       string
	ClusterName string
	ClusterID   string
}

// SealStatus reports the seal state.
func (c *Core) SealStatus(ctx context.Context) (*SealStatus, error) {
	st := &SealStatus{Type: "shamir", Sealed: c.Sealed()}
	cfg, err := c.seal.Config(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		st.Sealed = true
		return st, nil
	}
	st.Initialized = true
	st.Threshold, st.Shares = cfg.SecretThreshold, cfg.SecretShares
	pr := c.seal.Progress()
	st.Progress, st.Nonce = pr.Progress, pr.Nonce
	c.mu.RLock()
	if u := c.unsealed; u != nil {
		st.ClusterName, st.ClusterID = u.cluster.Name, u.cluster.ID
	}
	c.mu.RUnlock()
	return st, nil
}

// Unseal submits one key share. When the threshold is reached the barrier
// opens and the kernel's state is loaded.
func (c *Core) Unseal(ctx context.Context, share []byte) (*SealStatus, error) {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if !c.Sealed() {
		return c.SealStatus(ctx)
	}
	if ok, err := c.barrier.Initialized(ctx); err != nil {
		return nil, err
	} else if !ok {
		return nil, ErrNotInitialized
	}
	if !c.barrier.Sealed() {
		// The core is sealed but the barrier open: only a failed
		// transition leaves this. Close it rather than trust it.
		c.barrier.Seal()
		c.seal.ResetUnseal()
	}
	if _, err := c.seal.Unseal(ctx, share); err != nil {
		return nil, err
	}
	if !c.barrier.Sealed() {
		if err := c.postUnseal(ctx); err != nil {
			c.barrier.Seal()
			return nil, err
		}
	}
	return c.SealStatus(ctx)
}

// ResetUnseal discards the key shares submitted so far.
func (c *Core) ResetUnseal(ctx context.Context) (*SealStatus, error) {
	c.seal.ResetUnseal()
	return c.SealStatus(ctx)
}

// postUnseal loads the kernel's state from the opened barrier.
func (c *Core) postUnseal(ctx context.Context) error {
	u := &unsealedState{router: router.New(), handles: map[string]*plugin.Handle{}}
	ce, err := c.barrier.Get(ctx, "core/cluster")
	if err != nil {
		return err
	}
	if ce != nil {
		if err := (&logical.StorageEntry{Value: ce}).DecodeJSON(&u.cluster); err != nil {
			return fmt.Errorf("decode cluster info: %w", err)
		}
	}
	topts := c.tokenOptions()
	topts.RenewAuth = c.renewAuth(u)
	if u.tokens, err = token.NewStore(ctx, c.barrier.View("sys/token/"), topts); err != nil {
		return err
	}
	secrets, err := mount.Load(ctx, c.barrier.View("core/"), "mounts", mount.SecretReserved)
	if err != nil {
		return err
	}
	auths, err := mount.Load(ctx, c.barrier.View("core/"), "auth", nil)
	if err != nil {
		return err
	}
	u.secrets = &mountKind{table: secrets, pluginType: logical.TypeSecret, noun: "secret engine"}
	u.auths = &mountKind{table: auths, routePrefix: "auth/", pluginType: logical.TypeAuth, noun: "auth method"}
	if u.policies, err = newPolicyStore(ctx, c.barrier.View("sys/policy/"), c.cfg.Now); err != nil {
		return err
	}
	if u.audit, err = c.loadAudit(ctx); err != nil {
		return err
	}
	u.catalog = plugin.NewCatalog(c.barrier.View("core/plugin-catalog/"), c.cfg.PluginDirectory, c.cfg.BuiltinPlugins)
	u.runner = plugin.NewRunner(plugin.RunnerConfig{
		Catalog: u.catalog, Logger: c.logger, LogLevel: c.cfg.PluginLogLevel, LogJSON: c.cfg.PluginLogJSON,
		LogOut: c.cfg.PluginLogOut, Observer: c.cfg.Metrics,
	})

	sysEntry := &mount.Entry{Path: "sys/", Type: "system", UUID: "sys", Accessor: "system",
		Description: "system endpoints used for control, policy and debugging"}
	u.secrets.table.AddBuiltin(sysEntry)
	tokenEntry := &mount.Entry{Path: "token/", Type: "token", UUID: "token", Accessor: u.tokenAuthAccessor(),
		Description: "token based credentials"}
	u.auths.table.AddBuiltin(tokenEntry)
	u.system = c.systemBackend(u)
	u.router.Add(&router.Route{Prefix: "sys/", Type: "system", Accessor: sysEntry.Accessor, Handler: u.system.(router.Handler)})
	u.router.Add(&router.Route{Prefix: "auth/token/", Type: "token", Accessor: tokenEntry.Accessor, Handler: u.tokens.Backend()})

	// Start every plugin mount. A mount whose plugin fails stays routed and
	// answers 502 until the plugin works again: one broken plugin must not
	// keep the whole server sealed.
	for _, k := range []*mountKind{u.secrets, u.auths} {
		for _, e := range k.table.Entries() {
			if e.Builtin {
				continue
			}
			if err := c.startMount(ctx, u, k, e); err != nil {
				c.logger.Error(k.noun+" failed to start", "path", k.route(e), "type", e.Type, "error", err)
			}
		}
	}

	bgCtx, cancel := context.WithCancel(context.Background())
	u.stop = cancel
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		u.tokens.Run(bgCtx)
	}()

	c.mu.Lock()
	c.unsealed = u
	c.mu.Unlock()
	c.cfg.Metrics.SetSealed(false)
	c.logger.Info("server unsealed", "mounts", len(u.secrets.table.Entries()), "auth_methods", len(u.auths.table.Entries()))
	return nil
}

// unavailable serves a mount whose plugin could not start.
type unavailable struct{ err error }

func (u unavailable) HandleRequest(context.Context, *logical.Request) (*logical.Response, error) {
	return nil, fmt.Errorf("%w: %v", plugin.ErrUnavailable, u.err)
}
func (u unavailable) SpecialPaths() *logical.Paths { return &logical.Paths{} }

// Seal closes the barrier, stops every plugin and forgets all key material.
func (c *Core) Seal(ctx context.Context) error {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	c.mu.Lock()
	u := c.unsealed
	c.unsealed = nil
	c.mu.Unlock()
	if u == nil {
		return nil
	}
	// Wait for a mount or plugin operation in progress, and forbid any
	// from committing afterwards.
	u.opMu.Lock()
	u.closed = true
	u.opMu.Unlock()
	u.stop()
	u.bg.Wait()
	u.runner.Shutdown()
	u.tokens.Close()
	if err := u.audit.broker.Close(); err != nil {
		c.logger.Error("closing the audit devices", "error", err)
	}
	c.barrier.Seal()
	c.seal.ResetUnseal()
	c.cfg.Metrics.SetSealed(true)
	c.logger.Info("server sealed")
	return nil
}

// Shutdown seals the core and releases everything; used at process exit.
func (c *Core) Shutdown(ctx context.Context) error { return c.Seal(ctx) }

func (c *Core) state() (*unsealedState, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.unsealed == nil {
		return nil, ErrSealed
	}
	return c.unsealed, nil
}

// ReopenAudit reopens the audit devices' files (SIGHUP, after rotation).
func (c *Core) ReopenAudit() error {
	u, err := c.state()
	if err != nil {
		return nil // sealed: no device is open
	}
	return u.audit.broker.Reopen()
}

// PluginProcess reports on the process serving a plugin (tests, ops).
func (c *Core) PluginProcess(typ, name string) (plugin.Info, bool) {
	u, err := c.state()
	if err != nil {
		return plugin.Info{}, false
	}
	return u.runner.ProcessInfo(typ, name)
}

// tokenAuthAccessor is the accessor of the built-in token auth method,
// stable for a cluster.
func (u *unsealedState) tokenAuthAccessor() string {
	sum := sha256.Sum256([]byte("auth/token/" + u.cluster.ID))
	return "auth_token_" + hex.EncodeToString(sum[:4])
}

func (u *unsealedState) setHandle(path string, h *plugin.Handle) {
	u.handlesMu.Lock()
	defer u.handlesMu.Unlock()
	u.handles[path] = h
}

func (u *unsealedState) takeHandle(path string) *plugin.Handle {
	u.handlesMu.Lock()
	defer u.handlesMu.Unlock()
	h := u.handles[path]
	delete(u.handles, path)
	return h
}
