package kernel

import (
	"context"
	"errors"
	"fmt"
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
	core *Core
	u    *unsealedState
}

func (c *Core) systemBackend(u *unsealedState) logical.Backend {
	s := &system{core: c, u: u}
	mountFields := map[string]*framework.FieldSchema{
		"path":           {Type: framework.TypeString, Description: "Mount path."},
		"type":           {Type: framework.TypeString, Description: "Plugin name, e.g. kv."},
		"description":    {Type: framework.TypeString, Description: "Human-readable description."},
		"config":         {Type: framework.TypeMap, Description: "default_lease_ttl, max_lease_ttl."},
		"options":        {Type: framework.TypeKVPairs, Description: "Options passed to the plugin (version for kv)."},
		"local":          {Type: framework.TypeBool},
		"seal_wrap":      {Type: framework.TypeBool},
		"plugin_version": {Type: framework.TypeString},
	}
	b := &framework.Backend{
		Help: "The system backend: mounts, plugins, policies and seal control.",
		PathsSpecial: &logical.Paths{
			Root: []string{"auth/*", "plugins/catalog/*", "plugins/reload/*", "seal"}, // as in Vault
		},
		Paths: []*framework.Path{
			{
				Pattern:      "mounts/?",
				Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.listMounts},
				HelpSynopsis: "List the mounted secret engines.",
			},
			{
				Pattern: "mounts/(?P<path>.+?)/tune",
				Fields: map[string]*framework.FieldSchema{
					"path":              {Type: framework.TypeString},
					"default_lease_ttl": {Type: framework.TypeDurationSecond},
					"max_lease_ttl":     {Type: framework.TypeDurationSecond},
					"description":       {Type: framework.TypeString},
					"options":           {Type: framework.TypeKVPairs},
				},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   s.readTune,
					logical.UpdateOperation: s.tune,
				},
				HelpSynopsis: "Read or tune a mount's configuration.",
			},
			{
				Pattern: "mounts/(?P<path>.+)",
				Fields:  mountFields,
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   s.readMount,
					logical.UpdateOperation: s.enableMount,
					logical.DeleteOperation: s.disableMount,
				},
				HelpSynopsis: "Enable, read or disable a secret engine mount.",
			},
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
					"type":    {Type: framework.TypeString},
					"name":    {Type: framework.TypeString},
					"sha256":  {Type: framework.TypeString, Description: "SHA-256 of the plugin binary, hex."},
					"command": {Type: framework.TypeString, Description: "Executable, relative to plugin_directory."},
					"args":    {Type: framework.TypeStringSlice},
					"env":     {Type: framework.TypeStringSlice, Description: "KEY=VALUE entries; the plugin sees no other environment."},
					"version": {Type: framework.TypeString},
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
	b.Paths = append(b.Paths, &framework.Path{
		Pattern:      "auth/?",
		Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.listAuth},
		HelpSynopsis: "List the auth methods.",
	}, &framework.Path{
		Pattern: "auth/(?P<path>.+)",
		Fields:  map[string]*framework.FieldSchema{"path": {Type: framework.TypeString}},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: s.authNotYet, logical.DeleteOperation: s.authNotYet,
		},
		HelpSynopsis: "Enable or disable an auth method.",
	})
	return b
}

