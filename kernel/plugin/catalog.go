package plugin

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/wardproject/ward/sdk/logical"
)

// Entry is one registered plugin.
type Entry struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"` // "secret" or "auth"
	Version string   `json:"version"`
	Command string   `json:"command"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	SHA256  string   `json:"sha256"` // hex
	Builtin bool     `json:"builtin"`
	// Runtime is RuntimeWasm for a module run in the WASM sandbox (Command
	// then names the module file in the plugin directory); empty for a
	// go-plugin process.
	Runtime string `json:"runtime,omitempty"`
}

func (e *Entry) key() string { return e.Type + "/" + e.Name }

// Errors returned by the catalog.
var (
	// ErrNotFound: no plugin of that type and name is registered.
	ErrNotFound = errors.New("plugin not found in the catalog")
	// ErrBuiltin: builtin plugins cannot be changed or removed.
	ErrBuiltin = errors.New("builtin plugins cannot be deregistered")
	// ErrNoPluginDirectory: external plugins need plugin_directory in the config.
	ErrNoPluginDirectory = errors.New("plugin_directory is not set in the server configuration: external plugins cannot be registered")
)

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Catalog holds the registered plugins: builtins (in memory, shipped in the
// ward binary) and external ones (persisted in the barrier).
type Catalog struct {
	storage logical.Storage
	dir     string

	mu       sync.RWMutex // protects builtins
	builtins map[string]Entry
}

// NewCatalog returns a catalog persisted in storage. dir is the
// plugin_directory external commands must live in ("" forbids them).
func NewCatalog(storage logical.Storage, dir string, builtins []Entry) *Catalog {
	c := &Catalog{storage: storage, dir: dir, builtins: map[string]Entry{}}
	for _, b := range builtins {
		b.Builtin = true
		c.builtins[b.key()] = b
	}
	return c
}

// Directory returns the plugin directory.
func (c *Catalog) Directory() string { return c.dir }

func validType(t string) error {
	if t != string(logical.TypeSecret) && t != string(logical.TypeAuth) {
		return logical.InvalidRequest("plugin type must be \"secret\" or \"auth\", got %q", t)
	}
	return nil
}

// Get returns the unversioned entry for type and name: a registered
// entry registered without a version shadows the builtin of the same name,
// as in Vault.
func (c *Catalog) Get(ctx context.Context, typ, name string) (*Entry, error) {
	return c.GetVersion(ctx, typ, name, "")
}

// GetVersion returns the entry a mount pinned to version runs: with
// version "", the unversioned entry (registered, else builtin); otherwise
// the entry registered with that version, or the builtin when it is that
// version. Several versions of one plugin live side by side, so a mount
// can move between them (tune plugin_version).
func (c *Catalog) GetVersion(ctx context.Context, typ, name, version string) (*Entry, error) {
	if err := validType(typ); err != nil {
		return nil, err
	}
	key := typ + "/" + name
	if version != "" {
		key = versionKey(typ, name, version)
	}
	se, err := c.storage.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if se != nil {
		var e Entry
		if err := se.DecodeJSON(&e); err != nil {
			return nil, fmt.Errorf("decode catalog entry: %w", err)
		}
		return &e, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if b, ok := c.builtins[typ+"/"+name]; ok && (version == "" || b.Version == version) {
		return &b, nil
	}
	if version != "" {
		return nil, fmt.Errorf("%w: version %s", ErrNotFound, version)
	}
	return nil, ErrNotFound
}

// versionKey is where a versioned registration is stored.
func versionKey(typ, name, version string) string {
	return "versions/" + typ + "/" + name + "/" + version
}

// versionRe is semantic versioning with an optional "v", as Vault requires.
var versionRe = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// Versions lists the versions registered for a plugin (builtin's included).
func (c *Catalog) Versions(ctx context.Context, typ, name string) ([]string, error) {
	vs, err := c.storage.List(ctx, "versions/"+typ+"/"+name+"/")
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	if b, ok := c.builtins[typ+"/"+name]; ok && b.Version != "" && !slices.Contains(vs, b.Version) {
		vs = append(vs, b.Version)
	}
	c.mu.RUnlock()
	sort.Strings(vs)
	return vs, nil
}

// Set registers or replaces an external plugin.
func (c *Catalog) Set(ctx context.Context, e Entry) error {
	if err := validType(e.Type); err != nil {
		return err
	}
	if !nameRe.MatchString(e.Name) {
		return logical.InvalidRequest("invalid plugin name %q", e.Name)
	}
	sum, err := hex.DecodeString(e.SHA256)
	if err != nil || len(sum) != 32 {
		return logical.InvalidRequest("sha256 must be 64 hexadecimal characters")
	}
	e.SHA256 = strings.ToLower(e.SHA256)
	if c.dir == "" {
		return &logical.Error{Code: logical.CodeInvalidRequest, Message: ErrNoPluginDirectory.Error()}
	}
	switch e.Runtime {
	case "":
	case RuntimeWasm:
		if e.Command != wasmFile(e.SHA256) || len(e.Args) > 0 || len(e.Env) > 0 {
			return logical.InvalidRequest("a WASM plugin is its module, stored by digest: it takes no command, args or env")
		}
	default:
		return logical.InvalidRequest("unknown plugin runtime %q (\"\" for a process, %q)", e.Runtime, RuntimeWasm)
	}
	if e.Command == "" {
		e.Command = e.Name
	}
	if _, err := c.commandPath(e.Command); err != nil {
		return err
	}
	for _, kv := range e.Env {
		if !strings.Contains(kv, "=") {
			return logical.InvalidRequest("env entries must be KEY=VALUE")
		}
	}
	e.Builtin = false
	key := e.key()
	if e.Version != "" {
		if !versionRe.MatchString(e.Version) {
			return logical.InvalidRequest("version %q is not a semantic version (like 1.2.3 or v1.2.3)", e.Version)
		}
		c.mu.RLock()
		b, builtin := c.builtins[key]
		c.mu.RUnlock()
		if builtin && b.Version == e.Version {
			return logical.InvalidRequest("version %s of %s is the builtin's", e.Version, e.Name)
		}
		key = versionKey(e.Type, e.Name, e.Version)
	}
	se, err := logical.StorageEntryJSON(key, e)
	if err != nil {
		return err
	}
	return c.storage.Put(ctx, se)
}

// Delete removes an external plugin (its unversioned entry, or one
// version). Deleting a builtin is refused.
func (c *Catalog) Delete(ctx context.Context, typ, name, version string) error {
	if err := validType(typ); err != nil {
		return err
	}
	if version != "" {
		key := versionKey(typ, name, version)
		se, err := c.storage.Get(ctx, key)
		if err != nil || se == nil {
			c.mu.RLock()
			b, builtin := c.builtins[typ+"/"+name]
			c.mu.RUnlock()
			if err == nil && builtin && b.Version == version {
				return &logical.Error{Code: logical.CodeInvalidRequest, Message: ErrBuiltin.Error()}
			}
			return err
		}
		return c.storage.Delete(ctx, key)
	}
	se, err := c.storage.Get(ctx, typ+"/"+name)
	if err != nil {
		return err
	}
	if se == nil {
		c.mu.RLock()
		_, builtin := c.builtins[typ+"/"+name]
		c.mu.RUnlock()
		if builtin {
			return &logical.Error{Code: logical.CodeInvalidRequest, Message: ErrBuiltin.Error()}
		}
		return nil
	}
	return c.storage.Delete(ctx, typ+"/"+name)
}

// List returns every plugin of a type (all types when typ is ""), sorted by name.
func (c *Catalog) List(ctx context.Context, typ string) ([]Entry, error) {
	types := []string{string(logical.TypeAuth), string(logical.TypeSecret)}
	if typ != "" {
		if err := validType(typ); err != nil {
			return nil, err
		}
		types = []string{typ}
	}
	byKey := map[string]Entry{}
	c.mu.RLock()
	for k, b := range c.builtins {
		if typ == "" || b.Type == typ {
			byKey[k] = b
		}
	}
	c.mu.RUnlock()
	for _, t := range types {
		names, err := c.storage.List(ctx, t+"/")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			e, err := c.Get(ctx, t, n)
			if err != nil {
				return nil, err
			}
			byKey[e.key()] = *e
		}
		versioned, err := c.storage.List(ctx, "versions/"+t+"/")
		if err != nil {
			return nil, err
		}
		for _, n := range versioned {
			n = strings.TrimSuffix(n, "/")
			vs, err := c.storage.List(ctx, "versions/"+t+"/"+n+"/")
			if err != nil {
				return nil, err
			}
			for _, v := range vs {
				e, err := c.GetVersion(ctx, t, n, v)
				if err != nil {
					return nil, err
				}
				byKey[versionKey(t, n, v)] = *e
			}
		}
	}
	out := make([]Entry, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// commandPath resolves an external command inside the plugin directory and
// refuses anything that escapes it (including through symlinks).
func (c *Catalog) commandPath(command string) (string, error) {
	if c.dir == "" {
		return "", &logical.Error{Code: logical.CodeInvalidRequest, Message: ErrNoPluginDirectory.Error()}
	}
	if filepath.IsAbs(command) || strings.Contains(command, "..") {
		return "", logical.InvalidRequest("command must be a file name inside plugin_directory")
	}
	dir, err := filepath.EvalSymlinks(c.dir)
	if err != nil {
		return "", fmt.Errorf("plugin_directory: %w", err)
	}
	p := filepath.Join(dir, command)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		if !strings.HasPrefix(real, dir+string(os.PathSeparator)) {
			return "", logical.InvalidRequest("command resolves outside plugin_directory")
		}
		p = real
	}
	return p, nil
}

// executable returns the path to run for an entry.
func (c *Catalog) executable(e *Entry) (string, error) {
	if e.Builtin {
		return e.Command, nil
	}
	return c.commandPath(e.Command)
}
