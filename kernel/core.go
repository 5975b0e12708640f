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
	"github.com/wardproject/ward/kernel/lease"
	"github.com/wardproject/ward/kernel/metrics"
	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/wasm"
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

// sealWrapPrefixes are the kernel entries the barrier seal-wraps when the
// seal has an HSM: the token store's HMAC salt and the audit devices' HMAC
// and signing keys (the keyring is always wrapped then).
var sealWrapPrefixes = []string{"sys/token/salt", auditKeyPrefix}

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
	// WasmCacheDir keeps compiled WASM plugins across restarts (mode
	// 0700; "" compiles at every unseal).
	WasmCacheDir   string
	PluginLogLevel string
	PluginLogJSON  bool
	PluginLogOut   io.Writer
	// AuditDevices are enabled at every unseal (the configuration's audit
	// stanzas). AllowAPIAuditCreation lets sys/audit create more: off
	// unless the configuration says unsafe_allow_api_audit_creation or the
	// server runs in dev mode (CVE-2025-6000).
	AuditDevices          []config.Audit
	AllowAPIAuditCreation bool
	// PeriodicInterval is how often every plugin mount gets its periodic
	// call (RollbackOperation). Default 1 minute.
	PeriodicInterval time.Duration
	// MaxRequestDuration bounds every request, plugin call included.
	MaxRequestDuration time.Duration
	Now                func() time.Time
	// Seal is the configured auto-unseal seal (a `seal "pkcs11"` stanza);
	// nil means the Shamir seal. The caller owns it and closes it after
	// Shutdown.
	Seal seal.Access
	// MigrateFrom is the seal storage is being migrated away from (a seal
	// stanza with disabled = true), to Seal or, when Seal is nil, to
	// Shamir. Storage sealed with Shamir migrates to Seal without it.
	MigrateFrom seal.Access
	// KeyRotationCheckInterval is how often automatic key rotation checks
	// its limits (sys/rotate/config). Default 10s.
	KeyRotationCheckInterval time.Duration
	// Cluster reports the storage's replication (raft); nil when storage
	// is not replicated.
	Cluster Cluster
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
	if c.KeyRotationCheckInterval == 0 {
		c.KeyRotationCheckInterval = 10 * time.Second
	}
	if c.PeriodicInterval == 0 {
		c.PeriodicInterval = time.Minute
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
	// seal is the configured seal; migrateFrom the seal storage may still
	// be sealed with (see migrationSource).
	seal        *seal.Seal
	migrateFrom *seal.Seal

	// initMu serialises init, unseal and seal transitions.
	initMu sync.Mutex

	// haStop ends the HA watcher (runHA); haDone is closed when it has.
	haStop context.CancelFunc
	haDone chan struct{}

	mu sync.RWMutex // protects the fields below
	// standby: the barrier is open but another node is active (ha.go).
	standby bool
	// unsealed is the state built at unseal and torn down at seal; nil
	// while sealed.
	unsealed *unsealedState
}

// unsealedState is everything that only exists while unsealed.
type unsealedState struct {
	tokens    *token.Store
	policies  *policyStore
	audit     *auditDevices
	leases    *lease.Manager
	secrets   *mountKind // sys/mounts
	auths     *mountKind // sys/auth, routed under auth/
	router    *router.Router
	catalog   *plugin.Catalog
	runner    *plugin.Runner
	handlesMu sync.Mutex                // protects handles
	handles   map[string]plugin.Backend // route prefix -> plugin mount

	// opMu serialises the operations that change mounts or plugins, and
	// Seal takes it so none is half-done when the state goes away.
	opMu    sync.Mutex
	closed  bool // set by Seal under opMu: operations must not commit
	keys    *keyManager
	system  logical.Backend
	cluster clusterInfo
	since   time.Time // when the core unsealed
	// stopCtx is done when the state is being torn down (stop cancels it).
	stopCtx context.Context
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
	if cfg.Seal != nil && cfg.MigrateFrom != nil && cfg.Seal.Type() == cfg.MigrateFrom.Type() && cfg.Seal.KeyID() == cfg.MigrateFrom.KeyID() {
		return nil, errors.New("kernel: the enabled and the disabled seal use the same key; nothing to migrate")
	}
	b := barrier.New(cfg.Storage)
	b.SetClock(cfg.Now)
	c := &Core{cfg: cfg, logger: cfg.Logger, barrier: b, seal: newSeal(cfg.Storage, b, cfg.Seal)}
	switch {
	case cfg.MigrateFrom != nil:
		c.migrateFrom = newSeal(cfg.Storage, b, cfg.MigrateFrom)
	case cfg.Seal != nil:
		c.migrateFrom = seal.NewShamir(cfg.Storage, b)
	}
	c.startHA()
	return c, nil
}

