package kernel

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/google/uuid"

	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// system is the kernel's own sys/ backend (the parts that need an unsealed
// server; init, unseal, seal-status and health live in the HTTP layer).
type system struct {
	core  *Core
	u     *unsealedState
	joins joinChallenges // join.go
}

func (c *Core) systemBackend(u *unsealedState) logical.Backend {
	s := &system{core: c, u: u}
	b := &framework.Backend{
		Help: "The system backend: mounts, plugins, policies and seal control.",
		PathsSpecial: &logical.Paths{
			Root: []string{"auth/*", "plugins/catalog/*", "plugins/reload/*", "seal", "audit", "audit/*", "audit-hash/*", "leases/revoke-prefix/*", "leases/revoke-force/*", "revoke-prefix/*", "revoke-force/*", // as in Vault
				"rotate", "rotate/*", "rekey/*", "rekey-recovery-key/*", "step-down", "storage/raft/remove-peer"},
			// Root generation is authorized by the key shares, as in Vault.
			Unauthenticated: []string{"generate-root/*", "generate-root-token/*",
				"storage/raft/bootstrap/*", // a joining node has no token: it proves it holds the keys
				"wrapping/lookup"},         // the wrapping token is its own credential (Vault)
		},
		Paths: []*framework.Path{
			{
				Pattern:      "plugins/catalog/?",
				Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.listCatalog},
				HelpSynopsis: "List the plugin catalog.",
			},
			{
				Pattern: "plugins/catalog/(?P<type>auth|secret)/?",
				Fields:  map[string]*framework.FieldSchema{"type": {Type: framework.TypeString}},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ListOperation: s.listCatalogType,
				},
				HelpSynopsis: "List the plugins of one type.",
			},
			{
				Pattern: "plugins/catalog/(?P<type>auth|secret)/(?P<name>.+)",
				Fields: map[string]*framework.FieldSchema{
					"type":        {Type: framework.TypeString},
					"name":        {Type: framework.TypeString},
					"sha256":      {Type: framework.TypeString, Description: "SHA-256 of the plugin binary, hex."},
					"command":     {Type: framework.TypeString, Description: "Executable, relative to plugin_directory."},
					"args":        {Type: framework.TypeStringSlice},
					"env":         {Type: framework.TypeStringSlice, Description: "KEY=VALUE entries; the plugin sees no other environment."},
					"version":     {Type: framework.TypeString},
					"wasm_module": {Type: framework.TypeString, Description: "A WASM plugin: the module, base64. It is checked, compiled and stored in plugin_directory under its digest; command, args and env must be empty."},
				},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   s.readPlugin,
					logical.UpdateOperation: s.registerPlugin,
					logical.DeleteOperation: s.deregisterPlugin,
				},
				HelpSynopsis: "Register, read or deregister a plugin.",
			},
			{
				Pattern: "plugins/reload/backend",
				Fields: map[string]*framework.FieldSchema{
					"plugin": {Type: framework.TypeString},
					"mounts": {Type: framework.TypeCommaStringSlice},
					"scope":  {Type: framework.TypeString},
				},
				Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.reload},
				HelpSynopsis: "Restart the processes of a plugin or of the plugins behind some mounts.",
			},
			{
				Pattern:      "internal/ui/mounts/(?P<path>.+)",
				Fields:       map[string]*framework.FieldSchema{"path": {Type: framework.TypeString}},
				Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.uiMount},
				HelpSynopsis: "Describe the mount serving a path (clients probe it for the KV version).",
			},
			{
				Pattern:      "internal/ui/mounts/?",
				Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.uiMounts},
				HelpSynopsis: "List the mounts visible to the token.",
			},
			{
				Pattern:      "seal",
				Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.seal},
				HelpSynopsis: "Seal the server.",
			},
		},
	}
	b.Paths = append(b.Paths, s.policyPaths()...)
	b.Paths = append(b.Paths, s.auditPaths()...)
	b.Paths = append(b.Paths, s.leasePaths()...)
	b.Paths = append(b.Paths, s.wrappingPaths()...)
	b.Paths = append(b.Paths, s.keyPaths()...)
	b.Paths = append(b.Paths, s.clusterPaths()...)
	b.Paths = append(b.Paths, s.joinPaths()...)
	b.Paths = append(b.Paths, s.mountPaths(s.u.secrets, "mounts")...)
	b.Paths = append(b.Paths, s.mountPaths(s.u.auths, "auth")...)
	return b
}

