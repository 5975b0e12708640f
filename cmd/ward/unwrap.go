package main

import (
	"context"
	"flag"
	"strings"
)

// ---- unwrap ----

type unwrapCommand struct{ baseCommand }

func (c *unwrapCommand) Synopsis() string { return "Unwrap a wrapped secret" }

func (c *unwrapCommand) Help() string {
	return helpText(`
Usage: ward unwrap [options] [TOKEN]

  Returns the response a wrapping token holds, as the wrapped request
  would have answered it (sys/wrapping/unwrap). The wrapping token is used
  up: a second unwrap fails. With no TOKEN, the token in use (WARD_TOKEN,
  VAULT_TOKEN, ~/.ward-token) is the wrapping token.

      $ ward unwrap s.3Gw8xXNM4EWdLfLbSKqj2T8B
      $ WARD_TOKEN=s.3Gw8xXNM4EWdLfLbSKqj2T8B ward unwrap -field=secret_id
`, c.flags())
}

func (c *unwrapCommand) flags() *flag.FlagSet { return c.flagSet("unwrap", withFormat|withField) }

func (c *unwrapCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 0, 1)
	if code != exitOK {
		return code
	}
	// A retried unwrap whose first attempt got through would fail, and
	// the response would be lost: never retry.
	client.SetMaxRetries(0)
	var tok string
	if len(args) == 1 {
		tok = strings.TrimSpace(args[0])
	}
	secret, err := client.Logical().UnwrapWithContext(context.Background(), tok)
	if err != nil {
		return remoteFailed("unwrapping", err)
	}
	if secret == nil {
		printErr("Could not find wrapped response")
		return exitRemote
	}
	if c.flagField != "" {
		return c.printField(secret, c.flagField)
	}
	return c.outputSecret(secret)
}
