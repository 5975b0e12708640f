package main

import (
	"context"
	"flag"
	"strings"

	"github.com/openbao/openbao/api/v2"
)

var tokenGroup = &groupCommand{
	synopsis: "Interact with tokens",
	help: `Usage: ward token <subcommand> [options] [args]

  Creates, inspects, renews and revokes tokens.

      $ ward token create -policy=ro -ttl=1h
      $ ward token lookup -accessor ACCESSOR
      $ ward token revoke -self
`,
}

// ---- token create ----

type tokenCreateCommand struct {
	baseCommand
	flagPolicies       listFlag
	flagTTL            durationFlag
	flagExplicitMaxTTL durationFlag
	flagPeriod         durationFlag
	flagRenewable      bool
	flagOrphan         bool
	flagDisplayName    string
	flagMetadata       mapFlag
	flagUseLimit       int
	flagNoDefault      bool
	flagType           string
	flagRole           string
}

func (c *tokenCreateCommand) Synopsis() string { return "Create a new token" }

func (c *tokenCreateCommand) Help() string {
	return helpText(`
Usage: ward token create [options]

  Creates a token, by default a child of the token making the request.
  The new token is printed on stdout.

      $ ward token create -policy=ro -policy=audit -ttl=1h -display-name=ci
      $ ward token create -field=token -policy=ro
`, c.flags())
}

func (c *tokenCreateCommand) flags() *flag.FlagSet {
	fs := c.flagSet("token create", withFormat|withField)
	c.flagPolicies.splitCommas = true
	fs.Var(&c.flagPolicies, "policy", "Policy to attach; repeatable or comma-separated.")
	fs.Var(&c.flagTTL, "ttl", "Initial TTL (e.g. 30m, 1h, 3600).")
	fs.Var(&c.flagExplicitMaxTTL, "explicit-max-ttl", "Hard maximum lifetime, even across renewals.")
	fs.Var(&c.flagPeriod, "period", "Make a periodic token, renewable for this long at a time.")
	fs.BoolVar(&c.flagRenewable, "renewable", true, "Allow the token to be renewed (default true; -renewable=false to disable).")
	fs.BoolVar(&c.flagOrphan, "orphan", false, "Create the token with no parent (needs root or sudo).")
	fs.StringVar(&c.flagDisplayName, "display-name", "", "Name recorded with the token.")
	fs.Var(&c.flagMetadata, "metadata", "Metadata as key=value; repeatable.")
	fs.IntVar(&c.flagUseLimit, "use-limit", 0, "Number of uses before the token is revoked (0: unlimited).")
	fs.BoolVar(&c.flagNoDefault, "no-default-policy", false, `Do not attach the "default" policy.`)
	fs.StringVar(&c.flagType, "type", "", `Token type: "service" or "batch" (default: the server's).`)
	fs.StringVar(&c.flagRole, "role", "", "Create the token against this token role.")
	return fs
}

func (c *tokenCreateCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	renewable := c.flagRenewable
	if c.flagType == "batch" {
		renewable = false
	}
	req := &api.TokenCreateRequest{
		Policies:        c.flagPolicies.values,
		Metadata:        c.flagMetadata.values,
		NoParent:        c.flagOrphan,
		NoDefaultPolicy: c.flagNoDefault,
		DisplayName:     c.flagDisplayName,
		NumUses:         c.flagUseLimit,
		Renewable:       &renewable,
		Type:            c.flagType,
	}
	if c.flagTTL.set {
		req.TTL = c.flagTTL.apiString()
	}
	if c.flagExplicitMaxTTL.set {
		req.ExplicitMaxTTL = c.flagExplicitMaxTTL.apiString()
	}
	if c.flagPeriod.set {
		req.Period = c.flagPeriod.apiString()
	}

	// A retried create whose first attempt reached the server would mint a
	// second token nobody sees; fail instead and let the operator decide.
	client.SetMaxRetries(0)
	ctx := context.Background()
	var secret *api.Secret
	var err error
	if c.flagRole != "" {
		secret, err = client.Auth().Token().CreateWithRoleWithContext(ctx, req, c.flagRole)
	} else {
		secret, err = client.Auth().Token().CreateWithContext(ctx, req)
	}
	if err != nil {
		return remoteFailed("creating token", err)
	}
	return c.showSecret(secret, "creating token")
}

// ---- token lookup ----

type tokenLookupCommand struct {
	baseCommand
	flagAccessor bool
}

func (c *tokenLookupCommand) Synopsis() string { return "Display information about a token" }

func (c *tokenLookupCommand) Help() string {
	return helpText(`
Usage: ward token lookup [options] [TOKEN | -accessor ACCESSOR]

  Shows the properties of TOKEN, of the token with the given accessor, or,
  with no argument, of the token in use.

      $ ward token lookup
      $ ward token lookup -accessor 8609694a-cdbc-db9b-d345-e782dbb562ed
`, c.flags())
}

func (c *tokenLookupCommand) flags() *flag.FlagSet {
	fs := c.flagSet("token lookup", withFormat|withField)
	fs.BoolVar(&c.flagAccessor, "accessor", false, "Treat the argument as an accessor instead of a token.")
	return fs
}

