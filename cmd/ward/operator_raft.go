package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
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
      $ ward operator raft remove-peer node-3
      $ ward operator raft autopilot state
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

// operatorRaftRemovePeerCommand is `ward operator raft remove-peer`.
type operatorRaftRemovePeerCommand struct{ baseCommand }

func (c *operatorRaftRemovePeerCommand) Synopsis() string {
	return "Remove a server from the raft cluster"
}

func (c *operatorRaftRemovePeerCommand) Help() string {
	return helpText(`
Usage: ward operator raft remove-peer [options] SERVER_ID

  Removes the server named SERVER_ID (its node_id) from the raft
  configuration for good: its raft ID can never rejoin (a replacement joins
  with a new one). Needs a token with sudo on sys/storage/raft/remove-peer.
`, c.flags())
}

func (c *operatorRaftRemovePeerCommand) flags() *flag.FlagSet {
	return c.flagSet("operator raft remove-peer", noOutputFlags)
}

func (c *operatorRaftRemovePeerCommand) Run(args []string) int {
	rest, client, code := c.begin(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	if _, err := client.Logical().WriteWithContext(context.Background(), "sys/storage/raft/remove-peer",
		map[string]any{"server_id": rest[0]}); err != nil {
		return remoteFailed("removing the peer", err)
	}
	writeOut("Peer removed successfully!\n")
	return exitOK
}

// operatorRaftAutopilotStateCommand is `ward operator raft autopilot state`.
type operatorRaftAutopilotStateCommand struct{ baseCommand }

func (c *operatorRaftAutopilotStateCommand) Synopsis() string {
	return "Show the health of every raft server"
}

func (c *operatorRaftAutopilotStateCommand) Help() string {
	return helpText(`
Usage: ward operator raft autopilot state [options]

  Shows the cluster's health as the active node sees it: whether it is
  healthy, how many voters may fail, and each server's status and lag
  (sys/storage/raft/autopilot/state).
`, c.flags())
}

func (c *operatorRaftAutopilotStateCommand) flags() *flag.FlagSet {
	return c.flagSet("operator raft autopilot state", withFormat)
}

func (c *operatorRaftAutopilotStateCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	secret, err := client.Logical().ReadWithContext(context.Background(), "sys/storage/raft/autopilot/state")
	if err != nil {
		return remoteFailed("reading the autopilot state", err)
	}
	if secret == nil || secret.Data == nil {
		return remoteFailed("reading the autopilot state", fmt.Errorf("empty answer"))
	}
	if c.jsonOutput() {
		return printJSON(secret.Data)
	}
	printKeyValues([][]string{
		{"Healthy", fmt.Sprint(secret.Data["healthy"])},
		{"Failure Tolerance", fmt.Sprint(secret.Data["failure_tolerance"])},
		{"Leader", fmt.Sprint(secret.Data["leader"])},
	})
	servers, _ := secret.Data["servers"].(map[string]any)
	rows := make([][]string, 0, len(servers))
	for name, v := range servers {
		m, _ := v.(map[string]any)
		rows = append(rows, []string{name, fmt.Sprint(m["address"]), fmt.Sprint(m["status"]), fmt.Sprint(m["lag"]), fmt.Sprint(m["healthy"])})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	writeOut("\n")
	printTable([]string{"Server", "Address", "Status", "Lag", "Healthy"}, rows)
	return exitOK
}

var operatorRaftAutopilotGroup = &groupCommand{
	synopsis: "Inspect the raft cluster's health",
	help: `Usage: ward operator raft autopilot <subcommand> [options]

      $ ward operator raft autopilot state
`,
}
