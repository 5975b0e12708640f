package kernel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/policy"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// mountKind is one of the two mount tables: secret engines, routed at
// their path (sys/mounts), and auth methods, routed under auth/ (sys/auth).
// Both are plugin mounts handled by the same code.
type mountKind struct {
	table *mount.Table
	// routePrefix is prepended to a mount's path to route it.
	routePrefix string
	pluginType  logical.BackendType
	noun        string // for messages and logs
}

func (k *mountKind) route(e *mount.Entry) string { return k.routePrefix + e.Path }

// findMount returns the kind and entry of the mount routed at prefix.
func (u *unsealedState) findMount(prefix string) (*mountKind, *mount.Entry) {
	for _, k := range []*mountKind{u.auths, u.secrets} {
		if rel, ok := strings.CutPrefix(prefix, k.routePrefix); ok {
			if e := k.table.Get(rel); e != nil {
				return k, e
			}
		}
	}
	return nil, nil
}

// authMount returns the auth mount with this accessor, or nil.
func (u *unsealedState) authMount(accessor string) *mount.Entry {
	return u.auths.table.ByAccessor(accessor)
}

// startMount sets a mount up with its plugin and routes it. A mount whose
// plugin fails stays routed and answers 502 until the plugin works again.
func (c *Core) startMount(ctx context.Context, u *unsealedState, k *mountKind, e *mount.Entry) error {
	h, err := u.runner.Mount(ctx, c.mountSpec(k, e))
	route := &router.Route{Prefix: k.route(e), Type: e.Type, Accessor: e.Accessor, Auth: k.pluginType == logical.TypeAuth}
	if err != nil {
		route.Handler = unavailable{err: err}
		u.router.Add(route)
		return err
	}
	route.Handler = h
	u.setHandle(route.Prefix, h)
	u.router.Add(route)
	return nil
}

func (c *Core) mountSpec(k *mountKind, e *mount.Entry) plugin.MountSpec {
	// Settings were checked when stored; a bad one left from an older
	// version falls back to the defaults rather than keep the mount down.
	limits, _ := wasmLimits(e.Config.Wasm)
	return plugin.MountSpec{
		ID: e.UUID, Path: k.route(e), PluginType: string(k.pluginType), PluginName: e.Type,
		PluginVersion: e.PluginVersion,
		Config:        e.Options, Storage: c.barrier.View(e.StoragePrefix()), Wasm: limits,
	}
}

// mountPaths returns the sys/ paths managing one mount table under base
// ("mounts" or "auth"): list, enable/read/disable and tune.
func (s *system) mountPaths(k *mountKind, base string) []*framework.Path {
	ops := func(m map[logical.Operation]func(*mountKind) framework.OperationFunc) map[logical.Operation]framework.OperationFunc {
		out := map[logical.Operation]framework.OperationFunc{}
		for op, f := range m {
			out[op] = f(k)
		}
		return out
	}
	return []*framework.Path{
		{
			Pattern:      base + "/?",
			Operations:   ops(map[logical.Operation]func(*mountKind) framework.OperationFunc{logical.ReadOperation: s.listMounts}),
			HelpSynopsis: "List the mounted " + k.noun + "s.",
		},
		{
			Pattern: base + "/(?P<path>.+?)/tune",
			Fields: withFields(map[string]*framework.FieldSchema{
				"path":              {Type: framework.TypeString},
				"default_lease_ttl": {Type: framework.TypeDurationSecond},
				"max_lease_ttl":     {Type: framework.TypeDurationSecond},
				"description":       {Type: framework.TypeString},
				"options":           {Type: framework.TypeKVPairs},
				"login_condition":   {Type: framework.TypeString, Description: "Auth methods: CEL condition logins must satisfy; empty removes it."},
				"plugin_version":    {Type: framework.TypeString, Description: "Move the mount to this catalog version of its plugin (empty: the unversioned entry), in place."},
			}, wasmFields),
			Operations: ops(map[logical.Operation]func(*mountKind) framework.OperationFunc{
				logical.ReadOperation: s.readTune, logical.UpdateOperation: s.tune,
			}),
			HelpSynopsis: "Read or tune the configuration of a " + k.noun + ".",
		},
		{
			Pattern: base + "/(?P<path>.+)",
			Fields: map[string]*framework.FieldSchema{
				"path":           {Type: framework.TypeString, Description: "Mount path."},
				"type":           {Type: framework.TypeString, Description: "Plugin name, e.g. kv or userpass."},
				"description":    {Type: framework.TypeString, Description: "Human-readable description."},
				"config":         {Type: framework.TypeMap, Description: "default_lease_ttl, max_lease_ttl, login_condition (auth methods), wasm_* (WASM plugins)."},
				"options":        {Type: framework.TypeKVPairs, Description: "Options passed to the plugin (version for kv)."},
				"local":          {Type: framework.TypeBool},
				"seal_wrap":      {Type: framework.TypeBool},
				"plugin_version": {Type: framework.TypeString},
			},
			Operations: ops(map[logical.Operation]func(*mountKind) framework.OperationFunc{
				logical.ReadOperation: s.readMount, logical.UpdateOperation: s.enableMount, logical.DeleteOperation: s.disableMount,
			}),
			HelpSynopsis: "Enable, read or disable a " + k.noun + ".",
		},
	}
}

