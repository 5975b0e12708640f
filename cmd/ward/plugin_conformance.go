package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/wardproject/ward/conformance"
	"github.com/wardproject/ward/sdk/logical"
)

// Exit codes of `ward plugin conformance`: 1 is a local error as for every
// command (flags, files, a plugin that cannot be found); a plugin that
// does not conform gets its own code.
const exitNonConformant = 2

type pluginConformanceCommand struct {
	flagType    string
	flagJSON    bool
	flagJUnit   string
	flagFixture string
	flagTimeout time.Duration
	flagLog     string
	flagArgs    listFlag
	flagEnv     listFlag
}

func (c *pluginConformanceCommand) Synopsis() string {
	return "Check that a plugin conforms to the plugin contract"
}

func (c *pluginConformanceCommand) Help() string {
	return helpText(`
Usage: ward plugin conformance [options] PLUGIN

  Runs the plugin conformance suite `+conformance.Version+` (for plugins of SDK v1)
  against PLUGIN in a harness kernel; no server is needed. PLUGIN is a
  plugin executable (go-plugin), a .wasm module, or the name of a builtin
  plugin (run by re-executing this binary, as the server runs it).

  The checks of the core profile always run, and those of every profile
  the plugin declares in its capabilities: kv, leasing, auth-login.
  Profile checks that need credentials or a service read them from
  -fixture; builtin plugins come with theirs (the database plugin's needs
  PGHOST, PGPORT, PGUSER and PGPASSWORD). See docs/conformance.md.

      $ ward plugin conformance ./my-plugin
      $ ward plugin conformance -type=auth -fixture=login.json -junit=report.xml ./my-auth
      $ ward plugin conformance -json kv

  Exit code 0: the plugin conforms. 2: a check failed or was blocked, or
  a check of a declared profile was skipped. 1: the suite could not run.
`, c.flags())
}

func (c *pluginConformanceCommand) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("plugin conformance", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.flagType, "type", "", `Expected plugin type, "secret" or "auth" (default: whatever the plugin says).`)
	fs.BoolVar(&c.flagJSON, "json", false, "Print the report as JSON instead of text.")
	fs.StringVar(&c.flagJUnit, "junit", "", "Also write the report as JUnit XML to this file.")
	fs.StringVar(&c.flagFixture, "fixture", "", "Fixture file (JSON) for the profile checks; ${NAME} is read from the environment.")
	fs.DurationVar(&c.flagTimeout, "timeout", 10*time.Second, "Bound on every request sent to the plugin.")
	fs.StringVar(&c.flagLog, "log", "", "Write the plugin's log (and go-plugin's) to this file.")
	fs.Var(&c.flagArgs, "args", "Argument passed to a plugin executable; repeatable, one argument each.")
	fs.Var(&c.flagEnv, "env", "Environment variable KEY=VALUE for a plugin executable (it gets no other); repeatable.")
	return fs
}

func (c *pluginConformanceCommand) Run(args []string) int {
	fs := c.flags()
	if err := fs.Parse(args); err != nil {
		printErr("%s", err)
		printErr("Run 'ward plugin conformance -h' for usage.")
		return exitLocal
	}
	if fs.NArg() != 1 {
		printErr("Exactly one PLUGIN is required (got %d arguments)", fs.NArg())
		return exitLocal
	}
	switch c.flagType {
	case "", string(logical.TypeSecret), string(logical.TypeAuth):
	default:
		printErr("Invalid -type %q (expected \"secret\" or \"auth\")", c.flagType)
		return exitLocal
	}
	for _, e := range c.flagEnv.values {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			printErr("-env values must be KEY=VALUE")
			return exitLocal
		}
	}
	var log io.Writer
	if c.flagLog != "" {
		f, err := os.OpenFile(c.flagLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			printErr("Error opening -log file: %s", err)
			return exitLocal
		}
		defer f.Close()
		log = f
	}
	opts := conformance.Options{Type: logical.BackendType(c.flagType), RequestTimeout: c.flagTimeout}
	if c.flagFixture != "" {
		b, err := os.ReadFile(c.flagFixture)
		if err == nil {
			opts.Fixture, err = conformance.ParseFixture(b, os.LookupEnv)
		}
		if err != nil {
			printErr("Error reading -fixture: %s", err)
			return exitLocal
		}
	}
	target, err := c.target(fs.Arg(0), log, &opts)
	if err != nil {
		printErr("Error: %s", err)
		return exitLocal
	}
	ctx := context.Background()
	rep := conformance.Run(ctx, target, opts)
	target.Close(ctx)

	if c.flagJUnit != "" {
		var b bytes.Buffer
		if err := rep.WriteJUnit(&b); err == nil {
			err = os.WriteFile(c.flagJUnit, b.Bytes(), 0o644)
		}
		if err != nil {
			printErr("Error writing -junit file: %s", err)
			return exitLocal
		}
	}
	if c.flagJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		printErr("Error writing the report: %s", err)
		return exitLocal
	}
	if !rep.Passed() {
		return exitNonConformant
	}
	return exitOK
}

// target resolves PLUGIN: a builtin's name (when no such file exists), a
// WASM module, or an executable. A builtin brings its fixture unless one
// was given.
func (c *pluginConformanceCommand) target(plugin string, log io.Writer, opts *conformance.Options) (conformance.Target, error) {
	if _, err := os.Stat(plugin); err != nil && !strings.ContainsRune(plugin, os.PathSeparator) {
		b, ok := builtins[plugin]
		if !ok {
			return nil, fmt.Errorf("%q is neither a file nor a builtin plugin (builtins: %s)", plugin, builtinNames())
		}
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("locate the ward executable: %w", err)
		}
		opts.Source = "builtin " + plugin
		if opts.Fixture == nil {
			f, ok, err := conformance.BuiltinFixture(plugin)
			switch {
			case err != nil:
				printErr("Warning: the fixture of builtin %s is unusable (%s); the profile checks that need it will fail", plugin, err)
			case ok:
				opts.Fixture = f
			}
		}
		if opts.Type == "" {
			opts.Type = b.Type
		}
		return conformance.NewGoPlugin(conformance.GoPluginConfig{Command: exe, Args: []string{"plugin", "exec", plugin}, Log: log})
	} else if err != nil {
		return nil, err
	}
	opts.Source = plugin
	head := make([]byte, 4)
	if f, err := os.Open(plugin); err == nil {
		_, _ = io.ReadFull(f, head)
		f.Close()
	}
	if strings.HasSuffix(plugin, ".wasm") || bytes.Equal(head, []byte("\x00asm")) {
		if len(c.flagArgs.values) > 0 || len(c.flagEnv.values) > 0 {
			return nil, fmt.Errorf("a WASM module takes no -args or -env")
		}
		bin, err := os.ReadFile(plugin)
		if err != nil {
			return nil, err
		}
		return conformance.NewWasm(conformance.WasmConfig{Module: bin, Log: log})
	}
	return conformance.NewGoPlugin(conformance.GoPluginConfig{Command: plugin, Args: c.flagArgs.values, Env: c.flagEnv.values, Log: log})
}

func builtinNames() string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
