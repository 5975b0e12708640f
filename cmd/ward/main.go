package main

import (
	"io"
	"os"

	"github.com/hashicorp/cli"
)

// version is the Ward version; release builds override it with
// -ldflags "-X main.version=…".
var version = "0.1.0"

// The CLI reads and writes only through these, never os.Std* directly, so
// tests can swap them.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
	stdin  io.Reader = os.Stdin
)

func main() { os.Exit(run(os.Args[1:])) }

// run dispatches args to a subcommand and returns the process exit code.
func run(args []string) int {
	c := &cli.CLI{
		Name:           "ward",
		Version:        versionString(),
		Args:           args,
		Commands:       commands(),
		HiddenCommands: []string{"plugin exec"},
		HelpFunc:       cli.BasicHelpFunc("ward"),
		HelpWriter:     stdout,
		ErrorWriter:    stderr,
	}
	code, err := c.Run()
	if err != nil {
		printErr("Error executing CLI: %s", err)
		return exitLocal
	}
	return code
}

func versionString() string { return "Ward v" + version }

// commands is the full command table. Parents ("kv", "kv metadata", …) are
// listed so that `ward kv -h` explains the group and lists its subcommands.
func commands() map[string]cli.CommandFactory {
	cmds := map[string]cli.Command{
		"server":      &serverCommand{},
		"plugin exec": &pluginExecCommand{},
		"version":     &versionCommand{},

		"status":                        &statusCommand{},
		"operator":                      operatorGroup,
		"operator init":                 &operatorInitCommand{},
		"operator unseal":               &operatorUnsealCommand{},
		"operator seal":                 &operatorSealCommand{},
		"operator rotate":               &operatorRotateCommand{},
		"operator key-status":           &operatorKeyStatusCommand{},
		"operator rekey":                &operatorRekeyCommand{},
		"operator generate-root":        &operatorGenerateRootCommand{},
		"operator step-down":            &operatorStepDownCommand{},
		"operator raft":                 operatorRaftGroup,
		"operator raft list-peers":      &operatorRaftListPeersCommand{}, // operator_raft.go
		"operator raft remove-peer":     &operatorRaftRemovePeerCommand{},
		"operator raft autopilot":       operatorRaftAutopilotGroup,
		"operator raft autopilot state": &operatorRaftAutopilotStateCommand{},

		"read":   &readCommand{},
		"write":  &writeCommand{},
		"list":   &listCommand{},
		"delete": &deleteCommand{},
		"unwrap": &unwrapCommand{}, // unwrap.go

		"kv":                 kvGroup,
		"kv get":             &kvGetCommand{},
		"kv put":             &kvPutCommand{},
		"kv patch":           &kvPatchCommand{},
		"kv delete":          &kvDeleteCommand{},
		"kv undelete":        newKVUndeleteCommand(),
		"kv destroy":         newKVDestroyCommand(),
		"kv list":            &kvListCommand{},
		"kv metadata":        kvMetadataGroup,
		"kv metadata get":    &kvMetadataGetCommand{},
		"kv metadata put":    &kvMetadataPutCommand{},
		"kv metadata delete": &kvMetadataDeleteCommand{},

		"secrets":         secretsGroup,
		"secrets enable":  &mountEnableCommand{kind: secretsMounts},
		"secrets disable": &mountDisableCommand{kind: secretsMounts},
		"secrets list":    &mountListCommand{kind: secretsMounts},
		"secrets tune":    &mountTuneCommand{kind: secretsMounts},

		"login":        &loginCommand{},
		"auth":         authGroup,
		"auth enable":  &mountEnableCommand{kind: authMounts},
		"auth disable": &mountDisableCommand{kind: authMounts},
		"auth list":    &mountListCommand{kind: authMounts},
		"auth tune":    &mountTuneCommand{kind: authMounts},

		"policy":        policyGroup,
		"policy list":   &policyListCommand{},
		"policy read":   &policyReadCommand{},
		"policy write":  &policyWriteCommand{},
		"policy delete": &policyDeleteCommand{},
		"policy fmt":    &policyFmtCommand{},

		"token":        tokenGroup,
		"token create": &tokenCreateCommand{},
		"token lookup": &tokenLookupCommand{},
		"token renew":  &tokenRenewCommand{},
		"token revoke": &tokenRevokeCommand{},

		"lease":        leaseGroup,
		"lease lookup": &leaseLookupCommand{},
		"lease renew":  &leaseRenewCommand{},
		"lease revoke": &leaseRevokeCommand{},

		"audit":         auditGroup,
		"audit list":    &auditListCommand{},
		"audit enable":  &auditEnableCommand{},
		"audit disable": &auditDisableCommand{},
		"audit hash":    &auditHashCommand{},
		"audit verify":  &auditVerifyCommand{},

		"plugin":            pluginGroup,
		"plugin register":   &pluginRegisterCommand{},
		"plugin deregister": &pluginDeregisterCommand{},
		"plugin info":       &pluginInfoCommand{},
		"plugin list":       &pluginListCommand{},
		"plugin reload":     &pluginReloadCommand{},

		"plugin conformance": &pluginConformanceCommand{}, // plugin_conformance.go
		"plugin new":         &pluginNewCommand{},         // plugin_new.go
	}
	factories := make(map[string]cli.CommandFactory, len(cmds))
	for name, cmd := range cmds {
		factories[name] = func() (cli.Command, error) { return cmd, nil }
	}
	return factories
}

// versionCommand prints the CLI's own version (not the server's).
type versionCommand struct{}

func (c *versionCommand) Synopsis() string { return "Print the Ward version" }
func (c *versionCommand) Help() string {
	return "Usage: ward version\n\n  Prints the version of this Ward binary.\n"
}

func (c *versionCommand) Run(args []string) int {
	if len(args) > 0 {
		printErr("Too many arguments (expected 0, got %d)", len(args))
		return exitLocal
	}
	writeOut(versionString() + "\n")
	return exitOK
}

// groupCommand is a parent such as "kv": it only explains itself; the cli
// package appends the list of its subcommands to the help.
type groupCommand struct {
	synopsis string
	help     string
}

func (g *groupCommand) Synopsis() string      { return g.synopsis }
func (g *groupCommand) Help() string          { return g.help }
func (g *groupCommand) Run(args []string) int { return cli.RunResultHelp }

var (
	_ cli.Command = (*groupCommand)(nil)
	_ cli.Command = (*versionCommand)(nil)
	_ cli.Command = (*serverCommand)(nil)
	_ cli.Command = (*pluginExecCommand)(nil)
	_ cli.Command = (*mountEnableCommand)(nil)
	_ cli.Command = (*mountDisableCommand)(nil)
	_ cli.Command = (*mountListCommand)(nil)
	_ cli.Command = (*mountTuneCommand)(nil)
	_ cli.Command = (*loginCommand)(nil)
)