func (c *tokenLookupCommand) Run(args []string) int {
	fs := c.flags()
	args, ok := c.parse(fs, args)
	if !ok {
		return exitLocal
	}
	minArgs := 0
	if c.flagAccessor {
		minArgs = 1
	}
	if !checkArgs(args, minArgs, 1) {
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()
	var secret *api.Secret
	switch {
	case c.flagAccessor:
		secret, err = client.Auth().Token().LookupAccessorWithContext(ctx, strings.TrimSpace(args[0]))
	case len(args) == 1:
		secret, err = client.Auth().Token().LookupWithContext(ctx, strings.TrimSpace(args[0]))
	default:
		secret, err = client.Auth().Token().LookupSelfWithContext(ctx)
	}
	if err != nil {
		return remoteFailed("looking up token", err)
	}
	return c.showSecret(secret, "looking up token")
}

// ---- token renew ----

type tokenRenewCommand struct {
	baseCommand
	flagIncrement durationFlag
	flagAccessor  bool
}

func (c *tokenRenewCommand) Synopsis() string { return "Renew a token lease" }

func (c *tokenRenewCommand) Help() string {
	return helpText(`
Usage: ward token renew [options] [TOKEN]

  Extends the lease of TOKEN (or, with -accessor, of the token with that
  accessor; with no argument, of the token in use). -increment asks for a
  new TTL; the server may grant less.

      $ ward token renew -increment=1h
`, c.flags())
}

func (c *tokenRenewCommand) flags() *flag.FlagSet {
	fs := c.flagSet("token renew", withFormat|withField)
	fs.Var(&c.flagIncrement, "increment", "Requested new TTL, from now (default: the token's own TTL).")
	fs.BoolVar(&c.flagAccessor, "accessor", false, "Treat the argument as an accessor instead of a token.")
	return fs
}

func (c *tokenRenewCommand) Run(args []string) int {
	fs := c.flags()
	args, ok := c.parse(fs, args)
	if !ok {
		return exitLocal
	}
	minArgs := 0
	if c.flagAccessor {
		minArgs = 1
	}
	if !checkArgs(args, minArgs, 1) {
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()
	inc := int(c.flagIncrement.d.Seconds())
	var secret *api.Secret
	switch {
	case c.flagAccessor:
		secret, err = client.Auth().Token().RenewAccessorWithContext(ctx, strings.TrimSpace(args[0]), inc)
	case len(args) == 1:
		secret, err = client.Auth().Token().RenewWithContext(ctx, strings.TrimSpace(args[0]), inc)
	default:
		secret, err = client.Auth().Token().RenewSelfWithContext(ctx, inc)
	}
	if err != nil {
		return remoteFailed("renewing token", err)
	}
	return c.showSecret(secret, "renewing token")
}

// ---- token revoke ----

type tokenRevokeCommand struct {
	baseCommand
	flagAccessor bool
	flagSelf     bool
	flagMode     string
}

func (c *tokenRevokeCommand) Synopsis() string { return "Revoke a token and its children" }

func (c *tokenRevokeCommand) Help() string {
	return helpText(`
Usage: ward token revoke [options] [TOKEN | -accessor ACCESSOR | -self]

  Revokes a token and, unless -mode=orphan, every token created from it.

      $ ward token revoke -accessor 8609694a-cdbc-db9b-d345-e782dbb562ed
      $ ward token revoke -self
`, c.flags())
}

func (c *tokenRevokeCommand) flags() *flag.FlagSet {
	fs := c.flagSet("token revoke", noOutputFlags)
	fs.BoolVar(&c.flagAccessor, "accessor", false, "Treat the argument as an accessor instead of a token.")
	fs.BoolVar(&c.flagSelf, "self", false, "Revoke the token in use.")
	fs.StringVar(&c.flagMode, "mode", "", `"orphan" revokes only the token and orphans its children.`)
	return fs
}

func (c *tokenRevokeCommand) Run(args []string) int {
	fs := c.flags()
	args, ok := c.parse(fs, args)
	if !ok {
		return exitLocal
	}
	switch {
	case c.flagSelf && (c.flagAccessor || len(args) > 0):
		printErr("-self takes no token or accessor")
		return exitLocal
	case !c.flagSelf && !checkArgs(args, 1, 1):
		return exitLocal
	case c.flagMode != "" && c.flagMode != "orphan":
		printErr("Invalid -mode %q: the only mode is \"orphan\"", c.flagMode)
		return exitLocal
	case c.flagMode == "orphan" && (c.flagAccessor || c.flagSelf):
		printErr("-mode=orphan applies to a token, not -accessor or -self")
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()
	tokens := client.Auth().Token()
	switch {
	case c.flagSelf:
		err = tokens.RevokeSelfWithContext(ctx, "")
	case c.flagAccessor:
		err = tokens.RevokeAccessorWithContext(ctx, strings.TrimSpace(args[0]))
	case c.flagMode == "orphan":
		err = tokens.RevokeOrphanWithContext(ctx, strings.TrimSpace(args[0]))
	default:
		err = tokens.RevokeTreeWithContext(ctx, strings.TrimSpace(args[0]))
	}
	if err != nil {
		return remoteFailed("revoking token", err)
	}
	writeOut("Success! Revoked token (if it existed)\n")
	return exitOK
}
