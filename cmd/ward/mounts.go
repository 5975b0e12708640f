package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The server keeps two mount tables with the same API: secrets engines under
// sys/mounts and auth methods under sys/auth. The enable, disable, list and
// tune commands of `ward secrets` and `ward auth` are one implementation,
// parameterised by a mountKind.

// mountKind describes one mount table and the command group managing it.
type mountKind struct {
	group  string // command group: "secrets" or "auth"
	api    string // API base: "sys/mounts" or "sys/auth"
	noun   string // what a mount is: "secrets engine" or "auth method"
	nounA  string // noun with its article: "a secrets engine"
	nouns  string // plural: "secrets engines"
	short  string // short noun for flag help: "engine" or "method"
	engine bool   // secrets engines only: -version and the "kv-v2" alias

	// enabled formats the success message of enable from the type and path.
	enabled string

	// help holds each subcommand's usage text (see helpText), keyed by
	// subcommand name.
	help map[string]string
}

// ---- enable ----

type mountEnableCommand struct {
	baseCommand
	kind                *mountKind
	flagPath            string
	flagDescription     string
	flagVersion         int
	flagDefaultLeaseTTL durationFlag
	flagMaxLeaseTTL     durationFlag
	flagOptions         mapFlag
	flagPluginVersion   string
	wasm                wasmFlags
}

func (c *mountEnableCommand) Synopsis() string { return "Enable " + c.kind.nounA }

func (c *mountEnableCommand) Help() string { return helpText(c.kind.help["enable"], c.flags()) }

func (c *mountEnableCommand) flags() *flag.FlagSet {
	fs := c.flagSet(c.kind.group+" enable", noOutputFlags)
	fs.StringVar(&c.flagPath, "path", "", "Mount path (default: the "+c.kind.short+" type).")
	fs.StringVar(&c.flagDescription, "description", "", "Human-readable description of the mount.")
	if c.kind.engine {
		fs.IntVar(&c.flagVersion, "version", 0, `Engine version, sent as options.version (e.g. 2 for KV v2).`)
	}
	fs.Var(&c.flagDefaultLeaseTTL, "default-lease-ttl", "Default lease TTL of the mount (e.g. 1h, 3600).")
	fs.Var(&c.flagMaxLeaseTTL, "max-lease-ttl", "Maximum lease TTL of the mount.")
	fs.Var(&c.flagOptions, "options", strings.ToUpper(c.kind.short[:1])+c.kind.short[1:]+" option as key=value; repeatable.")
	fs.StringVar(&c.flagPluginVersion, "plugin-version", "", "Catalog version of the plugin to run (default: the unversioned entry or the builtin).")
	c.wasm.register(fs)
	return fs
}

func (c *mountEnableCommand) Run(args []string) int {
	fs := c.flags()
	args, client, code := c.begin(fs, args, 1, 1)
	if code != exitOK {
		return code
	}
	typ := strings.TrimSpace(args[0])
	version := c.flagVersion
	if c.kind.engine && typ == "kv-v2" {
		typ, version = "kv", 2
	}
	mountPath := sanitizePath(c.flagPath)
	if mountPath == "" {
		mountPath = typ
	}

	body := map[string]any{"type": typ}
	if c.flagPluginVersion != "" {
		body["plugin_version"] = c.flagPluginVersion
	}
	if c.flagDescription != "" {
		body["description"] = c.flagDescription
	}
	config := map[string]any{}
	if c.flagDefaultLeaseTTL.set {
		config["default_lease_ttl"] = c.flagDefaultLeaseTTL.apiString()
	}
	if c.flagMaxLeaseTTL.set {
		config["max_lease_ttl"] = c.flagMaxLeaseTTL.apiString()
	}
	c.wasm.apply(fs, config)
	if len(config) > 0 {
		body["config"] = config
	}
	options := map[string]string{}
	for k, v := range c.flagOptions.values {
		options[k] = v
	}
	if version > 0 {
		options["version"] = fmt.Sprint(version)
	}
	if len(options) > 0 {
		body["options"] = options
	}

	if _, err := send(context.Background(), client, "POST", c.kind.api+"/"+mountPath, body); err != nil {
		return remoteFailed("enabling", err)
	}
	writeOut(fmt.Sprintf(c.kind.enabled+"\n", typ, mountPath+"/"))
	return exitOK
}