func pluginView(e plugin.Entry) map[string]any {
	args := e.Args
	if args == nil {
		args = []string{}
	}
	return map[string]any{
		"name": e.Name, "type": e.Type, "version": e.Version, "builtin": e.Builtin,
		"command": e.Command, "args": args, "sha256": e.SHA256, "deprecation_status": "supported",
		"runtime": runtimeName(e),
	}
}

// runtimeName is how an entry runs: "process" (go-plugin) or "wasm".
func runtimeName(e plugin.Entry) string {
	if e.Runtime == plugin.RuntimeWasm {
		return plugin.RuntimeWasm
	}
	return "process"
}

func (s *system) listCatalog(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	entries, err := s.u.catalog.List(ctx, "")
	if err != nil {
		return nil, err
	}
	data := map[string]any{"auth": []string{}, "secret": []string{}, "database": []string{}}
	detailed := []map[string]any{}
	for _, e := range entries {
		if names := data[e.Type].([]string); len(names) == 0 || names[len(names)-1] != e.Name {
			data[e.Type] = append(names, e.Name) // sorted: versions of a name are adjacent
		}
		v := pluginView(e)
		delete(v, "args")
		delete(v, "command")
		detailed = append(detailed, v)
	}
	data["detailed"] = detailed
	return &logical.Response{Data: data}, nil
}

func (s *system) listCatalogType(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	entries, err := s.u.catalog.List(ctx, d.Get("type").(string))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name)
	}
	return logical.ListResponse(names), nil
}

func (s *system) readPlugin(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	e, err := s.u.catalog.GetVersion(ctx, d.Get("type").(string), d.Get("name").(string), d.Get("version").(string))
	if errors.Is(err, plugin.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: pluginView(*e)}, nil
}

func (s *system) registerPlugin(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	e := plugin.Entry{
		Name: d.Get("name").(string), Type: d.Get("type").(string), Version: d.Get("version").(string),
		Command: d.Get("command").(string), Args: d.Get("args").([]string), Env: d.Get("env").([]string),
		SHA256: d.Get("sha256").(string),
	}
	if mod := d.Get("wasm_module").(string); mod != "" {
		if e.Command != "" || len(e.Args) > 0 || len(e.Env) > 0 {
			return nil, logical.InvalidRequest("a WASM plugin takes no command, args or env")
		}
		bin, err := base64.StdEncoding.DecodeString(mod)
		if err != nil {
			return nil, logical.InvalidRequest("wasm_module must be base64")
		}
		if err := s.core.registerWasm(ctx, s.u, &e, bin); err != nil {
			return nil, err
		}
	}
	if err := s.u.catalog.Set(ctx, e); err != nil {
		return nil, err
	}
	s.core.logger.Info("plugin registered", "type", e.Type, "name", e.Name, "sha256", e.SHA256, "runtime", runtimeName(e))
	return nil, nil
}

// registerWasm checks a module offered for the catalog (digest, ABI,
// imports, plugin type), stores it in the plugin directory and points e
// at it. Nothing is stored when a check fails.
func (c *Core) registerWasm(ctx context.Context, u *unsealedState, e *plugin.Entry, bin []byte) error {
	if u.catalog.Directory() == "" {
		return &logical.Error{Code: logical.CodeInvalidRequest, Message: plugin.ErrNoPluginDirectory.Error()}
	}
	sha := strings.ToLower(e.SHA256)
	if _, err := u.runner.CheckWasm(ctx, e.Type, sha, bin); err != nil {
		return err
	}
	cmd, err := u.catalog.StoreWasm(sha, bin)
	if err != nil {
		return err
	}
	e.Command, e.SHA256, e.Runtime = cmd, sha, plugin.RuntimeWasm
	return nil
}