func newSeal(phys storage.Backend, b *barrier.Barrier, a seal.Access) *seal.Seal {
	if a == nil {
		return seal.NewShamir(phys, b)
	}
	return seal.NewAuto(phys, b, a)
}

// errMigrationPending: unsealing without migrate while storage must move
// to the configured seal.
func errMigrationPending(from, to *seal.Seal) error {
	return logical.InvalidRequest("a seal migration from %s to %s is pending: unseal with the %s keys and migrate=true (ward operator unseal -migrate)",
		from.Describe(), to.Describe(), keyKind(from))
}

func keyKind(s *seal.Seal) string {
	if s.RecoveryKeys() {
		return "recovery"
	}
	return "unseal"
}

// migrationSource returns the seal storage is sealed with when it is not
// the configured one and the configuration says to migrate from it; nil
// when no migration is pending (or storage is not initialised). Storage
// sealed by a seal the configuration does not mention is an error naming
// both.
func (c *Core) migrationSource(ctx context.Context) (*seal.Seal, error) {
	if c.migrateFrom == nil {
		return nil, c.seal.CheckStorage(ctx)
	}
	stored, err := seal.StoredSeal(ctx, c.cfg.Storage, firstNonNil(c.cfg.Seal, c.cfg.MigrateFrom))
	if err != nil || stored == "" {
		return nil, err
	}
	switch stored {
	case c.seal.Describe():
		return nil, nil // migrated already; the disabled stanza can go
	case c.migrateFrom.Describe():
		return c.migrateFrom, nil
	}
	return nil, fmt.Errorf("%w: it is sealed by %s; the configuration has %s and (disabled) %s",
		seal.ErrWrongSeal, stored, c.seal.Describe(), c.migrateFrom.Describe())
}

func firstNonNil(as ...seal.Access) seal.Access {
	for _, a := range as {
		if a != nil {
			return a
		}
	}
	return nil
}

// useSealWrap gives the barrier the wrapper of the seal storage is sealed
// with, before unsealing.
func (c *Core) useSealWrap(s *seal.Seal) {
	c.barrier.SetSealWrap(seal.Wrapper(s.Access()), sealWrapPrefixes...)
}

// Version returns the version the server reports.
func (c *Core) Version() string { return c.cfg.Version }

// Metrics returns the core's metrics.
func (c *Core) Metrics() *metrics.Metrics { return c.cfg.Metrics }

// Initialized reports whether sys/init has run.
func (c *Core) Initialized(ctx context.Context) (bool, error) {
	return c.barrier.Initialized(ctx)
}

// Sealed reports whether the core is sealed. A standby is unsealed.
func (c *Core) Sealed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.unsealed == nil && !c.standby
}

// InitParams are sys/init's parameters.
type InitParams struct {
	SecretShares    int
	SecretThreshold int
	// RecoveryShares and RecoveryThreshold configure the recovery keys of
	// an auto-unseal seal (SecretShares and SecretThreshold are then
	// ignored, as in Vault).
	RecoveryShares    int
	RecoveryThreshold int
	// RootTokenID sets the root token's ID (dev servers only).
	RootTokenID string
}

// InitResult holds the unseal key shares (Shamir) or the recovery key
// shares (auto seal) and the root token: shown once.
type InitResult struct {
	Keys         [][]byte
	RecoveryKeys [][]byte
	RootToken    string
}

