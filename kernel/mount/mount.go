// Package mount owns the table of secret-engine mounts: where each engine
// is mounted, its UUID (which names its private storage view), its options
// and tunables. The table is one barrier-encrypted document, so every change
// is atomic. It never talks to plugins; the kernel does that.
package mount

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/logical"
)

// Config holds a mount's tunables, in seconds as in Vault's API.
type Config struct {
	DefaultLeaseTTL int `json:"default_lease_ttl"`
	MaxLeaseTTL     int `json:"max_lease_ttl"`
	// LoginCondition (auth mounts only) is a CEL condition every
	// unauthenticated request to the mount must satisfy; see
	// docs/policies.md.
	LoginCondition string `json:"login_condition,omitempty"`
	// Wasm bounds a mount served by a WASM plugin; nil takes the
	// sandbox's defaults (and grants no outbound HTTP).
	Wasm *WasmConfig `json:"wasm,omitempty"`
}

// WasmConfig is a WASM mount's sandbox settings. Zero fields take the
// sandbox's defaults.
type WasmConfig struct {
	MemoryMB        int      `json:"memory_mb,omitempty"`
	TimeoutSeconds  int      `json:"timeout_seconds,omitempty"`
	PoolSize        int      `json:"pool_size,omitempty"`
	AllowedHosts    []string `json:"allowed_hosts,omitempty"`
	AllowPlainHTTP  bool     `json:"allow_plain_http,omitempty"`
	PrivateNetworks []string `json:"private_networks,omitempty"`
}

// Entry is one mount.
type Entry struct {
	Path          string            `json:"path"` // with trailing slash
	Type          string            `json:"type"` // plugin name ("kv")
	Description   string            `json:"description"`
	UUID          string            `json:"uuid"`
	Accessor      string            `json:"accessor"`
	Options       map[string]string `json:"options"`
	Config        Config            `json:"config"`
	Local         bool              `json:"local"`
	SealWrap      bool              `json:"seal_wrap"`
	PluginVersion string            `json:"plugin_version"`
	// Builtin mounts (sys/) are the kernel's own and cannot be disabled.
	Builtin bool `json:"-"`
}

// StoragePrefix is the barrier prefix of the mount's private storage view.
func (e *Entry) StoragePrefix() string { return "logical/" + e.UUID + "/" }

// SecretReserved are the prefixes no secret engine may be mounted at or
// under. Auth methods live in their own table, routed under auth/, which
// reserves nothing but its built-in token/ entry.
var SecretReserved = []string{"sys/", "auth/", "cubbyhole/", "identity/"}

// NormalizePath cleans a user-supplied mount path and checks it.
func NormalizePath(p string) (string, error) {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return "", logical.InvalidRequest("mount path is empty")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", logical.InvalidRequest("invalid mount path %q", p)
		}
	}
	if strings.ContainsAny(p, "*+ \t\n") {
		return "", logical.InvalidRequest("mount path %q contains invalid characters", p)
	}
	return p + "/", nil
}

// NewEntry fills identity fields (UUID, accessor) of a new mount.
func NewEntry(path, typ string) *Entry {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Entry{Path: path, Type: typ, UUID: uuid.NewString(), Accessor: typ + "_" + hex.EncodeToString(b[:])}
}

// Table is the mount table.
type Table struct {
	storage  logical.Storage
	key      string
	reserved []string

	mu         sync.RWMutex // protects entries and byAccessor; held while persisting changes
	entries    map[string]*Entry
	byAccessor map[string]*Entry
}

// Load reads the table stored at key in storage (empty if absent). No new
// mount may use a path under one of the reserved prefixes.
func Load(ctx context.Context, storage logical.Storage, key string, reserved []string) (*Table, error) {
	t := &Table{storage: storage, key: key, reserved: reserved}
	se, err := storage.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("load mount table: %w", err)
	}
	entries := map[string]*Entry{}
	if se != nil {
		var list []*Entry
		if err := json.Unmarshal(se.Value, &list); err != nil {
			return nil, fmt.Errorf("decode mount table: %w", err)
		}
		for _, e := range list {
			entries[e.Path] = e
		}
	}
	t.setEntriesLocked(entries)
	return t, nil
}

