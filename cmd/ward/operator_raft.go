package main

import (
	"context"
	"flag"
	"fmt"
)

// operatorStepDownCommand is `ward operator step-down`.
type operatorStepDownCommand struct{ baseCommand }

func (c *operatorStepDownCommand) Synopsis() string { return "Hand the active duties to another node" }

func (c *operatorStepDownCommand) Help() string {
	return helpText(`
Usage: ward operator step-down [options]

  Makes the active node hand raft leadership, and so its duties, to the most
  up-to-date other voter. Needs a token with sudo on sys/step-down. Fails on
  a cluster of one node.
`, c.flags())
}

func (c *operatorStepDownCommand) flags() *flag.FlagSet {
	return c.flagSet("operator step-down", noOutputFlags)
}

func (c *operatorStepDownCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	if err := client.Sys().StepDownWithContext(context.Background()); err != nil {
		return remoteFailed("stepping down", err)
	}
	writeOut("Success! Stepped down the active node.\n")
	return exitOK
}

var operatorRaftGroup = &groupCommand{
	synopsis: "Interact with Ward's raft storage",
	help: `Usage: ward operator raft <subcommand> [options]

  Inspects the raft cluster behind storage "raft".

      $ ward operator raft list-peers
`,
}

// operatorRaftListPeersCommand is `ward operator raft list-peers`.
type operatorRaftListPeersCommand struct{ baseCommand }

func (c *operatorRaftListPeersCommand) Synopsis() string { return "List the raft cluster's peers" }

func (c *operatorRaftListPeersCommand) Help() string {
	return helpText(`
Usage: ward operator raft list-peers [options]

  Lists the servers of the raft configuration: name, cluster address,
  whether it leads and whether it votes (sys/storage/raft/configuration).
`, c.flags())
}

func (c *operatorRaftListPeersCommand) flags() *flag.FlagSet {
	return c.flagSet("operator raft list-peers", withFormat)
}

func (c *operatorRaftListPeersCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	secret, err := client.Logical().ReadWithContext(context.Background(), "sys/storage/raft/configuration")
	if err != nil {
		return remoteFailed("reading the raft configuration", err)
	}
	if secret == nil || secret.Data == nil {
		return remoteFailed("reading the raft configuration", fmt.Errorf("empty answer"))
	}
	if c.jsonOutput() {
		return printJSON(secret.Data)
	}
	cfg, _ := secret.Data["config"].(map[string]any)
	servers, _ := cfg["servers"].([]any)
	rows := make([][]string, 0, len(servers))
	for _, s := range servers {
		m, _ := s.(map[string]any)
		state := "follower"
		if m["leader"] == true {
			state = "leader"
		}
		rows = append(rows, []string{fmt.Sprint(m["node_id"]), fmt.Sprint(m["address"]), state, fmt.Sprint(m["voter"])})
	}
	printTable([]string{"Node", "Address", "State", "Voter"}, rows)
	return exitOK
}
