package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wardproject/ward/kernel"
	"github.com/wardproject/ward/kernel/cluster"
	"github.com/wardproject/ward/kernel/config"
	"github.com/wardproject/ward/kernel/httpapi"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/sdk/logical"
)

type serverCommand struct{}

func (c *serverCommand) Synopsis() string { return "Start a Ward server" }

func (c *serverCommand) Help() string {
	return `Usage: ward server -config=FILE
       ward server -dev [-dev-root-token-id=ID] [-dev-listen-address=ADDR]

  Starts a Ward server. With -config it reads a Vault-syntax configuration
  file (listener "tcp", storage "raft", plugin_directory, ...). With -dev
  it runs an initialized, unsealed, in-temp-dir server with kv-v2 mounted at
  secret/ and a root token printed on start: for development only.

Options:
  -config=FILE               Configuration file (HCL or JSON).
  -dev                       Development mode.
  -dev-root-token-id=ID      Root token ID in dev mode (env VAULT_DEV_ROOT_TOKEN_ID).
  -dev-listen-address=ADDR   Listen address in dev mode (default 127.0.0.1:8200).
  -dev-plugin-dir=DIR        plugin_directory in dev mode.
  -dev-data-dir=DIR          Keep dev data in DIR instead of a temporary directory.
`
}

func (c *serverCommand) Run(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath, devRootToken, devListen, devPluginDir, devDataDir string
		dev                                                           bool
	)
	fs.StringVar(&configPath, "config", "", "")
	fs.BoolVar(&dev, "dev", false, "")
	fs.StringVar(&devRootToken, "dev-root-token-id", os.Getenv("VAULT_DEV_ROOT_TOKEN_ID"), "")
	fs.StringVar(&devListen, "dev-listen-address", envOr("VAULT_DEV_LISTEN_ADDRESS", "127.0.0.1:8200"), "")
	fs.StringVar(&devPluginDir, "dev-plugin-dir", "", "")
	fs.StringVar(&devDataDir, "dev-data-dir", "", "")
	fs.Usage = func() { fmt.Fprint(stderr, c.Help()) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !dev && configPath == "" {
		fmt.Fprintln(stderr, "Error: -config is required (or -dev for a development server)")
		return 2
	}

	var cfg *config.Config
	var err error
	if configPath != "" {
		if cfg, err = config.ParseFile(configPath); err != nil {
			fmt.Fprintf(stderr, "Error loading configuration: %v\n", err)
			return 1
		}
	} else {
		cfg = &config.Config{}
	}
	var cleanup func()
	if dev {
		if cleanup, err = devDefaults(cfg, devListen, devPluginDir, devDataDir); err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return 1
		}
		defer cleanup()
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "Error in configuration: %v\n", err)
		return 1
	}
	if cfg.Storage == nil {
		fmt.Fprintln(stderr, "Error: the configuration needs a storage stanza, e.g. storage \"raft\" { path = \"/var/lib/ward\" }")
		return 1
	}
	if len(cfg.Listeners) == 0 {
		fmt.Fprintln(stderr, "Error: the configuration needs at least one listener \"tcp\" stanza")
		return 1
	}

	setGCPercent()
	hardenProcess()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runServer(ctx, cfg, dev, devRootToken); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// hardenProcess makes the server non-dumpable: no core dumps of its
// memory (which holds the barrier keys), and processes of the same user
// (plugins included) can no longer read /proc/<pid>/environ or mem, nor
// ptrace it.
func hardenProcess() {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(stderr, "Warning: could not make the process non-dumpable: %v\n", err)
	}
}

// setGCPercent trades memory for CPU unless the operator set GOGC: the
// server's live heap is small (tens of MiB), and on 2 cores the default
// pacing spent a measurable share of CPU in GC (about 4% more KV reads/s
// at GOGC=400).
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// devDefaults fills a dev server's configuration.
func devDefaults(cfg *config.Config, listen, pluginDir, dataDir string) (func(), error) {
	cleanup := func() {}
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "ward-dev-")
		if err != nil {
			return nil, err
		}
		dataDir = dir
		cleanup = func() { os.RemoveAll(dir) }
		// The data goes at exit, but compiled WASM plugins may stay:
		// the next dev server then starts in a fraction of the time.
		if base, err := os.UserCacheDir(); err == nil && cfg.WasmCacheDir == "" {
			cfg.WasmCacheDir = filepath.Join(base, "ward", "wasm-dev-cache")
		}
	}
	cfg.Storage = &config.Storage{Type: "raft", Path: dataDir}
	cfg.Listeners = []config.Listener{{Address: listen, TLSDisable: true}}
	if pluginDir != "" {
		cfg.PluginDirectory = pluginDir
	}
	// A dev server may create audit devices through the API (the issue
	// that makes this unsafe needs an attacker with a sudo token; on a dev
	// server the root token is printed anyway).
	cfg.UnsafeAllowAPIAuditCreation = true
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	return cleanup, nil
}