// ---- disable ----

type mountDisableCommand struct {
	baseCommand
	kind *mountKind
}

func (c *mountDisableCommand) Synopsis() string { return "Disable " + c.kind.nounA }

func (c *mountDisableCommand) Help() string { return helpText(c.kind.help["disable"], c.flags()) }

func (c *mountDisableCommand) flags() *flag.FlagSet {
	return c.flagSet(c.kind.group+" disable", noOutputFlags)
}

func (c *mountDisableCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	mountPath := sanitizePath(args[0])
	if _, err := send(context.Background(), client, "DELETE", c.kind.api+"/"+mountPath, nil); err != nil {
		return remoteFailed("disabling "+c.kind.noun+" at "+mountPath+"/", err)
	}
	writeOut("Success! Disabled the " + c.kind.noun + " (if it existed) at: " + mountPath + "/\n")
	return exitOK
}

// ---- list ----

type mountListCommand struct {
	baseCommand
	kind         *mountKind
	flagDetailed bool
}

func (c *mountListCommand) Synopsis() string { return "List enabled " + c.kind.nouns }

func (c *mountListCommand) Help() string { return helpText(c.kind.help["list"], c.flags()) }

func (c *mountListCommand) flags() *flag.FlagSet {
	fs := c.flagSet(c.kind.group+" list", withFormat)
	fs.BoolVar(&c.flagDetailed, "detailed", false, "Show TTLs, options, UUIDs and versions.")
	return fs
}

