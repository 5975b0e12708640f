package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
)

var secretsGroup = &groupCommand{
	synopsis: "Interact with secrets engines",
	help: `Usage: ward secrets <subcommand> [options] [args]

  Enables, disables, lists and tunes secrets engines (the mounts under
  sys/mounts).

      $ ward secrets enable -path=secret -version=2 kv
      $ ward secrets list -detailed
`,
}

// ---- secrets enable ----

type secretsEnableCommand struct {
	baseCommand
	flagPath            string
	flagDescription     string
	flagVersion         int
	flagDefaultLeaseTTL durationFlag
	flagMaxLeaseTTL     durationFlag
	flagOptions         mapFlag
}

func (c *secretsEnableCommand) Synopsis() string { return "Enable a secrets engine" }

func (c *secretsEnableCommand) Help() string {
	return helpText(`
Usage: ward secrets enable [options] TYPE

  Mounts a secrets engine of TYPE at -path (default: TYPE). "kv-v2" is
  short for "kv" with -version=2.

      $ ward secrets enable -path=secret -version=2 kv
      $ ward secrets enable -default-lease-ttl=1h transit
`, c.flags())
}

func (c *secretsEnableCommand) flags() *flag.FlagSet {
	fs := c.flagSet("secrets enable", noOutputFlags)
	fs.StringVar(&c.flagPath, "path", "", "Mount path (default: the engine type).")
	fs.StringVar(&c.flagDescription, "description", "", "Human-readable description of the mount.")
	fs.IntVar(&c.flagVersion, "version", 0, `Engine version, sent as options.version (e.g. 2 for KV v2).`)
	fs.Var(&c.flagDefaultLeaseTTL, "default-lease-ttl", "Default lease TTL of the mount (e.g. 1h, 3600).")
	fs.Var(&c.flagMaxLeaseTTL, "max-lease-ttl", "Maximum lease TTL of the mount.")
	fs.Var(&c.flagOptions, "options", "Engine option as key=value; repeatable.")
	return fs
}

func (c *secretsEnableCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	engine := strings.TrimSpace(args[0])
	version := c.flagVersion
	if engine == "kv-v2" {
		engine, version = "kv", 2
	}
	mountPath := sanitizePath(c.flagPath)
	if mountPath == "" {
		mountPath = engine
	}

	body := map[string]any{"type": engine}
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

	if _, err := send(context.Background(), client, "POST", "sys/mounts/"+mountPath, body); err != nil {
		return remoteFailed("enabling", err)
	}
	writeOut(fmt.Sprintf("Success! Enabled the %s secrets engine at: %s/\n", engine, mountPath))
	return exitOK
}

// ---- secrets disable ----

type secretsDisableCommand struct{ baseCommand }

func (c *secretsDisableCommand) Synopsis() string { return "Disable a secrets engine" }

func (c *secretsDisableCommand) Help() string {
	return helpText(`
Usage: ward secrets disable [options] PATH

  Unmounts the secrets engine at PATH. All its secrets are revoked and its
  data is deleted.
`, c.flags())
}

func (c *secretsDisableCommand) flags() *flag.FlagSet {
	return c.flagSet("secrets disable", noOutputFlags)
}

func (c *secretsDisableCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	mountPath := sanitizePath(args[0])
	if err := client.Sys().UnmountWithContext(context.Background(), mountPath); err != nil {
		return remoteFailed("disabling secrets engine at "+mountPath+"/", err)
	}
	writeOut("Success! Disabled the secrets engine (if it existed) at: " + mountPath + "/\n")
	return exitOK
}

// ---- secrets list ----

type secretsListCommand struct {
	baseCommand
	flagDetailed bool
}

func (c *secretsListCommand) Synopsis() string { return "List enabled secrets engines" }

func (c *secretsListCommand) Help() string {
	return helpText(`
Usage: ward secrets list [options]

  Lists the mounted secrets engines; -detailed adds TTLs, options and more.
`, c.flags())
}

func (c *secretsListCommand) flags() *flag.FlagSet {
	fs := c.flagSet("secrets list", withFormat)
	fs.BoolVar(&c.flagDetailed, "detailed", false, "Show TTLs, options, UUIDs and versions.")
	return fs
}

func (c *secretsListCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	// The raw reply rather than Sys().ListMounts: nothing is lost in a
	// struct conversion, and -format=json prints what the server sent.
	secret, err := client.Logical().ReadWithContext(context.Background(), "sys/mounts")
	if err != nil {
		return remoteFailed("listing secrets engines", err)
	}
	if secret == nil || secret.Data == nil {
		printErr("Error listing secrets engines: empty reply from the server")
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

// ---- secrets tune ----

type secretsTuneCommand struct {
	baseCommand
	flagDefaultLeaseTTL durationFlag
	flagMaxLeaseTTL     durationFlag
	flagDescription     string
}

func (c *secretsTuneCommand) Synopsis() string { return "Tune a secrets engine configuration" }

func (c *secretsTuneCommand) Help() string {
	return helpText(`
Usage: ward secrets tune [options] PATH

  Changes the configuration of the secrets engine at PATH; only the flags
  given are changed.

      $ ward secrets tune -max-lease-ttl=24h transit
`, c.flags())
}

func (c *secretsTuneCommand) flags() *flag.FlagSet {
	fs := c.flagSet("secrets tune", noOutputFlags)
	fs.Var(&c.flagDefaultLeaseTTL, "default-lease-ttl", "Default lease TTL of the mount.")
	fs.Var(&c.flagMaxLeaseTTL, "max-lease-ttl", "Maximum lease TTL of the mount.")
	fs.StringVar(&c.flagDescription, "description", "", "New description of the mount.")
	return fs
}

func (c *secretsTuneCommand) Run(args []string) int {
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
	if len(body) == 0 {
		printErr("Nothing to tune: give at least one of -default-lease-ttl, -max-lease-ttl, -description")
		return exitLocal
	}
	mountPath := sanitizePath(args[0])
	if _, err := send(context.Background(), client, "POST", "sys/mounts/"+mountPath+"/tune", body); err != nil {
		return remoteFailed("tuning secrets engine "+mountPath+"/", err)
	}
	writeOut("Success! Tuned the secrets engine at: " + mountPath + "/\n")
	return exitOK
}