// mountView renders a mount as Vault does in sys/mounts and sys/auth.
func mountView(e *mount.Entry) map[string]any {
	var opts any
	if len(e.Options) > 0 {
		opts = e.Options
	}
	v := map[string]any{
		"accessor":                e.Accessor,
		"config":                  mountConfigView(e),
		"description":             e.Description,
		"external_entropy_access": false,
		"local":                   e.Local,
		"options":                 opts,
		"plugin_version":          e.PluginVersion,
		"running_plugin_version":  "",
		"running_sha256":          "",
		"seal_wrap":               e.SealWrap,
		"type":                    e.Type,
		"uuid":                    e.UUID,
	}
	if !e.Builtin {
		v["deprecation_status"] = "supported"
	}
	return v
}

func mountConfigView(e *mount.Entry) map[string]any {
	c := map[string]any{
		"default_lease_ttl": e.Config.DefaultLeaseTTL,
		"max_lease_ttl":     e.Config.MaxLeaseTTL,
		"force_no_cache":    false,
	}
	if e.Config.LoginCondition != "" {
		c["login_condition"] = e.Config.LoginCondition
	}
	wasmConfigView(e.Config.Wasm, c)
	return c
}

// withFields returns base with the extra fields added.
func withFields(base, extra map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	for k, v := range extra {
		base[k] = v
	}
	return base
}

// setLoginCondition checks and sets an auth mount's login condition.
func setLoginCondition(k *mountKind, e *mount.Entry, expr string) error {
	if expr == "" {
		e.Config.LoginCondition = ""
		return nil
	}
	if k.pluginType != logical.TypeAuth {
		return logical.InvalidRequest("login_condition applies only to auth methods")
	}
	if _, err := policy.CompileGuard(expr); err != nil {
		return logical.InvalidRequest("login_condition: %v", err)
	}
	e.Config.LoginCondition = expr
	return nil
}

func (s *system) listMounts(k *mountKind) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		data := map[string]any{}
		for _, e := range k.table.Entries() {
			data[e.Path] = mountView(e)
		}
		return &logical.Response{Data: data}, nil
	}
}

func mountPath(d *framework.FieldData) (string, error) {
	return mount.NormalizePath(d.Get("path").(string))
}

func (s *system) readMount(k *mountKind) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		p, err := mountPath(d)
		if err != nil {
			return nil, err
		}
		e := k.table.Get(p)
		if e == nil {
			return nil, nil
		}
		return &logical.Response{Data: mountView(e)}, nil
	}
}

// pluginForType resolves Vault's type aliases: "kv-v1"/"kv-v2" are kv with
// options.version set.
func pluginForType(typ string, options map[string]string) (string, map[string]string) {
	switch typ {
	case "kv-v1", "kv-v2":
		if options == nil {
			options = map[string]string{}
		}
		options["version"] = strings.TrimPrefix(typ, "kv-v")
		return "kv", options
	}
	return typ, options
}

