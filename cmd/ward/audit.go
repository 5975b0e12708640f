package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/bgentry/speakeasy"
	"github.com/hashicorp/cli"
)

var auditGroup = &groupCommand{
	synopsis: "Interact with audit devices",
	help: `Usage: ward audit <subcommand> [options] [args]

  Lists, enables and disables audit devices (sys/audit), hashes a value as
  a device writes it (sys/audit-hash), and verifies audit log files
  against a device's signing key.

      $ ward audit enable file file_path=/var/log/ward/audit.log
      $ ward audit list -detailed
      $ ward audit verify -device=file /var/log/ward/audit.log
`,
}

var (
	_ cli.Command = (*auditListCommand)(nil)
	_ cli.Command = (*auditEnableCommand)(nil)
	_ cli.Command = (*auditDisableCommand)(nil)
	_ cli.Command = (*auditHashCommand)(nil)
	_ cli.Command = (*auditVerifyCommand)(nil)
)

// auditAPIPath is the sys/audit path of the device at path (which may be
// given with or without its trailing slash).
func auditAPIPath(path string) string { return "sys/audit/" + sanitizePath(path) }

// ---- audit list ----

type auditListCommand struct {
	baseCommand
	flagDetailed bool
}

func (c *auditListCommand) Synopsis() string { return "List the enabled audit devices" }

func (c *auditListCommand) Help() string {
	return helpText(`
Usage: ward audit list [options]

  Lists the enabled audit devices; -detailed adds their replication, their
  options and whether the server's configuration file declares them.
  Prints "No audit devices are enabled." and exits 2 when there is none
  (as Vault does; -format=json prints {} and exits 0).

      $ ward audit list
      $ ward audit list -detailed
`, c.flags())
}

func (c *auditListCommand) flags() *flag.FlagSet {
	fs := c.flagSet("audit list", withFormat)
	fs.BoolVar(&c.flagDetailed, "detailed", false, "Show replication, options and where each device is declared.")
	return fs
}

func (c *auditListCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	secret, err := client.Logical().ReadWithContext(context.Background(), "sys/audit")
	if err != nil {
		return remoteFailed("listing audit devices", err)
	}
	data := map[string]any{}
	if secret != nil && secret.Data != nil {
		data = secret.Data
	}
	if c.jsonOutput() {
		return printJSON(data)
	}
	if len(data) == 0 {
		writeOut("No audit devices are enabled.\n")
		return exitRemote
	}

	paths := make([]string, 0, len(data))
	for p := range data {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	header := []string{"Path", "Type", "Description"}
	if c.flagDetailed {
		header = []string{"Path", "Type", "Description", "Replication", "Declared In Config", "Options"}
	}
	rows := make([][]string, 0, len(paths))
	for _, p := range paths {
		m, _ := data[p].(map[string]any)
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
			rows = append(rows, []string{p, str("type"), str("description")})
			continue
		}
		replication := "replicated"
		if local, _ := m["local"].(bool); local {
			replication = "local"
		}
		inConfig, _ := m["declared_in_config"].(bool)
		rows = append(rows, []string{p, str("type"), str("description"), replication,
			fmt.Sprint(inConfig), optionsString(m["options"])})
	}
	printTable(header, rows)
	return exitOK
}