// Initialize creates the keys, the root token and the initial tables. With
// the Shamir seal it leaves the server sealed, as Vault does; with an
// auto-unseal seal the server unseals itself right away, as Vault does.
func (c *Core) Initialize(ctx context.Context, p InitParams) (*InitResult, error) {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if ok, err := c.barrier.Initialized(ctx); err != nil {
		return nil, err
	} else if ok {
		return nil, ErrAlreadyInitialized
	}
	if c.cfg.MigrateFrom != nil {
		return nil, logical.InvalidRequest("the configuration has a disabled seal to migrate from; remove it to initialize a new server")
	}
	auto := c.seal.RecoveryKeys()
	cfg := seal.Config{Type: c.seal.Type(), SecretShares: p.SecretShares, SecretThreshold: p.SecretThreshold}
	if auto {
		if p.RecoveryShares == 0 {
			return nil, logical.InvalidRequest("recovery_shares must be at least one with the %s seal", c.seal.Type())
		}
		cfg.SecretShares, cfg.SecretThreshold = 1, 1
		cfg.RecoveryShares, cfg.RecoveryThreshold = p.RecoveryShares, p.RecoveryThreshold
	} else if p.RecoveryShares != 0 || p.RecoveryThreshold != 0 {
		return nil, logical.InvalidRequest("recovery keys need an auto-unseal seal; this server uses the Shamir seal")
	}
	if err := cfg.Validate(); err != nil {
		return nil, &logical.Error{Code: logical.CodeInvalidRequest, Message: err.Error()}
	}
	c.useSealWrap(c.seal)
	shares, err := c.seal.Initialize(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Whatever fails from here on must not leave the barrier open: a
	// half-initialized server would otherwise unseal with any share.
	done := false
	defer func() {
		if !done || !auto {
			c.barrier.Seal()
			c.seal.ResetUnseal()
		}
	}()
	if auto {
		if err := c.seal.AutoUnseal(ctx); err != nil {
			return nil, fmt.Errorf("unseal after init: %w", err)
		}
	} else {
		for i := 0; i < p.SecretThreshold; i++ {
			if _, err := c.seal.Unseal(ctx, shares[i]); err != nil {
				return nil, fmt.Errorf("unseal after init: %w", err)
			}
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
	tokens.Close()
	if err != nil {
		return nil, fmt.Errorf("create root token: %w", err)
	}
	res := &InitResult{RootToken: root.ID}
	if auto {
		if err := c.activate(ctx); err != nil {
			return nil, err
		}
		res.RecoveryKeys = shares
		c.logger.Info("server initialized and unsealed by the seal", "seal", c.seal.Type(),
			"recovery_shares", cfg.RecoveryShares, "recovery_threshold", cfg.RecoveryThreshold)
	} else {
		res.Keys = shares
		c.logger.Info("server initialized", "shares", p.SecretShares, "threshold", p.SecretThreshold)
	}
	done = true
	return res, nil
}

func (c *Core) tokenOptions() token.Options {
	return token.Options{Now: c.cfg.Now, DefaultTTL: c.cfg.DefaultLeaseTTL, MaxTTL: c.cfg.MaxLeaseTTL, Logger: c.logger}
}

// SealStatus is what sys/seal-status reports.
type SealStatus struct {
	Type        string
	Initialized bool
	Sealed      bool
	// Threshold and Shares are those of the keys operators enter: unseal
	// keys, or recovery keys with an auto seal (RecoverySeal).
	Threshold    int
	Shares       int
	Progress     int
	Nonce        string
	RecoverySeal bool
	// Migration is set while a seal migration waits for the keys of the
	// seal storage is sealed with (Type is that seal's).
	Migration   bool
	ClusterName string
	ClusterID   string
}

// SealStatus reports the seal state.
func (c *Core) SealStatus(ctx context.Context) (*SealStatus, error) {
	active := c.seal
	from, err := c.migrationSource(ctx)
	if err != nil && !errors.Is(err, seal.ErrWrongSeal) {
		return nil, err
	}
	if from != nil {
		active = from
	}
	st := &SealStatus{Type: active.Type(), Sealed: c.Sealed(), RecoverySeal: active.RecoveryKeys(), Migration: from != nil}
	cfg, err := active.Config(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		st.Sealed = true
		return st, nil
	}
	st.Initialized = true
	st.Threshold, st.Shares = cfg.KeyThreshold(), cfg.KeyShares()
	pr := active.Progress()
	st.Progress, st.Nonce = pr.Progress, pr.Nonce
	c.mu.RLock()
	if u := c.unsealed; u != nil {
		st.ClusterName, st.ClusterID = u.cluster.Name, u.cluster.ID
	}
	c.mu.RUnlock()
	return st, nil
}

// Unseal submits one key share: an unseal key share, or with an auto seal
// a recovery key share (after sys/seal). When the threshold is reached the
// barrier opens and the kernel's state is loaded.
func (c *Core) Unseal(ctx context.Context, share []byte) (*SealStatus, error) {
	return c.unseal(ctx, share, false)
}

// UnsealMigrate submits one key share of the seal storage is sealed with,
// towards the pending seal migration (`operator unseal -migrate`). When
// the threshold is reached, storage moves to the configured seal in one
// atomic step and the server unseals.
func (c *Core) UnsealMigrate(ctx context.Context, share []byte) (*SealStatus, error) {
	return c.unseal(ctx, share, true)
}

func (c *Core) unseal(ctx context.Context, share []byte, migrate bool) (*SealStatus, error) {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if !c.Sealed() {
		if migrate {
			return nil, logical.InvalidRequest("the server is unsealed; seal migration happens while unsealing")
		}
		return c.SealStatus(ctx)
	}
	if ok, err := c.barrier.Initialized(ctx); err != nil {
		return nil, err
	} else if !ok {
		return nil, ErrNotInitialized
	}
	from, err := c.migrationSource(ctx)
	if errors.Is(err, seal.ErrWrongSeal) {
		return nil, logical.InvalidRequest("%s", err.Error())
	}
	if err != nil {
		return nil, err
	}
	switch {
	case from != nil && !migrate:
		return nil, errMigrationPending(from, c.seal)
	case from == nil && migrate:
		return nil, logical.InvalidRequest("no seal migration is pending: the storage already uses the configured %s seal", c.seal.Type())
	}
	if !c.barrier.Sealed() {
		// The core is sealed but the barrier open: only a failed
		// transition leaves this. Close it rather than trust it.
		c.barrier.Seal()
		c.seal.ResetUnseal()
	}
	if from != nil {
		c.useSealWrap(from)
		if _, err := seal.Migrate(ctx, from, c.seal, share); err != nil {
			return nil, err
		}
		if !c.barrier.Sealed() {
			c.logger.Info("seal migrated", "from", from.Describe(), "to", c.seal.Describe())
		}
	} else {
		c.useSealWrap(c.seal)
		if _, err := c.seal.Unseal(ctx, share); err != nil {
			return nil, err
		}
	}
	if !c.barrier.Sealed() {
		if err := c.activate(ctx); err != nil {
			c.barrier.Seal()
			return nil, err
		}
	}
	return c.SealStatus(ctx)
}

// AutoUnseal unseals with the configured auto-unseal seal (the HSM), with
// no operator action; it is what the server does at start. It changes
// nothing in storage, and fails with an error naming the cause (wrong PIN,
// missing key, unreachable HSM, pending migration...).
func (c *Core) AutoUnseal(ctx context.Context) error {
	if !c.seal.RecoveryKeys() {
		return fmt.Errorf("%w: the Shamir seal needs unseal keys", seal.ErrUnsupported)
	}
	c.initMu.Lock()
	defer c.initMu.Unlock()
	if !c.Sealed() {
		return nil
	}
	if ok, err := c.barrier.Initialized(ctx); err != nil {
		return err
	} else if !ok {
		return ErrNotInitialized
	}
	from, err := c.migrationSource(ctx)
	if err != nil {
		return err
	}
	if from != nil {
		return errMigrationPending(from, c.seal)
	}
	if !c.barrier.Sealed() {
		c.barrier.Seal()
	}
	c.useSealWrap(c.seal)
	if err := c.seal.AutoUnseal(ctx); err != nil {
		return err
	}
	if err := c.activate(ctx); err != nil {
		c.barrier.Seal()
		return err
	}
	return nil
}

// ResetUnseal discards the key shares submitted so far.
func (c *Core) ResetUnseal(ctx context.Context) (*SealStatus, error) {
	c.seal.ResetUnseal()
	if c.migrateFrom != nil {
		c.migrateFrom.ResetUnseal()
	}
	return c.SealStatus(ctx)
}

// MigrationPending reports whether storage waits for a seal migration.
func (c *Core) MigrationPending(ctx context.Context) (bool, error) {
	from, err := c.migrationSource(ctx)
	return from != nil, err
}

// SealType is the configured seal's type.
func (c *Core) SealType() string { return c.seal.Type() }

// postUnseal loads the kernel's state from the opened barrier.
func (c *Core) postUnseal(ctx context.Context) error {
	u := &unsealedState{router: router.New(), handles: map[string]plugin.Backend{}}
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
	topts.Revoked = c.tokenGone(u) // leases and cubbyhole (cubbyhole.go)
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
	if u.leases, err = c.newLeaseManager(u); err != nil {
		return err
	}
	u.catalog = plugin.NewCatalog(c.barrier.View("core/plugin-catalog/"), c.cfg.PluginDirectory, c.cfg.BuiltinPlugins)
	u.runner = plugin.NewRunner(plugin.RunnerConfig{
		Catalog: u.catalog, Logger: c.logger, LogLevel: c.cfg.PluginLogLevel, LogJSON: c.cfg.PluginLogJSON,
		LogOut: c.cfg.PluginLogOut, Observer: c.cfg.Metrics, WasmCacheDir: c.cfg.WasmCacheDir,
	})

	sysEntry := &mount.Entry{Path: "sys/", Type: "system", UUID: "sys", Accessor: "system",
		Description: "system endpoints used for control, policy and debugging"}
	u.secrets.table.AddBuiltin(sysEntry)
	tokenEntry := &mount.Entry{Path: "token/", Type: "token", UUID: "token", Accessor: u.tokenAuthAccessor(),
		Description: "token based credentials"}
	u.auths.table.AddBuiltin(tokenEntry)
	if u.keys, err = c.newKeyManager(ctx, u); err != nil {
		return err
	}
	u.system = c.systemBackend(u)
	u.router.Add(&router.Route{Prefix: "sys/", Type: "system", Accessor: sysEntry.Accessor, Handler: u.system.(router.Handler)})
	u.router.Add(&router.Route{Prefix: "auth/token/", Type: "token", Accessor: tokenEntry.Accessor, Handler: u.tokens.Backend()})
	c.mountCubbyhole(u)

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
	u.stopCtx, u.stop = bgCtx, cancel
	u.bg.Add(2)
	go func() {
		defer u.bg.Done()
		u.tokens.Run(bgCtx)
	}()
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		u.leases.Run(bgCtx)
	}()
	go func() {
		defer u.bg.Done()
		u.keys.runRotation(bgCtx)
	}()
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		c.runPeriodic(bgCtx, u)
	}()

	c.mu.Lock()
	u.since = c.cfg.Now()
	c.unsealed = u
	c.standby = false
	c.mu.Unlock()
	c.cfg.Metrics.SetSealed(false)
	c.logger.Info("server unsealed", "mounts", len(u.secrets.table.Entries()), "auth_methods", len(u.auths.table.Entries()))
	if cl := c.cfg.Cluster; cl != nil {
		if err := cl.Activate(ctx, c.barrier.View("core/raft/")); err != nil {
			c.logger.Error("cluster: activating this node", "error", err)
		}
	}
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
	u, standby := c.unsealed, c.standby
	c.unsealed, c.standby = nil, false
	c.mu.Unlock()
	if u == nil && !standby {
		return nil
	}
	if u != nil {
		c.teardown(u)
	}
	c.barrier.Seal()
	c.seal.ResetUnseal()
	if c.migrateFrom != nil {
		c.migrateFrom.ResetUnseal()
	}
	c.cfg.Metrics.SetSealed(true)
	c.logger.Info("server sealed")
	return nil
}

// Shutdown seals the core and releases everything; used at process exit.
func (c *Core) Shutdown(ctx context.Context) error {
	c.stopHA()
	return c.Seal(ctx)
}

// teardown stops what the active state runs (plugins, background jobs,
// audit devices): at seal, and when an active node becomes a standby.
// The caller has already removed u from c.unsealed.
func (c *Core) teardown(u *unsealedState) {
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
}

func (c *Core) state() (*unsealedState, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.unsealed == nil {
		if c.standby {
			return nil, ErrStandby
		}
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

// DescribeWasm compiles a WASM plugin and returns its self-description
// (dev servers use it to register the modules of -dev-plugin-dir).
func (c *Core) DescribeWasm(ctx context.Context, bin []byte) (wasm.Info, error) {
	u, err := c.state()
	if err != nil {
		return wasm.Info{}, err
	}
	return u.runner.DescribeWasm(ctx, bin)
}

// tokenAuthAccessor is the accessor of the built-in token auth method,
// stable for a cluster.
func (u *unsealedState) tokenAuthAccessor() string {
	sum := sha256.Sum256([]byte("auth/token/" + u.cluster.ID))
	return "auth_token_" + hex.EncodeToString(sum[:4])
}

func (u *unsealedState) setHandle(path string, h plugin.Backend) {
	u.handlesMu.Lock()
	defer u.handlesMu.Unlock()
	u.handles[path] = h
}

func (u *unsealedState) handle(path string) plugin.Backend {
	u.handlesMu.Lock()
	defer u.handlesMu.Unlock()
	return u.handles[path]
}

func (u *unsealedState) takeHandle(path string) plugin.Backend {
	u.handlesMu.Lock()
	defer u.handlesMu.Unlock()
	h := u.handles[path]
	delete(u.handles, path)
	return h
}