func newLogger(cfg *config.Config, out io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(cfg.LogLevel) {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// server is a running Ward server: storage, core and listeners.
type server struct {
	cfg     *config.Config
	logger  *slog.Logger
	store   *openedStorage
	core    *kernel.Core
	seals   []seal.Access // the HSM seals, closed after the core
	servers []*http.Server
	addrs   []string
	errc    chan error
	// stopUnseal stops the auto-unseal retries; unsealDone is closed when
	// they have stopped.
	stopUnseal context.CancelFunc
	unsealDone chan struct{}
}

// hsmPINEnv are the environment variables a pkcs11 seal stanza without a
// pin reads it from, in order.
var hsmPINEnv = []string{"WARD_HSM_PIN", "VAULT_HSM_PIN", "BAO_HSM_PIN"}

// newSealAccess builds the Access of a seal stanza; nil for Shamir.
func newSealAccess(sc *config.Seal) (seal.Access, error) {
	if sc == nil || sc.PKCS11 == nil {
		return nil, nil
	}
	p := sc.PKCS11
	pin := p.PIN
	for _, env := range hsmPINEnv {
		if pin != "" {
			break
		}
		pin = os.Getenv(env)
	}
	return seal.NewPKCS11(seal.PKCS11Config{Lib: p.Lib, Slot: p.Slot, TokenLabel: p.TokenLabel, PIN: pin,
		KeyLabel: p.KeyLabel, Mechanism: p.Mechanism, RSAOAEPHash: p.RSAOAEPHash, RSABits: p.RSABits,
		GenerateKey: p.GenerateKey, MaxSessions: p.MaxSessions})
}

// wasmCacheDir is where compiled WASM plugins are kept: by default with
// the data they serve, so a restart skips compilation (Pebble ignores
// files it does not own).
func wasmCacheDir(cfg *config.Config) string {
	if cfg.WasmCacheDir != "" {
		return cfg.WasmCacheDir
	}
	return filepath.Join(cfg.Storage.Path, "wasm-cache")
}

// newServer opens storage, builds the core and starts the listeners. Logs
// (and plugin stderr) go to logOut.
func newServer(cfg *config.Config, logOut io.Writer) (*server, error) {
	logger := newLogger(cfg, logOut)
	for _, k := range cfg.Ignored {
		logger.Warn("configuration key has no effect in Ward", "key", k)
	}
	builtinEntries, err := builtinCatalog()
	if err != nil {
		return nil, err
	}
	active, err := newSealAccess(cfg.ActiveSeal())
	if err != nil {
		return nil, err
	}
	old, err := newSealAccess(cfg.SealMigrateFrom())
	if err != nil {
		return nil, err
	}
	var seals []seal.Access
	for _, a := range []seal.Access{active, old} {
		if a != nil {
			seals = append(seals, a)
		}
	}
	closeSeals := func() {
		for _, a := range seals {
			a.Close()
		}
	}
	store, err := openStorage(cfg, logger)
	if err != nil {
		closeSeals()
		return nil, fmt.Errorf("open storage: %w", err)
	}
	core, err := kernel.New(kernel.Config{
		Storage: store, Logger: logger, ClusterName: cfg.ClusterName, Version: cfg.ReportedVersion,
		DefaultLeaseTTL: cfg.DefaultLeaseTTL, MaxLeaseTTL: cfg.MaxLeaseTTL,
		BuiltinPlugins: builtinEntries, PluginDirectory: cfg.PluginDirectory,
		// Compiled WASM plugins live with the data they serve, so a restart
		// skips compilation. Pebble ignores files it does not own.
		WasmCacheDir:   wasmCacheDir(cfg),
		PluginLogLevel: cfg.LogLevel, PluginLogJSON: cfg.LogFormat == "json", PluginLogOut: logOut,
		AuditDevices: cfg.Audits, AllowAPIAuditCreation: cfg.UnsafeAllowAPIAuditCreation,
		Seal: active, MigrateFrom: old,
		Cluster: kernelCluster(store.node),
	})
	if err != nil {
		store.Close()
		closeSeals()
		return nil, err
	}
	s := &server{cfg: cfg, logger: logger, store: store, core: core, seals: seals, errc: make(chan error, len(cfg.Listeners))}
	for _, l := range cfg.Listeners {
		if err := s.listen(l); err != nil {
			s.close()
			return nil, err
		}
	}
	if store.node != nil && cfg.APIAddr == "" && len(s.addrs) > 0 {
		store.node.SetAPIAddr(s.addrs[0])
	}
	s.startAutoUnseal()
	return s, nil
}

// kernelCluster keeps a nil *cluster.Node from becoming a non-nil
// kernel.Cluster.
func kernelCluster(c *cluster.Node) kernel.Cluster {
	if c == nil {
		return nil
	}
	return c
}

// startAutoUnseal unseals with the HSM seal, if there is one, with no
// operator action. If the HSM fails (wrong PIN, missing key, unreachable),
// the server stays sealed, says why, and tries again with backoff until
// it succeeds or the server stops; nothing in storage changes meanwhile.
// After an explicit sys/seal it does not unseal again (restart, or unseal
// with the recovery keys).
func (s *server) startAutoUnseal() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopUnseal, s.unsealDone = cancel, make(chan struct{})
	if s.core.SealType() == seal.TypeShamir && s.cfg.SealMigrateFrom() == nil {
		close(s.unsealDone)
		return
	}
	try := func() (done bool) {
		ok, err := s.core.Initialized(ctx)
		if err == nil && !ok {
			s.logger.Info("server is not initialized: run `ward operator init` (recovery keys are returned)", "seal", s.core.SealType())
			return true
		}
		if pending, err := s.core.MigrationPending(ctx); err == nil && pending {
			st, _ := s.core.SealStatus(ctx)
			kind := "unseal"
			if st != nil && st.RecoverySeal {
				kind = "recovery"
			}
			s.logger.Warn("seal migration pending: run `ward operator unseal -migrate` with the " + kind + " keys of the current seal")
			return true
		}
		if s.core.SealType() == seal.TypeShamir {
			s.logger.Info("server is sealed: run `ward operator unseal`")
			return true
		}
		if err == nil {
			err = s.core.AutoUnseal(ctx)
		}
		if err == nil {
			s.logger.Info("server unsealed by the seal", "seal", s.core.SealType())
			return true
		}
		if ctx.Err() != nil {
			return true
		}
		s.logger.Error("auto-unseal failed; the server stays sealed", "seal", s.core.SealType(), "error", err)
		return false
	}
	if try() {
		close(s.unsealDone)
		return
	}
	go func() {
		defer close(s.unsealDone)
		delay := 5 * time.Second
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if !s.core.Sealed() || try() {
				return
			}
			delay = min(2*delay, 5*time.Minute)
		}
	}()
}