func ttlField(m map[string]any, key string) (int, error) {
	raw, ok := m[key]
	if !ok {
		return 0, nil
	}
	d := &framework.FieldData{Raw: map[string]any{key: raw}, Schema: map[string]*framework.FieldSchema{key: {Type: framework.TypeDurationSecond}}}
	if err := d.Validate(); err != nil {
		return 0, err
	}
	return d.Get(key).(int), nil
}

// begin starts an operation that changes mounts or plugins: one at a time,
// and never after Seal took the state down. Call the returned func when done.
func (s *system) begin() (func(), error) {
	s.u.opMu.Lock()
	if s.u.closed {
		s.u.opMu.Unlock()
		return nil, ErrSealed
	}
	return s.u.opMu.Unlock, nil
}

func (s *system) enableMount(k *mountKind) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		done, err := s.begin()
		if err != nil {
			return nil, err
		}
		defer done()
		p, err := mountPath(d)
		if err != nil {
			return nil, err
		}
		typ := d.Get("type").(string)
		if typ == "" {
			return nil, logical.InvalidRequest("type is required")
		}
		if err := k.table.CheckPath(p); err != nil {
			return nil, err
		}
		var options map[string]string
		if o, ok := d.GetOk("options"); ok {
			options = o.(map[string]string)
		}
		if k.pluginType == logical.TypeSecret {
			typ, options = pluginForType(typ, options)
			if typ == "kv" {
				if options == nil {
					options = map[string]string{}
				}
				if options["version"] == "" {
					options["version"] = "1"
				}
			}
		}
		e := mount.NewEntry(p, typ)
		e.Description = d.Get("description").(string)
		e.Options = options
		e.Local = d.Get("local").(bool)
		e.SealWrap = d.Get("seal_wrap").(bool)
		e.PluginVersion = d.Get("plugin_version").(string)
		cfg := d.Get("config").(map[string]any)
		if e.Config.DefaultLeaseTTL, err = ttlField(cfg, "default_lease_ttl"); err != nil {
			return nil, err
		}
		if e.Config.MaxLeaseTTL, err = ttlField(cfg, "max_lease_ttl"); err != nil {
			return nil, err
		}
		if e.Config.MaxLeaseTTL > 0 && e.Config.DefaultLeaseTTL > e.Config.MaxLeaseTTL {
			return nil, logical.InvalidRequest("default_lease_ttl must not exceed max_lease_ttl")
		}
		if v, ok := cfg["login_condition"]; ok {
			expr, isStr := v.(string)
			if !isStr {
				return nil, logical.InvalidRequest("config.login_condition must be a string")
			}
			if err := setLoginCondition(k, e, expr); err != nil {
				return nil, err
			}
		}
		pe, err := s.u.catalog.GetVersion(ctx, string(k.pluginType), typ, e.PluginVersion)
		if errors.Is(err, plugin.ErrNotFound) {
			return nil, s.notInCatalog(ctx, k, typ, e.PluginVersion)
		} else if err != nil {
			return nil, err
		}
		var given bool
		if e.Config.Wasm, given, err = parseWasmConfig(cfg, nil); err != nil {
			return nil, err
		}
		if given && pe.Runtime != plugin.RuntimeWasm {
			return nil, logical.InvalidRequest("wasm_* settings apply to WASM plugins only; %s runs as a process", typ)
		}

		h, err := s.u.runner.Mount(ctx, s.core.mountSpec(k, e))
		if err != nil {
			return nil, err
		}
		if err := k.table.Add(ctx, e); err != nil {
			h.Close(ctx)
			return nil, err
		}
		prefix := k.route(e)
		s.u.setHandle(prefix, h)
		s.u.router.Add(&router.Route{Prefix: prefix, Type: e.Type, Accessor: e.Accessor, Handler: h,
			Auth: k.pluginType == logical.TypeAuth})
		s.core.logger.Info(k.noun+" enabled", "path", prefix, "type", e.Type)
		return nil, nil
	}
}

