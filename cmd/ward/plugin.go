package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

var pluginGroup = &groupCommand{
	synopsis: "Interact with the plugin catalog",
	help: `Usage: ward plugin <subcommand> [options] [args]

  Registers, inspects and reloads plugins in the server's catalog.

      $ ward plugin register -sha256=$(sha256sum my-plugin | cut -d' ' -f1) secret my-plugin
      $ ward plugin list secret
      $ ward plugin reload -plugin=my-plugin
`,
}

// pluginTypes are the catalog types a server may know; the server decides
// which it supports.
var pluginTypes = []string{"auth", "database", "secret"}

// checkPluginType validates a TYPE argument.
func checkPluginType(t string) bool {
	for _, known := range pluginTypes {
		if t == known {
			return true
		}
	}
	printErr("Invalid plugin type %q (expected one of: %s)", t, strings.Join(pluginTypes, ", "))
	return false
}

func catalogPath(pluginType, name string) string {
	return "sys/plugins/catalog/" + pluginType + "/" + name
}

// ---- plugin register ----

type pluginRegisterCommand struct {
	baseCommand
	flagSHA256  string
	flagCommand string
	flagArgs    listFlag
	flagEnv     listFlag
	flagVersion string
	flagWasm    string
}

func (c *pluginRegisterCommand) Synopsis() string { return "Register a new plugin in the catalog" }

func (c *pluginRegisterCommand) Help() string {
	return helpText(`
Usage: ward plugin register [options] TYPE NAME

  Registers (or updates) plugin NAME of TYPE (auth, database or secret) in
  the catalog. The binary must be in the server's plugin directory and
  match -sha256. -command defaults to NAME.

  With -wasm=PATH the plugin is a WASM module read from PATH on this
  machine and sent to the server, which checks it (digest, ABI, imports,
  type), compiles it and stores it in its plugin directory under its
  digest. -sha256 is then optional; when given it must match the file.

      $ ward plugin register -sha256=d3f0a8b… -args=--log-level=debug secret my-plugin
      $ ward plugin register -wasm=./transit.wasm secret transit
`, c.flags())
}

func (c *pluginRegisterCommand) flags() *flag.FlagSet {
	fs := c.flagSet("plugin register", noOutputFlags)
	fs.StringVar(&c.flagSHA256, "sha256", "", "SHA-256 of the plugin binary, hex-encoded. Required.")
	fs.StringVar(&c.flagCommand, "command", "", "Command to run, relative to the plugin directory (default: NAME).")
	fs.Var(&c.flagArgs, "args", "Argument passed to the plugin; repeatable, one argument each.")
	fs.Var(&c.flagEnv, "env", "Environment variable KEY=VALUE for the plugin; repeatable.")
	fs.StringVar(&c.flagVersion, "version", "", "Semantic version of the plugin.")
	fs.StringVar(&c.flagWasm, "wasm", "", "Path of a WASM module to register (sent to the server).")
	return fs
}

func (c *pluginRegisterCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 2, 2) {
		return exitLocal
	}
	pluginType, name := strings.TrimSpace(args[0]), strings.TrimSpace(args[1])
	if !checkPluginType(pluginType) {
		return exitLocal
	}
	sum := strings.TrimSpace(c.flagSHA256)
	var module []byte
	if c.flagWasm != "" {
		if c.flagCommand != "" || len(c.flagArgs.values) > 0 || len(c.flagEnv.values) > 0 {
			printErr("-wasm takes no -command, -args or -env")
			return exitLocal
		}
		var err error
		if module, err = os.ReadFile(c.flagWasm); err != nil {
			printErr(err.Error())
			return exitLocal
		}
		digest := sha256.Sum256(module)
		if sum == "" {
			sum = hex.EncodeToString(digest[:])
		} else if !strings.EqualFold(sum, hex.EncodeToString(digest[:])) {
			printErr(fmt.Sprintf("%s has SHA-256 %x, not the -sha256 given", c.flagWasm, digest))
			return exitLocal
		}
	}
	if sum == "" {
		printErr("-sha256 is required")
		return exitLocal
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		printErr("-sha256 must be 64 hexadecimal characters")
		return exitLocal
	}
	for _, e := range c.flagEnv.values {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			printErr("-env values must be KEY=VALUE")
			return exitLocal
		}
	}
	body := map[string]any{"sha256": sum}
	if module != nil {
		body["wasm_module"] = base64.StdEncoding.EncodeToString(module)
	} else if c.flagCommand != "" {
		body["command"] = c.flagCommand
	} else {
		body["command"] = name
	}
	if len(c.flagArgs.values) > 0 {
		body["args"] = c.flagArgs.values
	}
	if len(c.flagEnv.values) > 0 {
		body["env"] = c.flagEnv.values
	}
	if c.flagVersion != "" {
		body["version"] = c.flagVersion
	}

	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	secret, err := send(context.Background(), client, "PUT", catalogPath(pluginType, name), body)
	if err != nil {
		return remoteFailed("registering plugin "+name, err)
	}
	printWarnings(secret)
	writeOut("Success! Registered plugin: " + name + "\n")
	return exitOK
}