func (s *server) listen(l config.Listener) error {
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", l.Address, err)
	}
	srv := &http.Server{
		Handler: httpapi.New(s.core, httpapi.Options{Logger: s.logger, MaxRequestSize: l.MaxRequestSize,
			UnauthenticatedMetrics: l.UnauthenticatedMetricsAccess, StorageType: s.cfg.Storage.Type}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // Vault's http_read_timeout default
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if !l.TLSDisable {
		cert, err := tls.LoadX509KeyPair(l.TLSCertFile, l.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listener %s: %w", l.Address, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	s.servers = append(s.servers, srv)
	s.addrs = append(s.addrs, scheme+"://"+ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
	s.logger.Info("listening", "address", ln.Addr().String(), "tls", !l.TLSDisable)
	return nil
}

// close stops the listeners, seals the core and closes storage.
func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.stopUnseal != nil {
		s.stopUnseal()
		<-s.unsealDone
	}
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
	_ = s.core.Shutdown(ctx)
	s.store.Close()
	for _, a := range s.seals {
		a.Close()
	}
}

// runServer serves until ctx is done.
func runServer(ctx context.Context, cfg *config.Config, dev bool, devRootToken string) error {
	s, err := newServer(cfg, stderr)
	if err != nil {
		return err
	}
	defer s.close()
	if dev {
		res, err := devSetup(ctx, s.core, devRootToken, cfg.PluginDirectory)
		if err != nil {
			return err
		}
		printDevBanner(s.addrs[0], res.Keys[0], res.RootToken)
	} else if ok, err := s.core.Initialized(ctx); err == nil && !ok && s.core.SealType() == seal.TypeShamir {
		s.logger.Info("server is not initialized: run `ward operator init`")
	} else if s.core.Sealed() && s.core.SealType() == seal.TypeShamir && s.cfg.SealMigrateFrom() == nil {
		s.logger.Info("server is sealed: run `ward operator unseal`")
	}
	// SIGHUP reopens the audit files, after logrotate renamed them.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			s.logger.Info("shutting down")
			return nil
		case err := <-s.errc:
			return err
		case <-hup:
			if err := s.core.ReopenAudit(); err != nil {
				s.logger.Error("reopening the audit devices", "error", err)
			} else {
				s.logger.Info("audit devices reopened")
			}
		}
	}
}

// devSetup initializes and unseals a dev server and mounts kv-v2 at secret/.
func devSetup(ctx context.Context, core *kernel.Core, rootTokenID, pluginDir string) (*kernel.InitResult, error) {
	res, err := core.Initialize(ctx, kernel.InitParams{SecretShares: 1, SecretThreshold: 1, RootTokenID: rootTokenID})
	if err != nil {
		return nil, fmt.Errorf("dev init: %w", err)
	}
	if _, err := core.Unseal(ctx, res.Keys[0]); err != nil {
		return nil, fmt.Errorf("dev unseal: %w", err)
	}
	_, err = core.HandleRequest(ctx, &kernel.Request{
		Request: &logical.Request{Operation: logical.UpdateOperation, Path: "sys/mounts/secret",
			Data: map[string]any{"type": "kv", "options": map[string]any{"version": "2"},
				"description": "key/value secret storage"}},
		ClientToken: res.RootToken,
	})
	if err != nil {
		return nil, fmt.Errorf("dev mount secret/: %w", err)
	}
	if pluginDir != "" {
		if err := devRegisterWasm(ctx, core, res.RootToken, pluginDir); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// devRegisterWasm registers every WASM module of a dev server's plugin
// directory under its file name ("transit.wasm" is "transit"), as Vault's
// -dev-plugin-dir does for binaries. A module named like a builtin takes
// its place. The digest-named copies registration stores are skipped.
func devRegisterWasm(ctx context.Context, core *kernel.Core, rootToken, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil {
		return err
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".wasm")
		if len(name) == 64 && strings.Trim(name, "0123456789abcdef") == "" {
			continue
		}
		bin, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		info, err := core.DescribeWasm(ctx, bin)
		if err != nil {
			return fmt.Errorf("dev plugin %s: %w", f, err)
		}
		sum := sha256.Sum256(bin)
		_, err = core.HandleRequest(ctx, &kernel.Request{
			Request: &logical.Request{Operation: logical.UpdateOperation,
				Path: "sys/plugins/catalog/" + string(info.Type) + "/" + name,
				Data: map[string]any{"sha256": hex.EncodeToString(sum[:]), "wasm_module": base64.StdEncoding.EncodeToString(bin)}},
			ClientToken: rootToken,
		})
		if err != nil {
			return fmt.Errorf("dev plugin %s: %w", f, err)
		}
	}
	return nil
}

func printDevBanner(addr string, key []byte, root string) {
	fmt.Fprintf(stdout, `WARNING! dev mode is enabled! In this mode, Ward runs from a temporary
directory, is already initialized and unsealed, and the root token is shown
below. Never run a dev server in production.

You may need to set the following environment variables:

    $ export VAULT_ADDR='%s'

The unseal key and root token are displayed below in case you want to
seal/unseal the server or re-authenticate.

Unseal Key: %s
Root Token: %s

`, addr, base64.StdEncoding.EncodeToString(key), root)
}
