package main

import (
	"fmt"
	"sort"
	"strings"

	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

type pluginExecCommand struct{}

func (c *pluginExecCommand) Synopsis() string { return "Run a builtin plugin (started by the server)" }

func (c *pluginExecCommand) Help() string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return `Usage: ward plugin exec NAME

  Serves the builtin plugin NAME over the plugin protocol. The server runs
  this itself, out of process, for every builtin mount; it is not meant to
  be run by hand.

  Builtin plugins: ` + strings.Join(names, ", ")
}

func (c *pluginExecCommand) Run(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, c.Help())
		return 2
	}
	opts, ok := builtins[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "Error: no builtin plugin named %q\n", args[0])
		return 2
	}
	setGCPercent()
	sdkplugin.Serve(opts)
	return 0
}