func (t *Table) persistLocked(ctx context.Context, entries map[string]*Entry) error {
	list := make([]*Entry, 0, len(entries))
	for _, e := range entries {
		if !e.Builtin {
			list = append(list, e)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return t.storage.Put(ctx, &logical.StorageEntry{Key: t.key, Value: b})
}

// AddBuiltin adds a kernel mount that is never persisted.
func (t *Table) AddBuiltin(e *Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.Builtin = true
	next := t.copyLocked()
	next[e.Path] = e
	t.setEntriesLocked(next)
}

// CheckPath reports whether a new mount may use path.
func (t *Table) CheckPath(path string) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.checkPathLocked(path)
}

func (t *Table) checkPathLocked(path string) error {
	for _, r := range t.reserved {
		if strings.HasPrefix(path, r) {
			return logical.InvalidRequest("cannot mount at %q: %q is reserved", path, r)
		}
	}
	for p := range t.entries {
		if strings.HasPrefix(path, p) || strings.HasPrefix(p, path) {
			return logical.InvalidRequest("path is already in use at %s", p)
		}
	}
	return nil
}

// Add persists a new mount.
func (t *Table) Add(ctx context.Context, e *Entry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Checked under the write lock: two concurrent adds cannot both pass.
	if err := t.checkPathLocked(e.Path); err != nil {
		return err
	}
	next := t.copyLocked()
	next[e.Path] = e
	if err := t.persistLocked(ctx, next); err != nil {
		return err
	}
	t.setEntriesLocked(next)
	return nil
}

// Remove deletes a mount from the table and returns it.
func (t *Table) Remove(ctx context.Context, path string) (*Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[path]
	if e == nil {
		return nil, nil
	}
	if e.Builtin {
		return nil, logical.InvalidRequest("cannot unmount %q", path)
	}
	next := t.copyLocked()
	delete(next, path)
	if err := t.persistLocked(ctx, next); err != nil {
		return nil, err
	}
	t.setEntriesLocked(next)
	return e, nil
}

// Update applies fn to a copy of the mount and persists the result.
func (t *Table) Update(ctx context.Context, path string, fn func(*Entry) error) (*Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.entries[path]
	if cur == nil {
		return nil, logical.InvalidRequest("no mount at %q", path)
	}
	updated := cur.clone()
	if err := fn(updated); err != nil {
		return nil, err
	}
	next := t.copyLocked()
	next[path] = updated
	if err := t.persistLocked(ctx, next); err != nil {
		return nil, err
	}
	t.setEntriesLocked(next)
	return updated, nil
}

// ByAccessor returns the mount with this accessor, or nil.
func (t *Table) ByAccessor(accessor string) *Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byAccessor[accessor]
}

// setEntriesLocked installs a new entry map and its accessor index.
func (t *Table) setEntriesLocked(entries map[string]*Entry) {
	t.entries = entries
	t.byAccessor = make(map[string]*Entry, len(entries))
	for _, e := range entries {
		t.byAccessor[e.Accessor] = e
	}
}

// Get returns the mount at exactly path (with trailing slash), or nil.
func (t *Table) Get(path string) *Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.entries[path]
}

// Entries returns every mount sorted by path.
func (t *Table) Entries() []*Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (t *Table) copyLocked() map[string]*Entry {
	next := make(map[string]*Entry, len(t.entries)+1)
	for k, v := range t.entries {
		next[k] = v
	}
	return next
}

func (e *Entry) clone() *Entry {
	c := *e
	if e.Options != nil {
		c.Options = make(map[string]string, len(e.Options))
		for k, v := range e.Options {
			c.Options[k] = v
		}
	}
	if e.Config.Wasm != nil {
		w := *e.Config.Wasm
		w.AllowedHosts = append([]string(nil), w.AllowedHosts...)
		w.PrivateNetworks = append([]string(nil), w.PrivateNetworks...)
		c.Config.Wasm = &w
	}
	return &c
}
