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

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/printer"
)

var policyGroup = &groupCommand{
	synopsis: "Interact with policies",
	help: `Usage: ward policy <subcommand> [options] [args]

  Lists, reads, writes, deletes and formats ACL policies (the policies
  under sys/policies/acl). Policies are written in HCL or JSON, and a path
  rule may carry a CEL condition.

      $ ward policy list
      $ ward policy write my-policy ./my-policy.hcl
      $ ward policy read my-policy
`,
}

// policyPath is the API path of the ACL policy name.
func policyPath(name string) string { return "sys/policies/acl/" + name }

// policyName normalizes a policy name as the server does (and as the Vault
// CLI does): spaces trimmed, lower case.
func policyName(arg string) string { return strings.ToLower(strings.TrimSpace(arg)) }

// ---- policy list ----

type policyListCommand struct{ baseCommand }

func (c *policyListCommand) Synopsis() string { return "List the installed policies" }

func (c *policyListCommand) Help() string {
	return helpText(`
Usage: ward policy list [options]

  Lists the names of the ACL policies, one per line.

      $ ward policy list
      $ ward policy list -format=json
`, c.flags())
}

func (c *policyListCommand) flags() *flag.FlagSet { return c.flagSet("policy list", withFormat) }

func (c *policyListCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	secret, err := list(context.Background(), client, "sys/policies/acl")
	if err != nil {
		return remoteFailed("listing policies", err)
	}
	names := []string{}
	if secret != nil {
		raw, _ := secret.Data["keys"].([]any)
		for _, k := range raw {
			names = append(names, fmt.Sprint(k))
		}
	}
	if c.jsonOutput() {
		return printJSON(names)
	}
	printWarnings(secret)
	sort.Strings(names)
	for _, n := range names {
		writeOut(n + "\n")
	}
	return exitOK
}

// ---- policy read ----

type policyReadCommand struct{ baseCommand }

func (c *policyReadCommand) Synopsis() string { return "Print the contents of a policy" }

func (c *policyReadCommand) Help() string {
	return helpText(`
Usage: ward policy read [options] NAME

  Prints the text of the ACL policy NAME as it was written. With
  -format=json, prints {"policy": TEXT}.

      $ ward policy read my-policy
      $ ward policy read default > default.hcl
`, c.flags())
}

func (c *policyReadCommand) flags() *flag.FlagSet { return c.flagSet("policy read", withFormat) }

func (c *policyReadCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	name := policyName(args[0])
	secret, err := client.Logical().ReadWithContext(context.Background(), policyPath(name))
	if err != nil {
		return remoteFailed("reading policy named "+name, err)
	}
	if secret == nil || secret.Data == nil {
		printErr("No policy named: %s", name)
		return exitRemote
	}
	text, ok := secret.Data["policy"].(string)
	if !ok {
		// Older servers answered with the legacy field name.
		text, ok = secret.Data["rules"].(string)
	}
	if !ok {
		printErr("Error reading policy named %s: the reply has no policy text", name)
		return exitRemote
	}
	if c.jsonOutput() {
		return printJSON(map[string]any{"policy": text})
	}
	printWarnings(secret)
	printRaw(text)
	return exitOK
}

// ---- policy write ----

type policyWriteCommand struct{ baseCommand }

func (c *policyWriteCommand) Synopsis() string { return "Upload a policy" }

func (c *policyWriteCommand) Help() string {
	return helpText(`
Usage: ward policy write [options] NAME PATH

  Uploads the policy in the file PATH (HCL or JSON) as the ACL policy NAME,
  replacing any policy of that name. PATH "-" reads the policy from stdin.
  The server checks the policy, CEL conditions included, and refuses one
  that does not parse.

      $ ward policy write my-policy ./my-policy.hcl
      $ cat my-policy.hcl | ward policy write my-policy -
`, c.flags())
}

func (c *policyWriteCommand) flags() *flag.FlagSet { return c.flagSet("policy write", noOutputFlags) }

func (c *policyWriteCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 2, 2) {
		return exitLocal
	}
	name, src := policyName(args[0]), strings.TrimSpace(args[1])

	var raw []byte
	var err error
	if src == "-" {
		if stdin == nil {
			printErr("Error reading policy: stdin is not available")
			return exitLocal
		}
		if raw, err = io.ReadAll(stdin); err != nil {
			printErr("Error reading policy: %s", err)
			return exitLocal
		}
	} else if raw, err = os.ReadFile(src); err != nil {
		printErr("Error opening policy file: %s", err)
		return exitLocal
	}

	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	body := map[string]any{"policy": string(raw)}
	if _, err := client.Logical().WriteWithContext(context.Background(), policyPath(name), body); err != nil {
		return remoteFailed("uploading policy", err)
	}
	writeOut("Success! Uploaded policy: " + name + "\n")
	return exitOK
}

// ---- policy delete ----

type policyDeleteCommand struct{ baseCommand }

func (c *policyDeleteCommand) Synopsis() string { return "Delete a policy by name" }

func (c *policyDeleteCommand) Help() string {
	return helpText(`
Usage: ward policy delete [options] NAME

  Deletes the ACL policy NAME. Tokens that reference it keep the name but
  lose the permissions it granted. The "root" and "default" policies
  cannot be deleted.

      $ ward policy delete my-policy
`, c.flags())
}

func (c *policyDeleteCommand) flags() *flag.FlagSet { return c.flagSet("policy delete", noOutputFlags) }

func (c *policyDeleteCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	name := policyName(args[0])
	if _, err := client.Logical().DeleteWithContext(context.Background(), policyPath(name)); err != nil {
		return remoteFailed("deleting "+name, err)
	}
	writeOut("Success! Deleted policy: " + name + "\n")
	return exitOK
}

// ---- policy fmt ----

type policyFmtCommand struct{ baseCommand }

func (c *policyFmtCommand) Synopsis() string { return "Format a policy file" }

func (c *policyFmtCommand) Help() string {
	return helpText(`
Usage: ward policy fmt PATH

  Rewrites the HCL policy file PATH in canonical form (indentation,
  alignment). A file that does not parse is left unchanged. This runs
  locally and does not contact the server; the server checks the rest
  (capabilities, CEL conditions) on "ward policy write".

      $ ward policy fmt my-policy.hcl
`, c.flags())
}

// flags has no HTTP or output flag: fmt never contacts the server.
func (c *policyFmtCommand) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("policy fmt", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func (c *policyFmtCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 1, 1) {
		return exitLocal
	}
	path := strings.TrimSpace(args[0])
	raw, err := os.ReadFile(path)
	if err != nil {
		printErr("Error reading source file: %s", err)
		return exitLocal
	}
	formatted, err := formatPolicy(raw)
	if err != nil {
		printErr("Error parsing policy %s: %s", path, err)
		return exitLocal
	}
	if !bytes.Equal(formatted, raw) {
		if err := os.WriteFile(path, formatted, 0o644); err != nil {
			printErr("Error writing result: %s", err)
			return exitLocal
		}
	}
	writeOut("Success! Formatted policy: " + path + "\n")
	return exitOK
}

// formatPolicy parses src as HCL (or JSON) and prints it in canonical HCL
// form with a trailing newline.
func formatPolicy(src []byte) ([]byte, error) {
	root, err := hcl.Parse(string(src))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := printer.Fprint(&buf, root); err != nil {
		return nil, fmt.Errorf("printing: %w", err)
	}
	buf.WriteString("\n")
	return buf.Bytes(), nil
}