// ---- plugin deregister ----

type pluginDeregisterCommand struct {
	baseCommand
	flagVersion string
}

func (c *pluginDeregisterCommand) Synopsis() string { return "Deregister a plugin from the catalog" }

func (c *pluginDeregisterCommand) Help() string {
	return helpText(`
Usage: ward plugin deregister [options] TYPE NAME

  Removes plugin NAME of TYPE from the catalog. Mounts using it keep
  running until reloaded or unmounted.
`, c.flags())
}

func (c *pluginDeregisterCommand) flags() *flag.FlagSet {
	fs := c.flagSet("plugin deregister", noOutputFlags)
	fs.StringVar(&c.flagVersion, "version", "", "Deregister only this version.")
	return fs
}

func (c *pluginDeregisterCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 2, 2) {
		return exitLocal
	}
	pluginType, name := strings.TrimSpace(args[0]), strings.TrimSpace(args[1])
	if !checkPluginType(pluginType) {
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	var query map[string][]string
	if c.flagVersion != "" {
		query = map[string][]string{"version": {c.flagVersion}}
	}
	if _, err := client.Logical().DeleteWithDataWithContext(context.Background(), catalogPath(pluginType, name), query); err != nil {
		return remoteFailed("deregistering plugin named "+name, err)
	}
	writeOut("Success! Deregistered plugin (if it was registered): " + name + "\n")
	return exitOK
}

// ---- plugin info ----

type pluginInfoCommand struct {
	baseCommand
	flagVersion string
}

func (c *pluginInfoCommand) Synopsis() string {
	return "Read information about a plugin in the catalog"
}

func (c *pluginInfoCommand) Help() string {
	return helpText(`
Usage: ward plugin info [options] TYPE NAME

  Shows the catalog entry of plugin NAME of TYPE: command, args, sha256,
  version, whether it is builtin.
`, c.flags())
}

func (c *pluginInfoCommand) flags() *flag.FlagSet {
	fs := c.flagSet("plugin info", withFormat|withField)
	fs.StringVar(&c.flagVersion, "version", "", "Show this version of the plugin.")
	return fs
}

func (c *pluginInfoCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 2, 2) {
		return exitLocal
	}
	pluginType, name := strings.TrimSpace(args[0]), strings.TrimSpace(args[1])
	if !checkPluginType(pluginType) {
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	var query map[string][]string
	if c.flagVersion != "" {
		query = map[string][]string{"version": {c.flagVersion}}
	}
	secret, err := client.Logical().ReadWithDataWithContext(context.Background(), catalogPath(pluginType, name), query)
	if err != nil {
		return remoteFailed("reading plugin named "+name, err)
	}
	if secret == nil || secret.Data == nil {
		printErr("No value found for plugin %q", name)
		return exitRemote
	}
	if c.flagField != "" {
		return c.printField(secret.Data, c.flagField)
	}
	return c.outputData(secret.Data)
}

// ---- plugin list ----

type pluginListCommand struct {
	baseCommand
	flagDetailed bool
}

func (c *pluginListCommand) Synopsis() string { return "List all available plugins in the catalog" }

func (c *pluginListCommand) Help() string {
	return helpText(`
Usage: ward plugin list [options] [TYPE]

  Lists the plugins in the catalog, all of them or those of TYPE.

      $ ward plugin list
      $ ward plugin list -detailed secret
`, c.flags())
}

func (c *pluginListCommand) flags() *flag.FlagSet {
	fs := c.flagSet("plugin list", withFormat)
	fs.BoolVar(&c.flagDetailed, "detailed", false, "Also show whether each plugin is builtin and its deprecation status.")
	return fs
}

// pluginEntry is one row of the catalog listing.
type pluginEntry struct {
	name, typ, version, builtin, deprecation string
}

