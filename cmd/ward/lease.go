package main

import (
	"context"
	"flag"
	"strings"

	"github.com/openbao/openbao/api/v2"
)

var leaseGroup = &groupCommand{
	synopsis: "Interact with leases",
	help: `Usage: ward lease <subcommand> [options] [args]

  Looks up, renews and revokes the leases the server put on dynamic
  secrets (sys/leases).

      $ ward lease lookup database/creds/readonly/Xk3...
      $ ward lease renew -increment=1h database/creds/readonly/Xk3...
      $ ward lease revoke -prefix database/creds/readonly
`,
}

// ---- lease lookup ----

type leaseLookupCommand struct{ baseCommand }

func (c *leaseLookupCommand) Synopsis() string { return "Look up a lease" }

func (c *leaseLookupCommand) Help() string {
	return helpText(`
Usage: ward lease lookup [options] LEASE_ID

  Shows a lease's issue time, expiry, TTL and whether it is renewable.
`, c.flags())
}

func (c *leaseLookupCommand) flags() *flag.FlagSet {
	return c.flagSet("lease lookup", withFormat|withField)
}

func (c *leaseLookupCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	secret, err := client.Sys().LookupWithContext(context.Background(), strings.TrimSpace(args[0]))
	if err != nil {
		return remoteFailed("looking up lease", err)
	}
	return c.showSecret(secret, "looking up lease")
}

// ---- lease renew ----

type leaseRenewCommand struct {
	baseCommand
	flagIncrement durationFlag
}

func (c *leaseRenewCommand) Synopsis() string { return "Renew a lease" }

func (c *leaseRenewCommand) Help() string {
	return helpText(`
Usage: ward lease renew [options] LEASE_ID

  Extends a lease. -increment asks for a new TTL from now; the secret
  engine and the lease's max TTL may grant less.
`, c.flags())
}

func (c *leaseRenewCommand) flags() *flag.FlagSet {
	fs := c.flagSet("lease renew", withFormat|withField)
	fs.Var(&c.flagIncrement, "increment", "Requested new TTL, from now (default: the lease's current TTL).")
	return fs
}

func (c *leaseRenewCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	secret, err := client.Sys().RenewWithContext(context.Background(), strings.TrimSpace(args[0]), int(c.flagIncrement.d.Seconds()))
	if err != nil {
		return remoteFailed("renewing lease", err)
	}
	return c.showSecret(secret, "renewing lease")
}

// ---- lease revoke ----

type leaseRevokeCommand struct {
	baseCommand
	flagPrefix bool
	flagForce  bool
}

func (c *leaseRevokeCommand) Synopsis() string { return "Revoke leases" }

func (c *leaseRevokeCommand) Help() string {
	return helpText(`
Usage: ward lease revoke [options] ID

  Revokes the lease ID, or with -prefix every lease under the prefix ID
  (sudo). -force (with -prefix) forgets the leases the secret engine fails
  to revoke: the secrets may stay valid outside Ward.
`, c.flags())
}

func (c *leaseRevokeCommand) flags() *flag.FlagSet {
	fs := c.flagSet("lease revoke", noOutputFlags)
	fs.BoolVar(&c.flagPrefix, "prefix", false, "Revoke every lease under the prefix.")
	fs.BoolVar(&c.flagForce, "force", false, "With -prefix: forget leases the engine fails to revoke.")
	return fs
}

func (c *leaseRevokeCommand) Run(args []string) int {
	args, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	if c.flagForce && !c.flagPrefix {
		printErr("-force requires -prefix")
		return exitLocal
	}
	id := strings.TrimSpace(args[0])
	ctx := context.Background()
	var err error
	switch {
	case c.flagForce:
		err = client.Sys().RevokeForceWithContext(ctx, id)
	case c.flagPrefix:
		err = client.Sys().RevokePrefixWithContext(ctx, id)
	default:
		err = client.Sys().RevokeWithOptionsWithContext(ctx, &api.RevokeOptions{LeaseID: id, Sync: true})
	}
	if err != nil {
		return remoteFailed("revoking", err)
	}
	if c.flagPrefix {
		writeOut("Success! Revoked any leases with prefix: " + id + "\n")
	} else {
		writeOut("Success! Revoked lease: " + id + "\n")
	}
	return exitOK
}