func (s *system) deregisterPlugin(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	typ, name, version := d.Get("type").(string), d.Get("name").(string), d.Get("version").(string)
	for _, k := range []*mountKind{s.u.secrets, s.u.auths} {
		for _, m := range k.table.Entries() {
			if !m.Builtin && m.Type == name && typ == string(k.pluginType) && m.PluginVersion == version {
				return nil, logical.InvalidRequest("plugin %q is in use by the mount %s", name, k.route(m))
			}
		}
	}
	return nil, s.u.catalog.Delete(ctx, typ, name, version)
}

func (s *system) reload(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	name := d.Get("plugin").(string)
	mounts := d.Get("mounts").([]string)
	if (name == "") == (len(mounts) == 0) {
		return nil, logical.InvalidRequest("exactly one of plugin or mounts must be set")
	}
	if d.Get("scope").(string) != "" && d.Get("scope").(string) != "local" {
		return nil, logical.InvalidRequest("scope must be empty or \"local\"")
	}
	type plug struct{ typ, name string }
	plugs := map[plug]bool{}
	if name != "" {
		// A name alone reloads the plugin of that name of either type.
		plugs[plug{string(logical.TypeSecret), name}] = true
		plugs[plug{string(logical.TypeAuth), name}] = true
	}
	for _, m := range mounts {
		p, err := mount.NormalizePath(m)
		if err != nil {
			return nil, err
		}
		k, e := s.u.findMount(p)
		if e == nil || e.Builtin {
			return nil, logical.InvalidRequest("no plugin mount at %q", p)
		}
		plugs[plug{string(k.pluginType), e.Type}] = true
	}
	for pl := range plugs {
		if err := s.u.runner.Reload(ctx, pl.typ, pl.name); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: map[string]any{"reload_id": uuid.NewString()}}, nil
}

func (s *system) uiMount(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	p := strings.TrimPrefix(d.Get("path").(string), "/")
	route, _ := s.u.router.Match(p)
	if route == nil {
		// As in Vault: a denial, so the endpoint cannot enumerate mounts.
		return nil, logical.ErrPermissionDenied
	}
	_, e := s.u.findMount(route.Prefix)
	if e == nil || !s.visible(ctx, route.Prefix) {
		return nil, logical.ErrPermissionDenied
	}
	v := mountView(e)
	v["path"] = route.Prefix
	return &logical.Response{Data: v}, nil
}

func (s *system) uiMounts(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	visibleIn := func(k *mountKind) map[string]any {
		out := map[string]any{}
		for _, e := range k.table.Entries() {
			if s.visible(ctx, k.route(e)) {
				out[e.Path] = mountView(e)
			}
		}
		return out
	}
	return &logical.Response{Data: map[string]any{"secret": visibleIn(s.u.secrets), "auth": visibleIn(s.u.auths)}}, nil
}

// visible reports whether the calling token may learn about a mount: it
// must hold some capability at or below the mount's path, as in Vault.
func (s *system) visible(ctx context.Context, mountPath string) bool {
	te, ok := token.FromContext(ctx)
	if !ok {
		return false
	}
	acl, err := s.u.policies.acl(ctx, te.Policies)
	return err == nil && acl.HasAccessUnder(mountPath)
}

func (s *system) seal(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	te, ok := token.FromContext(ctx)
	if !ok || !te.IsRoot() {
		return nil, logical.ErrPermissionDenied
	}
	// Requests never hold the core's locks while a handler runs, so sealing
	// from inside one is safe; in-flight requests elsewhere fail with 503.
	return nil, s.core.Seal(ctx)
}