func (s *system) disableMount(k *mountKind) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		done, err := s.begin()
		if err != nil {
			return nil, err
		}
		defer done()
		p, err := mountPath(d)
		if err != nil {
			return nil, err
		}
		cur := k.table.Get(p)
		if cur == nil || cur.Builtin {
			// Removing a builtin is refused by the table with its message.
			if _, err := k.table.Remove(ctx, p); err != nil {
				return nil, err
			}
			return nil, nil
		}
		prefix := k.route(cur)
		// No new request reaches the mount from here; its plugin stays up
		// to revoke the leases it issued, as Vault does at unmount. If one
		// cannot be revoked, the mount stays (the lease is retried and
		// shown as pending; revoke-force is the operator's way out).
		route, _ := s.u.router.Match(prefix)
		s.u.router.Remove(prefix)
		if k.pluginType == logical.TypeSecret {
			if err := s.u.leases.RevokePrefix(ctx, prefix, false); err != nil {
				if route != nil && route.Prefix == prefix {
					s.u.router.Add(route)
				}
				return nil, fmt.Errorf("revoke the leases of %s before disabling it: %w", prefix, err)
			}
		}
		e, err := k.table.Remove(ctx, p)
		if err != nil || e == nil {
			if route != nil && route.Prefix == prefix {
				s.u.router.Add(route)
			}
			return nil, err
		}
		if h := s.u.takeHandle(prefix); h != nil {
			h.Close(ctx)
		}
		// Disabling an auth method ends the sessions it opened, as in Vault.
		if k.pluginType == logical.TypeAuth {
			if err := s.u.tokens.RevokeByMount(ctx, e.Accessor); err != nil {
				return nil, fmt.Errorf("revoke the tokens of %s: %w", prefix, err)
			}
		}
		// The mount's data goes with it, as in Vault, in atomic batches.
		view := s.core.barrier.View(e.StoragePrefix())
		keys, err := logical.CollectKeys(ctx, view, "")
		if err != nil {
			return nil, fmt.Errorf("clear mount data: %w", err)
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			ops := make([]logical.StorageOp, n)
			for i, key := range keys[:n] {
				ops[i] = logical.StorageOp{Key: key, Delete: true}
			}
			if err := view.Batch(ctx, ops); err != nil {
				return nil, fmt.Errorf("clear mount data: %w", err)
			}
			keys = keys[n:]
		}
		s.core.logger.Info(k.noun+" disabled", "path", prefix, "type", e.Type)
		return nil, nil
	}
}

// retuneBackend prepares the backend a tuned mount moves to: another
// version of its plugin (a new process, or a new WASM pool), or new WASM
// limits. commit waits for the old backend's calls in flight, routes the
// mount to the new one and closes the old; abort drops the new one.
func (s *system) retuneBackend(ctx context.Context, k *mountKind, cur *mount.Entry, version string,
	wasmCfg *mount.WasmConfig, wasmGiven bool) (commit, abort func(), err error) {
	pe, err := s.u.catalog.GetVersion(ctx, string(k.pluginType), cur.Type, version)
	if errors.Is(err, plugin.ErrNotFound) {
		return nil, nil, s.notInCatalog(ctx, k, cur.Type, version)
	} else if err != nil {
		return nil, nil, err
	}
	if wasmGiven && pe.Runtime != plugin.RuntimeWasm {
		return nil, nil, logical.InvalidRequest("wasm_* settings apply to WASM plugins only; %s runs as a process", cur.Type)
	}
	next := *cur
	next.Config.Wasm, next.PluginVersion = wasmCfg, version
	spec := s.core.mountSpec(k, &next)
	prefix := k.route(cur)
	old := s.u.handle(prefix)
	if version == cur.PluginVersion && old != nil {
		return s.u.runner.Retune(ctx, old, spec) // same module, new limits
	}
	nb, err := s.u.runner.Mount(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	bg := context.WithoutCancel(ctx)
	commit = func() {
		route := func() {
			s.u.setHandle(prefix, nb)
			s.u.router.Add(&router.Route{Prefix: prefix, Type: cur.Type, Accessor: cur.Accessor, Handler: nb,
				Auth: k.pluginType == logical.TypeAuth})
		}
		if old != nil {
			// The old version finishes its calls first: two versions never
			// serve the mount at once.
			plugin.Replace(bg, old, nb, route)
		} else {
			route()
		}
		s.core.logger.Info(k.noun+" moved to another plugin version", "path", prefix, "type", cur.Type,
			"from", cur.PluginVersion, "to", version)
	}
	return commit, func() { nb.Close(bg) }, nil
}

// notInCatalog is the 400 for a plugin (version) the catalog lacks, naming
// the versions it has.
func (s *system) notInCatalog(ctx context.Context, k *mountKind, name, version string) error {
	if version == "" {
		return logical.InvalidRequest("plugin not found in the catalog: %s", name)
	}
	vs, _ := s.u.catalog.Versions(ctx, string(k.pluginType), name)
	return logical.InvalidRequest("plugin %s has no version %s in the catalog (versions: %s)", name, version, strings.Join(vs, ", "))
}

func (s *system) readTune(k *mountKind) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		p, err := mountPath(d)
		if err != nil {
			return nil, err
		}
		e := k.table.Get(p)
		if e == nil {
			return nil, logical.InvalidRequest("no mount at %q", p)
		}
		data := map[string]any{"default_lease_ttl": int(s.core.mountDefaultTTL(e).Seconds()),
			"max_lease_ttl": int(s.core.mountMaxTTL(e).Seconds()), "force_no_cache": false,
			"description": e.Description, "plugin_version": e.PluginVersion}
		if e.Config.LoginCondition != "" {
			data["login_condition"] = e.Config.LoginCondition
		}
		if len(e.Options) > 0 {
			data["options"] = e.Options
		}
		wasmConfigView(e.Config.Wasm, data)
		return &logical.Response{Data: data}, nil
	}
}