func (c *mountListCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	// The raw reply rather than Sys().ListMounts/ListAuth: nothing is lost
	// in a struct conversion, and -format=json prints what the server sent.
	secret, err := client.Logical().ReadWithContext(context.Background(), c.kind.api)
	if err != nil {
		return remoteFailed("listing "+c.kind.nouns, err)
	}
	if secret == nil || secret.Data == nil {
		printErr("Error listing %s: empty reply from the server", c.kind.nouns)
		return exitRemote
	}
	if c.jsonOutput() {
		return printJSON(secret.Data)
	}

	paths := make([]string, 0, len(secret.Data))
	for p := range secret.Data {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	header := []string{"Path", "Plugin", "Accessor", "Description"}
	if c.flagDetailed {
		header = []string{"Path", "Plugin", "Accessor", "Default TTL", "Max TTL", "Force No Cache",
			"Replication", "Seal Wrap", "Options", "Description", "UUID", "Running Version"}
	}
	rows := make([][]string, 0, len(paths))
	for _, p := range paths {
		m, _ := secret.Data[p].(map[string]any)
		if m == nil {
			continue
		}
		str := func(k string) string {
			if v, ok := m[k]; ok && v != nil {
				return fmt.Sprint(v)
			}
			return ""
		}
		if !c.flagDetailed {
			rows = append(rows, []string{p, str("type"), str("accessor"), str("description")})
			continue
		}
		cfg, _ := m["config"].(map[string]any)
		replication := "replicated"
		if local, _ := m["local"].(bool); local {
			replication = "local"
		}
		options := "map[]"
		if o, ok := m["options"].(map[string]any); ok {
			options = fmt.Sprint(o)
		}
		rows = append(rows, []string{p, str("type"), str("accessor"),
			ttlOrSystem(cfg["default_lease_ttl"]), ttlOrSystem(cfg["max_lease_ttl"]),
			fmt.Sprint(cfg["force_no_cache"] == true), replication, str("seal_wrap"),
			options, str("description"), str("uuid"), str("running_plugin_version")})
	}
	printTable(header, rows)
	return exitOK
}

// ttlOrSystem shows a mount TTL in seconds as a duration, 0 as "system"
// (the mount inherits the server default).
func ttlOrSystem(v any) string {
	d, ok := secondsValue(v)
	if !ok || d == 0 {
		return "system"
	}
	return humanDuration(d.Round(time.Second))
}

// ---- tune ----

type mountTuneCommand struct {
	baseCommand
	kind                *mountKind
	flagDefaultLeaseTTL durationFlag
	flagMaxLeaseTTL     durationFlag
	flagDescription     string
	flagPluginVersion   string
	wasm                wasmFlags
}

func (c *mountTuneCommand) Synopsis() string { return "Tune " + c.kind.nounA + " configuration" }

func (c *mountTuneCommand) Help() string { return helpText(c.kind.help["tune"], c.flags()) }

func (c *mountTuneCommand) flags() *flag.FlagSet {
	fs := c.flagSet(c.kind.group+" tune", noOutputFlags)
	fs.Var(&c.flagDefaultLeaseTTL, "default-lease-ttl", "Default lease TTL of the mount.")
	fs.Var(&c.flagMaxLeaseTTL, "max-lease-ttl", "Maximum lease TTL of the mount.")
	fs.StringVar(&c.flagDescription, "description", "", "New description of the mount.")
	fs.StringVar(&c.flagPluginVersion, "plugin-version", "", "Move the mount to this catalog version of its plugin, in place (\"\": the unversioned entry).")
	c.wasm.register(fs)
	return fs
}

func (c *mountTuneCommand) Run(args []string) int {
	fs := c.flags()
	args, client, code := c.begin(fs, args, 1, 1)
	if code != exitOK {
		return code
	}
	body := map[string]any{}
	if c.flagDefaultLeaseTTL.set {
		body["default_lease_ttl"] = c.flagDefaultLeaseTTL.apiString()
	}
	if c.flagMaxLeaseTTL.set {
		body["max_lease_ttl"] = c.flagMaxLeaseTTL.apiString()
	}
	if flagWasSet(fs, "description") {
		body["description"] = c.flagDescription
	}
	if flagWasSet(fs, "plugin-version") {
		body["plugin_version"] = c.flagPluginVersion
	}
	c.wasm.apply(fs, body)
	if len(body) == 0 {
		printErr("Nothing to tune: give at least one of -default-lease-ttl, -max-lease-ttl, -description, -plugin-version, -wasm-*")
		return exitLocal
	}
	mountPath := sanitizePath(args[0])
	if _, err := send(context.Background(), client, "POST", c.kind.api+"/"+mountPath+"/tune", body); err != nil {
		return remoteFailed("tuning "+c.kind.noun+" "+mountPath+"/", err)
	}
	writeOut("Success! Tuned the " + c.kind.noun + " at: " + mountPath + "/\n")
	return exitOK
}

// wasmFlags are a WASM mount's sandbox settings, for enable and tune.
type wasmFlags struct {
	memoryMB        int
	timeout         durationFlag
	poolSize        int
	allowedHosts    listFlag
	allowPlainHTTP  bool
	privateNetworks listFlag
}

func (w *wasmFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&w.memoryMB, "wasm-memory-mb", 0, "WASM plugins: memory cap per instance in MiB (default 64, at most 256).")
	fs.Var(&w.timeout, "wasm-timeout", "WASM plugins: deadline of one request (default 5s).")
	fs.IntVar(&w.poolSize, "wasm-pool-size", 0, "WASM plugins: instances serving the mount at once.")
	fs.Var(&w.allowedHosts, "wasm-allowed-host", "WASM plugins: host the module may reach (host, host:port, *.domain); repeatable.")
	fs.BoolVar(&w.allowPlainHTTP, "wasm-allow-plain-http", false, "WASM plugins: allow http:// to the allowed hosts.")
	fs.Var(&w.privateNetworks, "wasm-private-network", "WASM plugins: private CIDR the module may connect to; repeatable.")
}

// apply adds the settings given on the command line to m.
func (w *wasmFlags) apply(fs *flag.FlagSet, m map[string]any) {
	if flagWasSet(fs, "wasm-memory-mb") {
		m["wasm_memory_mb"] = w.memoryMB
	}
	if w.timeout.set {
		m["wasm_timeout"] = w.timeout.apiString()
	}
	if flagWasSet(fs, "wasm-pool-size") {
		m["wasm_pool_size"] = w.poolSize
	}
	if flagWasSet(fs, "wasm-allowed-host") {
		m["wasm_allowed_hosts"] = w.allowedHosts.values
	}
	if flagWasSet(fs, "wasm-allow-plain-http") {
		m["wasm_allow_plain_http"] = w.allowPlainHTTP
	}
	if flagWasSet(fs, "wasm-private-network") {
		m["wasm_private_networks"] = w.privateNetworks.values
	}
}