// mountView renders a mount as Vault does in sys/mounts.
func mountView(e *mount.Entry) map[string]any {
	var opts any
	if len(e.Options) > 0 {
		opts = e.Options
	}
	v := map[string]any{
		"accessor": e.Accessor,
		"config": map[string]any{
			"default_lease_ttl": e.Config.DefaultLeaseTTL,
			"max_lease_ttl":     e.Config.MaxLeaseTTL,
			"force_no_cache":    false,
		},
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

func (s *system) listMounts(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	data := map[string]any{}
	for _, e := range s.u.mounts.Entries() {
		data[e.Path] = mountView(e)
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) mountPath(d *framework.FieldData) (string, error) {
	return mount.NormalizePath(d.Get("path").(string))
}

func (s *system) readMount(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	p, err := s.mountPath(d)
	if err != nil {
		return nil, err
	}
	e := s.u.mounts.Get(p)
	if e == nil {
		return nil, nil
	}
	return &logical.Response{Data: mountView(e)}, nil
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

func (s *system) enableMount(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := s.mountPath(d)
	if err != nil {
		return nil, err
	}
	typ := d.Get("type").(string)
	if typ == "" {
		return nil, logical.InvalidRequest("type is required")
	}
	if err := s.u.mounts.CheckPath(p); err != nil {
		return nil, err
	}
	var options map[string]string
	if o, ok := d.GetOk("options"); ok {
		options = o.(map[string]string)
	}
	typ, options = pluginForType(typ, options)
	if typ == "kv" {
		if options == nil {
			options = map[string]string{}
		}
		if options["version"] == "" {
			options["version"] = "1"
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
	if _, err := s.u.catalog.Get(ctx, string(logical.TypeSecret), typ); errors.Is(err, plugin.ErrNotFound) {
		return nil, logical.InvalidRequest("plugin not found in the catalog: %s", typ)
	} else if err != nil {
		return nil, err
	}

	h, err := s.u.runner.Mount(ctx, plugin.MountSpec{
		ID: e.UUID, Path: e.Path, PluginType: string(logical.TypeSecret), PluginName: typ,
		Config: e.Options, Storage: s.core.barrier.View(e.StoragePrefix()),
	})
	if err != nil {
		return nil, err
	}
	if err := s.u.mounts.Add(ctx, e); err != nil {
		h.Close(ctx)
		return nil, err
	}
	s.u.setHandle(e.Path, h)
	s.u.router.Add(routeFor(e, h))
	s.core.logger.Info("secret engine enabled", "path", e.Path, "type", e.Type)
	return nil, nil
}

func (s *system) disableMount(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := s.mountPath(d)
	if err != nil {
		return nil, err
	}
	e, err := s.u.mounts.Remove(ctx, p)
	if err != nil || e == nil {
		return nil, err
	}
	s.u.router.Remove(p)
	if h := s.u.takeHandle(p); h != nil {
		h.Close(ctx)
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
		for i, k := range keys[:n] {
			ops[i] = logical.StorageOp{Key: k, Delete: true}
		}
		if err := view.Batch(ctx, ops); err != nil {
			return nil, fmt.Errorf("clear mount data: %w", err)
		}
		keys = keys[n:]
	}
	s.core.logger.Info("secret engine disabled", "path", p, "type", e.Type)
	return nil, nil
}

func (s *system) readTune(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	p, err := s.mountPath(d)
	if err != nil {
		return nil, err
	}
	e := s.u.mounts.Get(p)
	if e == nil {
		return nil, logical.InvalidRequest("no mount at %q", p)
	}
	def, max := e.Config.DefaultLeaseTTL, e.Config.MaxLeaseTTL
	if def == 0 {
		def = int(s.core.cfg.DefaultLeaseTTL.Seconds())
	}
	if max == 0 {
		max = int(s.core.cfg.MaxLeaseTTL.Seconds())
	}
	data := map[string]any{"default_lease_ttl": def, "max_lease_ttl": max, "force_no_cache": false,
		"description": e.Description}
	if len(e.Options) > 0 {
		data["options"] = e.Options
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) tune(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := s.mountPath(d)
	if err != nil {
		return nil, err
	}
	if e := s.u.mounts.Get(p); e != nil && e.Builtin {
		return nil, logical.InvalidRequest("cannot tune %q", p)
	}
	_, err = s.u.mounts.Update(ctx, p, func(e *mount.Entry) error {
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
		if v, ok := d.GetOk("options"); ok {
			for k, val := range v.(map[string]string) {
				if val == e.Options[k] {
					continue // unchanged: what clients resend
				}
				if k == "version" {
					return logical.InvalidRequest("changing the KV version of an existing mount is not supported")
				}
				return logical.InvalidRequest("option %q cannot be changed by tuning", k)
			}
		}
		return nil
	})
	return nil, err
}

func pluginView(e plugin.Entry) map[string]any {
	args := e.Args
	if args == nil {
		args = []string{}
	}
	return map[string]any{
		"name": e.Name, "type": e.Type, "version": e.Version, "builtin": e.Builtin,
		"command": e.Command, "args": args, "sha256": e.SHA256, "deprecation_status": "supported",
	}
}

func (s *system) listCatalog(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	entries, err := s.u.catalog.List(ctx, "")
	if err != nil {
		return nil, err
	}
	data := map[string]any{"auth": []string{}, "secret": []string{}, "database": []string{}}
	detailed := []map[string]any{}
	for _, e := range entries {
		data[e.Type] = append(data[e.Type].([]string), e.Name)
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
	e, err := s.u.catalog.Get(ctx, d.Get("type").(string), d.Get("name").(string))
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
	if err := s.u.catalog.Set(ctx, e); err != nil {
		return nil, err
	}
	s.core.logger.Info("plugin registered", "type", e.Type, "name", e.Name, "sha256", e.SHA256)
	return nil, nil
}

func (s *system) deregisterPlugin(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	typ, name := d.Get("type").(string), d.Get("name").(string)
	for _, m := range s.u.mounts.Entries() {
		if !m.Builtin && m.Type == name && typ == string(logical.TypeSecret) {
			return nil, logical.InvalidRequest("plugin %q is in use by the mount %s", name, m.Path)
		}
	}
	return nil, s.u.catalog.Delete(ctx, typ, name)
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
	names := map[string]bool{}
	if name != "" {
		names[name] = true
	}
	for _, m := range mounts {
		p, err := mount.NormalizePath(m)
		if err != nil {
			return nil, err
		}
		e := s.u.mounts.Get(p)
		if e == nil || e.Builtin {
			return nil, logical.InvalidRequest("no plugin mount at %q", p)
		}
		names[e.Type] = true
	}
	for n := range names {
		if err := s.u.runner.Reload(ctx, string(logical.TypeSecret), n); err != nil {
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
	e := s.u.mounts.Get(route.Prefix)
	if e == nil || !s.visible(ctx, e.Path) {
		return nil, logical.ErrPermissionDenied
	}
	v := mountView(e)
	v["path"] = e.Path
	return &logical.Response{Data: v}, nil
}

func (s *system) uiMounts(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	secret := map[string]any{}
	for _, e := range s.u.mounts.Entries() {
		if s.visible(ctx, e.Path) {
			secret[e.Path] = mountView(e)
		}
	}
	return &logical.Response{Data: map[string]any{"secret": secret, "auth": map[string]any{}}}, nil
}

// listAuth lists the auth methods: today only the built-in token method.
func (s *system) listAuth(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]any{
		"token/": map[string]any{
			"accessor": s.u.tokenAuthAccessor(),
			"config": map[string]any{
				"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false, "token_type": "default-service",
			},
			"description": "token based credentials", "external_entropy_access": false, "local": false,
			"options": nil, "plugin_version": "", "running_plugin_version": "", "running_sha256": "",
			"seal_wrap": false, "type": "token", "uuid": "",
		},
	}}, nil
}

// authNotYet refuses to enable or disable auth methods: tokens are the only
// method until auth plugins land, and the token method cannot be removed.
func (s *system) authNotYet(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if strings.Trim(d.Get("path").(string), "/") == "token" {
		return nil, logical.InvalidRequest("the token auth method is built in and cannot be changed")
	}
	return nil, logical.InvalidRequest("auth methods other than tokens are not available on this server yet")
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