func (c *pluginListCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 0, 1) {
		return exitLocal
	}
	filter := ""
	if len(args) == 1 {
		filter = strings.TrimSpace(args[0])
		if !checkPluginType(filter) {
			return exitLocal
		}
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	secret, err := client.Logical().ReadWithContext(context.Background(), "sys/plugins/catalog")
	if err != nil {
		return remoteFailed("listing available plugins", err)
	}
	if secret == nil || secret.Data == nil {
		printErr("Error listing available plugins: empty reply from the server")
		return exitRemote
	}
	entries := catalogEntries(secret.Data, filter)

	if c.jsonOutput() {
		out := map[string]any{}
		for k, v := range secret.Data {
			if filter == "" || k == filter {
				out[k] = v
			}
		}
		detailed, _ := secret.Data["detailed"].([]any)
		if filter != "" && detailed != nil {
			var kept []any
			for _, d := range detailed {
				if m, _ := d.(map[string]any); m != nil && m["type"] == filter {
					kept = append(kept, d)
				}
			}
			out["detailed"] = kept
		}
		return printJSON(out)
	}

	header := []string{"Name", "Type", "Version"}
	if filter != "" {
		header = []string{"Name", "Version"}
	}
	if c.flagDetailed {
		header = append(header, "Builtin", "Deprecation Status")
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		row := []string{e.name, e.typ, e.version}
		if filter != "" {
			row = []string{e.name, e.version}
		}
		if c.flagDetailed {
			row = append(row, e.builtin, e.deprecation)
		}
		rows = append(rows, row)
	}
	printTable(header, rows)
	return exitOK
}

// catalogEntries reads the catalog reply: data.detailed when the server
// sends it, else the per-type name lists (data.secret, data.auth, …).
func catalogEntries(data map[string]any, filter string) []pluginEntry {
	var entries []pluginEntry
	if detailed, ok := data["detailed"].([]any); ok {
		for _, d := range detailed {
			m, _ := d.(map[string]any)
			if m == nil {
				continue
			}
			str := func(k string) string {
				if v, ok := m[k]; ok && v != nil {
					return fmt.Sprint(v)
				}
				return ""
			}
			e := pluginEntry{name: str("name"), typ: str("type"), version: str("version"),
				builtin: str("builtin"), deprecation: str("deprecation_status")}
			if filter == "" || e.typ == filter {
				entries = append(entries, e)
			}
		}
	} else {
		for _, t := range pluginTypes {
			if filter != "" && t != filter {
				continue
			}
			names, _ := data[t].([]any)
			for _, n := range names {
				entries = append(entries, pluginEntry{name: fmt.Sprint(n), typ: t})
			}
		}
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].typ != entries[j].typ {
			return entries[i].typ < entries[j].typ
		}
		if entries[i].name != entries[j].name {
			return entries[i].name < entries[j].name
		}
		return entries[i].version < entries[j].version
	})
	return entries
}

// ---- plugin reload ----

type pluginReloadCommand struct {
	baseCommand
	flagPlugin string
	flagMounts listFlag
}

func (c *pluginReloadCommand) Synopsis() string { return "Reload mounted plugin backends" }

func (c *pluginReloadCommand) Help() string {
	return helpText(`
Usage: ward plugin reload [options] (-plugin=NAME | -mounts=PATH[,PATH…])

  Restarts the backends of a plugin: every mount running plugin NAME, or
  the listed mounts. Use it after re-registering a plugin with a new binary.

      $ ward plugin reload -plugin=my-plugin
      $ ward plugin reload -mounts=app1/,app2/
`, c.flags())
}

func (c *pluginReloadCommand) flags() *flag.FlagSet {
	fs := c.flagSet("plugin reload", noOutputFlags)
	c.flagMounts.splitCommas = true
	fs.StringVar(&c.flagPlugin, "plugin", "", "Name of the plugin whose mounts are reloaded.")
	fs.Var(&c.flagMounts, "mounts", "Mounts to reload; comma-separated or repeated.")
	return fs
}

func (c *pluginReloadCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 0, 0) {
		return exitLocal
	}
	switch {
	case c.flagPlugin == "" && len(c.flagMounts.values) == 0:
		printErr("One of -plugin or -mounts must be provided")
		return exitLocal
	case c.flagPlugin != "" && len(c.flagMounts.values) > 0:
		printErr("Only one of -plugin or -mounts may be provided")
		return exitLocal
	}
	body := map[string]any{}
	if c.flagPlugin != "" {
		body["plugin"] = c.flagPlugin
	} else {
		body["mounts"] = c.flagMounts.values
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	secret, err := send(context.Background(), client, "PUT", "sys/plugins/reload/backend", body)
	if err != nil {
		return remoteFailed("reloading plugin/mounts", err)
	}
	printWarnings(secret)
	if c.flagPlugin != "" {
		writeOut("Success! Reloaded plugin: " + c.flagPlugin + "\n")
	} else {
		writeOut(fmt.Sprintf("Success! Reloaded mounts: %s\n", c.flagMounts.values))
	}
	return exitOK
}