// optionsString renders device options as Vault's audit list -detailed
// does, "k=v" separated by spaces, sorted so the output is stable.
func optionsString(v any) string {
	opts, _ := v.(map[string]any)
	parts := make([]string, 0, len(opts))
	for k, v := range opts {
		parts = append(parts, k+"="+fmt.Sprint(v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// ---- audit enable ----

type auditEnableCommand struct {
	baseCommand
	flagPath        string
	flagDescription string
}

func (c *auditEnableCommand) Synopsis() string { return "Enable an audit device" }

func (c *auditEnableCommand) Help() string {
	return helpText(`
Usage: ward audit enable [options] TYPE [KEY=VALUE…]

  Enables an audit device of TYPE ("file" or "socket") at -path (default:
  TYPE), configured by the KEY=VALUE options that follow, as in Vault:

      $ ward audit enable file file_path=/var/log/ward/audit.log
      $ ward audit enable -path=collector socket address=10.0.0.5:9090 socket_type=tcp

  File options: file_path (required; "stdout" for standard output), mode,
  fsync. Socket options: address (required), socket_type, write_timeout,
  queue_size. All devices: log_raw, hmac_accessor, checkpoint_every,
  checkpoint_interval. A value of @FILE reads the file and a value of -
  reads stdin, as in "ward write".

  The server refuses this (HTTP 400) unless its configuration allows audit
  devices to be created through the API; devices are otherwise declared in
  its configuration file.
`, c.flags())
}

func (c *auditEnableCommand) flags() *flag.FlagSet {
	fs := c.flagSet("audit enable", noOutputFlags)
	fs.StringVar(&c.flagPath, "path", "", "Path of the device, unique among audit devices (default: the device type).")
	fs.StringVar(&c.flagDescription, "description", "", "Human-readable description of the device.")
	return fs
}

func (c *auditEnableCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok {
		return exitLocal
	}
	if len(args) == 0 || strings.TrimSpace(args[0]) == "" {
		printErr("Error enabling audit device: audit type missing. Valid types include 'file' and 'socket'.")
		return exitLocal
	}
	typ := strings.TrimSpace(args[0])
	devicePath := sanitizePath(c.flagPath)
	if devicePath == "" {
		devicePath = sanitizePath(typ)
	}
	data, err := parseKVArgs(stdin, args[1:])
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	options, err := optionStrings(data)
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}

	body := map[string]any{"type": typ}
	if c.flagDescription != "" {
		body["description"] = c.flagDescription
	}
	if len(options) > 0 {
		body["options"] = options
	}
	if _, err := send(context.Background(), client, "PUT", auditAPIPath(devicePath), body); err != nil {
		return remoteFailed("enabling audit device", err)
	}
	writeOut(fmt.Sprintf("Success! Enabled the %s audit device at: %s/\n", typ, devicePath))
	return exitOK
}

// optionStrings converts parsed KEY=VALUE data into device options, which
// are strings. A key given twice, or an option read from a JSON object
// that is not a string, number or boolean, is an error (naming the key,
// never the value).
func optionStrings(data map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(data))
	for k, v := range data {
		switch v := v.(type) {
		case string:
			out[k] = v
		case json.Number, bool:
			out[k] = fmt.Sprint(v)
		case []any:
			return nil, fmt.Errorf("option %s is given more than once", k)
		default:
			return nil, fmt.Errorf("option %s must be a string", k)
		}
	}
	return out, nil
}

// ---- audit disable ----

type auditDisableCommand struct{ baseCommand }

func (c *auditDisableCommand) Synopsis() string { return "Disable an audit device" }

func (c *auditDisableCommand) Help() string {
	return helpText(`
Usage: ward audit disable [options] PATH

  Disables the audit device at PATH. The device writes a final checkpoint
  and closes its output; its log files are left where they are.

      $ ward audit disable file
`, c.flags())
}

func (c *auditDisableCommand) flags() *flag.FlagSet {
	return c.flagSet("audit disable", noOutputFlags)
}

func (c *auditDisableCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	devicePath := sanitizePath(args[0])
	if devicePath == "" {
		printErr("Missing audit device path")
		return exitLocal
	}
	if _, err := send(context.Background(), client, "DELETE", auditAPIPath(devicePath), nil); err != nil {
		return remoteFailed("disabling audit device", err)
	}
	writeOut("Success! Disabled audit device (if it was enabled) at: " + devicePath + "/\n")
	return exitOK
}

// ---- audit hash ----

type auditHashCommand struct{ baseCommand }

func (c *auditHashCommand) Synopsis() string { return "Hash a value as an audit device writes it" }

func (c *auditHashCommand) Help() string {
	return helpText(`
Usage: ward audit hash [options] PATH INPUT

  Prints INPUT as the audit device at PATH writes it in its log
  ("hmac-sha256:…", under the device's own key), so a log can be searched
  for a known token or secret value (sys/audit-hash).

  With INPUT "-" the value is read from stdin instead of the command line,
  so it stays out of the shell history: on a terminal it is prompted for
  without echo; from a pipe, all of stdin is read and one trailing newline
  is removed (so "echo" works). To hash a value that ends with a newline,
  use: ward write sys/audit-hash/PATH input=@FILE

      $ ward audit hash file -
      $ grep "$(ward audit hash file - < token.txt)" /var/log/ward/audit.log
`, c.flags())
}

func (c *auditHashCommand) flags() *flag.FlagSet { return c.flagSet("audit hash", withFormat) }

func (c *auditHashCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 2, 2) {
		return exitLocal
	}
	devicePath := sanitizePath(args[0])
	if devicePath == "" {
		printErr("Missing audit device path")
		return exitLocal
	}
	input := args[1]
	if input == "-" {
		var err error
		if input, err = readHashInput(); err != nil {
			printErr("Error reading the input from stdin: %s", err)
			return exitLocal
		}
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	secret, err := send(context.Background(), client, "POST", "sys/audit-hash/"+devicePath,
		map[string]any{"input": input})
	if err != nil {
		return remoteFailed("hashing", err)
	}
	var hash string
	if secret != nil {
		hash, _ = secret.Data["hash"].(string)
	}
	if hash == "" {
		printErr("Error hashing: the server's reply has no hash")
		return exitRemote
	}
	if c.jsonOutput() {
		return printJSON(map[string]any{"hash": hash})
	}
	writeOut(hash + "\n")
	return exitOK
}

// readHashInput reads the value to hash from stdin: without echo from a
// terminal, else all of it minus one trailing newline.
func readHashInput() (string, error) {
	if f, ok := stdin.(*os.File); ok && f == os.Stdin && isTerminal(f) {
		return speakeasy.FAsk(stderr, "Input to hash (will be hidden): ")
	}
	raw, err := io.ReadAll(stdin)
	if err != nil {
		return "", err
	}
	s := string(raw)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", errors.New("nothing to hash (stdin was empty)")
	}
	return s, nil
}
