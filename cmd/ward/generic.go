package main

import (
	"context"
	"flag"
)

// The generic commands map one-to-one to HTTP verbs on any /v1 path:
// read = GET, write = PUT, list = LIST, delete = DELETE.

// ---- read ----

type readCommand struct{ baseCommand }

func (c *readCommand) Synopsis() string { return "Read data and retrieve secrets" }

func (c *readCommand) Help() string {
	return helpText(`
Usage: ward read [options] PATH [KEY=VALUE…]

  Reads the data at PATH (HTTP GET /v1/PATH). KEY=VALUE pairs are sent as
  query parameters.

      $ ward read secret/data/app/db
      $ ward read -field=policy sys/policies/acl/default

  With -wrap-ttl the reply is a wrapping token instead of the data; whoever
  holds it gets the data once with 'ward unwrap':

      $ ward read -wrap-ttl=5m -field=wrapping_token secret/data/app/db
`, c.flags())
}

func (c *readCommand) flags() *flag.FlagSet {
	return c.flagSet("read", withFormat|withField|withWrapTTL)
}

func (c *readCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, -1)
	if code != exitOK {
		return code
	}
	params, err := parseKVArgs(stdin, args[1:])
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	p := sanitizePath(args[0])
	secret, err := client.Logical().ReadWithDataWithContext(context.Background(), p, stringsToQuery(params))
	if err != nil {
		return remoteFailed("reading "+p, err)
	}
	if secret == nil {
		printErr("No value found at %s", p)
		return exitRemote
	}
	if c.flagField != "" {
		return c.printField(secret, c.flagField)
	}
	return c.outputSecret(secret)
}

// ---- write ----

type writeCommand struct {
	baseCommand
	flagForce bool
}

func (c *writeCommand) Synopsis() string { return "Write data, configuration, and secrets" }

func (c *writeCommand) Help() string {
	return helpText(`
Usage: ward write [options] PATH [DATA]

  Writes DATA to PATH (HTTP PUT /v1/PATH). DATA is key=value pairs; a value
  of @FILE reads the file, a value of - reads stdin, and a lone - reads a
  JSON object from stdin. Use -force to write with no data.

      $ ward write sys/policies/acl/ro policy=@ro.hcl
      $ ward write -force transit/keys/k1
      $ ward write -wrap-ttl=60s -f auth/approle/role/ci/secret-id
`, c.flags())
}

func (c *writeCommand) flags() *flag.FlagSet {
	fs := c.flagSet("write", withFormat|withField|withWrapTTL)
	fs.BoolVar(&c.flagForce, "force", false, "Allow the write with no data.")
	fs.BoolVar(&c.flagForce, "f", false, "Alias for -force.")
	return fs
}

func (c *writeCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 1, -1) {
		return exitLocal
	}
	if len(args) == 1 && !c.flagForce {
		printErr("Must supply data or use -force")
		return exitLocal
	}
	data, err := parseKVArgs(stdin, args[1:])
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	p := sanitizePath(args[0])
	secret, err := client.Logical().WriteWithContext(context.Background(), p, data)
	if err != nil {
		return remoteFailed("writing data to "+p, err)
	}
	if secret == nil {
		if !c.jsonOutput() {
			writeOut("Success! Data written to: " + p + "\n")
		}
		return exitOK
	}
	if c.flagField != "" {
		return c.printField(secret, c.flagField)
	}
	return c.outputSecret(secret)
}

// ---- list ----

type listCommand struct{ baseCommand }

func (c *listCommand) Synopsis() string { return "List data or secrets" }

func (c *listCommand) Help() string {
	return helpText(`
Usage: ward list [options] PATH

  Lists the keys at PATH (HTTP LIST /v1/PATH).

      $ ward list secret/metadata/app
`, c.flags())
}

func (c *listCommand) flags() *flag.FlagSet { return c.flagSet("list", withFormat|withWrapTTL) }

func (c *listCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	p := sanitizePath(args[0])
	secret, err := list(context.Background(), client, p)
	if err != nil {
		return remoteFailed("listing "+p, err)
	}
	if secret == nil {
		printErr("No value found at %s", p)
		return exitRemote
	}
	if secret.WrapInfo != nil {
		return c.outputSecret(secret)
	}
	return c.outputKeys(secret, p)
}

// ---- delete ----

type deleteCommand struct{ baseCommand }

func (c *deleteCommand) Synopsis() string { return "Delete secrets and configuration" }

func (c *deleteCommand) Help() string {
	return helpText(`
Usage: ward delete [options] PATH [KEY=VALUE…]

  Deletes the data at PATH (HTTP DELETE /v1/PATH). KEY=VALUE pairs are sent
  as query parameters.

      $ ward delete secret/data/app/db
`, c.flags())
}

func (c *deleteCommand) flags() *flag.FlagSet { return c.flagSet("delete", noOutputFlags) }

func (c *deleteCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, -1)
	if code != exitOK {
		return code
	}
	params, err := parseKVArgs(stdin, args[1:])
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	p := sanitizePath(args[0])
	secret, err := client.Logical().DeleteWithDataWithContext(context.Background(), p, stringsToQuery(params))
	if err != nil {
		return remoteFailed("deleting "+p, err)
	}
	printWarnings(secret)
	writeOut("Success! Data deleted (if it existed) at: " + p + "\n")
	return exitOK
}