func (s *system) tune(k *mountKind) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		done, err := s.begin()
		if err != nil {
			return nil, err
		}
		defer done()
		p, err := mountPath(d)
		if err != nil {
			return nil, err
		}
		cur := k.table.Get(p)
		if cur != nil && cur.Builtin {
			return nil, logical.InvalidRequest("cannot tune %q", p)
		}
		// A new plugin version or new WASM limits take a new backend:
		// prepare it first, so a version or setting that cannot run is
		// refused and changes nothing; requests move over when it is ready.
		commit, abort := func() {}, func() {}
		var wasmCfg *mount.WasmConfig
		version := ""
		if cur != nil {
			version = cur.PluginVersion
			if v, ok := d.GetOk("plugin_version"); ok {
				version = v.(string)
			}
			var wasmGiven bool
			if wasmCfg, wasmGiven, err = parseWasmConfig(d.Raw, cur.Config.Wasm); err != nil {
				return nil, err
			}
			if version != cur.PluginVersion || wasmGiven {
				if commit, abort, err = s.retuneBackend(ctx, k, cur, version, wasmCfg, wasmGiven); err != nil {
					return nil, err
				}
			}
		}
		_, err = k.table.Update(ctx, p, func(e *mount.Entry) error {
			e.Config.Wasm = wasmCfg
			e.PluginVersion = version
			if v, ok := d.GetOk("default_lease_ttl"); ok {
				e.Config.DefaultLeaseTTL = v.(int)
			}
			if v, ok := d.GetOk("max_lease_ttl"); ok {
				e.Config.MaxLeaseTTL = v.(int)
			}
			if e.Config.MaxLeaseTTL > 0 && e.Config.DefaultLeaseTTL > e.Config.MaxLeaseTTL {
				return logical.InvalidRequest("default_lease_ttl must not exceed max_lease_ttl")
			}
			if v, ok := d.GetOk("description"); ok {
				e.Description = v.(string)
			}
			if v, ok := d.GetOk("login_condition"); ok {
				if err := setLoginCondition(k, e, v.(string)); err != nil {
					return err
				}
			}
			if v, ok := d.GetOk("options"); ok {
				for key, val := range v.(map[string]string) {
					if val == e.Options[key] {
						continue // unchanged: what clients resend
					}
					if key == "version" {
						return logical.InvalidRequest("changing the KV version of an existing mount is not supported")
					}
					return logical.InvalidRequest("option %q cannot be changed by tuning", key)
				}
			}
			return nil
		})
		if err != nil {
			abort()
			return nil, err
		}
		commit()
		return nil, nil
	}
}
