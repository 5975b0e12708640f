package wasm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// Memory classes, in 64 KiB WebAssembly pages.
const (
	// DefaultMemoryPages (64 MiB) fits a Go guest with room to spare.
	DefaultMemoryPages = 1024
	// MaxMemoryPages (256 MiB) is the ceiling a mount may ask for.
	MaxMemoryPages = 4096
	// minMemoryPages (16 MiB) is below what a Go guest needs to start.
	minMemoryPages = 64
)

// Limits bound what one mount's instances may use. Zero fields take the
// defaults in parentheses.
type Limits struct {
	// MemoryPages caps each instance's linear memory (1024 = 64 MiB; at
	// most MaxMemoryPages). Mounts with the same cap share a runtime.
	MemoryPages uint32
	// CallTimeout bounds one request from arrival to answer, waiting for a
	// free instance included (5s). A call still running then is stopped
	// and its instance discarded.
	CallTimeout time.Duration
	// SetupTimeout bounds creating an instance and setting it up (30s).
	SetupTimeout time.Duration
	// PoolSize is the most instances serving the mount at once
	// (GOMAXPROCS, at least 2, at most 32: a Go guest is CPU-bound between
	// storage calls, and more instances than cores only thrash caches).
	// Callers beyond it queue in arrival order.
	PoolSize int
	// MaxMessageBytes bounds every message crossing the boundary: request,
	// response, storage values and results, HTTP bodies (4 MiB).
	MaxMessageBytes int
	// MaxHostCalls bounds the host calls of one request (10,000).
	MaxHostCalls int
	// MaxLogBytes bounds what one call may log, stdout and stderr
	// included (64 KiB); the rest is dropped with a note.
	MaxLogBytes int
	// ConcurrentWrites lets write requests (create, update, patch, delete,
	// renew, revoke) run on several instances at once. Off by default: a
	// plugin's in-process locks (KV's per-key locks) only serialise
	// requests inside one instance, so the pool runs one write at a time
	// per mount. Reads always run in parallel. See docs/wasm-abi.md.
	ConcurrentWrites bool
}

func (l *Limits) withDefaults() {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = 5 * time.Second
	}
	if l.SetupTimeout == 0 {
		l.SetupTimeout = 30 * time.Second
	}
	if l.PoolSize == 0 {
		l.PoolSize = min(max(runtime.GOMAXPROCS(0), 2), 32)
	}
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = abi.DefaultMaxMessage
	}
	if l.MaxHostCalls == 0 {
		l.MaxHostCalls = 10_000
	}
	if l.MaxLogBytes == 0 {
		l.MaxLogBytes = 64 << 10
	}
}

// Validate reports a limit out of range; zero fields stand for their
// defaults and are valid.
func (l Limits) Validate() error {
	l.withDefaults()
	switch {
	case l.MemoryPages < minMemoryPages || l.MemoryPages > MaxMemoryPages:
		return fmt.Errorf("wasm: memory limit of %d pages is outside [%d, %d] (64 KiB pages)", l.MemoryPages, minMemoryPages, MaxMemoryPages)
	case l.CallTimeout < 0 || l.SetupTimeout < 0:
		return errors.New("wasm: timeouts must be positive")
	case l.PoolSize < 1 || l.PoolSize > 1024:
		return fmt.Errorf("wasm: pool size %d is outside [1, 1024]", l.PoolSize)
	case l.MaxMessageBytes < 1<<10 || l.MaxMessageBytes > 64<<20:
		return fmt.Errorf("wasm: message limit %d is outside [1 KiB, 64 MiB]", l.MaxMessageBytes)
	case l.MaxHostCalls < 1 || l.MaxLogBytes < 0:
		return errors.New("wasm: host call and log limits must be positive")
	}
	return nil
}

// HTTPGrant lets a mount's module make outbound HTTP requests. The zero
// value grants nothing.
type HTTPGrant struct {
	// Hosts the module may reach: "api.example.com" (port 443, or 80 with
	// AllowPlainHTTP), "api.example.com:8443", or "*.example.com" (any
	// subdomain, not the domain itself). Redirects are checked against the
	// same list at every hop.
	Hosts []string
	// AllowPlainHTTP permits http:// URLs (https only by default).
	AllowPlainHTTP bool
	// PrivateNetworks lists the non-public address ranges the module may
	// connect to. Loopback, private, link-local, unique-local, CGNAT,
	// multicast and unspecified addresses are refused after DNS
	// resolution unless inside one of these.
	PrivateNetworks []netip.Prefix
	// Timeout bounds one HTTP exchange, within the call's own deadline (10s).
	Timeout time.Duration
}

// MountConfig describes one mount served by a module.
type MountConfig struct {
	// ID is the mount's UUID; Path its route ("secret/"); PluginName the
	// catalog name, given to the module as the mount type; Config the mount
	// options (for KV, "version").
	ID         string
	Path       string
	PluginName string
	Config     map[string]string
	// Storage is the mount's view (the barrier view in the kernel).
	// Required. Batches are atomic only if it implements
	// logical.BatchStorage.
	Storage logical.Storage
	Limits  Limits
	HTTP    HTTPGrant
	// Logger receives the module's log lines; default: the engine's,
	// tagged with the mount path.
	Logger *slog.Logger
}

func (c *MountConfig) validate() error {
	if c.Storage == nil {
		return errors.New("wasm: MountConfig.Storage is required")
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	c.Limits.withDefaults()
	if c.HTTP.Timeout == 0 {
		c.HTTP.Timeout = 10 * time.Second
	}
	return c.HTTP.Validate()
}

// Validate checks the grant's host patterns.
func (g HTTPGrant) Validate() error {
	for _, h := range g.Hosts {
		host := h
		if hh, port, err := net.SplitHostPort(h); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("wasm: HTTP grant %q has an invalid port", h)
			}
			host = hh
		}
		host = strings.TrimPrefix(host, "*.")
		if host == "" || strings.ContainsAny(host, "/:@*?# ") {
			return fmt.Errorf("wasm: HTTP grant %q is not a host, host:port or *.domain", h)
		}
	}
	if g.Timeout < 0 {
		return errors.New("wasm: HTTP timeout must be positive")
	}
	return nil
}
