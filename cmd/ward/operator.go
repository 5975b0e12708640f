package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bgentry/speakeasy"
	"github.com/openbao/openbao/api/v2"
)

var operatorGroup = &groupCommand{
	synopsis: "Perform operator-specific tasks",
	help: `Usage: ward operator <subcommand> [options] [args]

  Initializes, unseals and seals a Ward server, and manages its keys.

      $ ward operator init -key-shares=5 -key-threshold=3
      $ ward operator unseal
      $ ward operator seal
      $ ward operator rotate
      $ ward operator rekey -init -key-shares=5 -key-threshold=3
      $ ward operator generate-root -init
`,
}

// ---- status ----

type statusCommand struct{ baseCommand }

func (c *statusCommand) Synopsis() string { return "Print seal and HA status" }

func (c *statusCommand) Help() string {
	return helpText(`
Usage: ward status [options]

  Prints the seal status of the server and whether it runs in HA mode.
  No token is needed.

  The exit code is 0 when the server is unsealed, 2 when it is sealed, and
  1 when the status could not be read.
`, c.flags())
}

func (c *statusCommand) flags() *flag.FlagSet { return c.flagSet("status", withFormat) }

func (c *statusCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 0, 0) {
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	status, err := client.Sys().SealStatusWithContext(context.Background())
	if err != nil {
		// 2 is reserved for "sealed" here, as in Vault.
		printErr("Error checking seal status: %s", describeError(err))
		return exitLocal
	}
	if code := c.outputSealStatus(client, status); code != exitOK {
		return code
	}
	if status.Sealed {
		return 2
	}
	return exitOK
}

// sealStatusOutput is the seal status plus the HA fields of sys/leader, as
// Vault's status prints them.
type sealStatusOutput struct {
	api.SealStatusResponse
	HAEnabled            *bool  `json:"ha_enabled,omitempty"`
	IsSelf               bool   `json:"is_self,omitempty"`
	LeaderAddress        string `json:"leader_address,omitempty"`
	LeaderClusterAddress string `json:"leader_cluster_address,omitempty"`
}

// outputSealStatus prints status, adding HA information when the server is
// unsealed (sys/leader is unavailable while sealed). The HA query is best
// effort and not retried: its failure only leaves the HA rows out.
func (c *baseCommand) outputSealStatus(client *api.Client, status *api.SealStatusResponse) int {
	out := sealStatusOutput{SealStatusResponse: *status}
	if !status.Sealed {
		client.SetMaxRetries(0)
		if leader, err := client.Sys().LeaderWithContext(context.Background()); err == nil {
			out.HAEnabled = &leader.HAEnabled
			out.IsSelf = leader.IsSelf
			out.LeaderAddress = leader.LeaderAddress
			out.LeaderClusterAddress = leader.LeaderClusterAddress
		}
	}
	if c.jsonOutput() {
		return printJSON(out)
	}

	rows := [][]string{
		{"Seal Type", status.Type},
		{"Initialized", fmt.Sprint(status.Initialized)},
		{"Sealed", fmt.Sprint(status.Sealed)},
		{"Total Shares", fmt.Sprint(status.N)},
		{"Threshold", fmt.Sprint(status.T)},
	}
	if status.Sealed {
		rows = append(rows,
			[]string{"Unseal Progress", fmt.Sprintf("%d/%d", status.Progress, status.T)},
			[]string{"Unseal Nonce", status.Nonce})
	}
	if status.Migration {
		rows = append(rows, []string{"Seal Migration in Progress", "true"})
	}
	rows = append(rows, []string{"Version", status.Version})
	if d := firstNonEmpty(status.CommitDate, status.BuildDate); d != "" {
		rows = append(rows, []string{"Build Date", d})
	}
	if status.StorageType != "" {
		rows = append(rows, []string{"Storage Type", status.StorageType})
	}
	if status.ClusterName != "" && status.ClusterID != "" {
		rows = append(rows,
			[]string{"Cluster Name", status.ClusterName},
			[]string{"Cluster ID", status.ClusterID})
	}
	if out.HAEnabled != nil {
		rows = append(rows, []string{"HA Enabled", fmt.Sprint(*out.HAEnabled)})
		if *out.HAEnabled {
			mode := "standby"
			if out.IsSelf {
				mode = "active"
			}
			rows = append(rows,
				[]string{"HA Cluster", out.LeaderClusterAddress},
				[]string{"HA Mode", mode})
			if !out.IsSelf {
				rows = append(rows, []string{"Active Node Address", firstNonEmpty(out.LeaderAddress, "<none>")})
			}
		}
	}
	printKeyValues(rows)
	return exitOK
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ---- operator init ----

type operatorInitCommand struct {
	baseCommand
	flagKeyShares         int
	flagKeyThreshold      int
	flagRecoveryShares    int
	flagRecoveryThreshold int
	flagStatus            bool
}

func (c *operatorInitCommand) Synopsis() string { return "Initialize a server" }

func (c *operatorInitCommand) Help() string {
	return helpText(`
Usage: ward operator init [options]

  Initializes a new server: generates the root key, splits it into
  -key-shares unseal keys of which -key-threshold are needed to unseal, and
  prints the unseal keys and the initial root token. They are shown once;
  store them safely.

  With an auto-unseal seal (seal "pkcs11"), the HSM unseals the server and
  operators get -recovery-shares recovery keys instead (-recovery-threshold
  needed), used to generate root tokens, rekey, unseal after "operator
  seal" and migrate seals. The seal type is read from the server unless a
  -key-* or -recovery-* flag is given.

  With -status, prints whether the server is initialized instead, exiting
  0 if it is and 2 if it is not.
`, c.flags())
}

func (c *operatorInitCommand) flags() *flag.FlagSet {
	fs := c.flagSet("operator init", withFormat)
	fs.IntVar(&c.flagKeyShares, "key-shares", 5, "Number of unseal key shares to generate.")
	fs.IntVar(&c.flagKeyThreshold, "key-threshold", 3, "Number of shares needed to unseal.")
	fs.IntVar(&c.flagRecoveryShares, "recovery-shares", 5, "Number of recovery key shares (auto-unseal seals).")
	fs.IntVar(&c.flagRecoveryThreshold, "recovery-threshold", 3, "Number of recovery key shares needed.")
	fs.BoolVar(&c.flagStatus, "status", false, "Only report whether the server is initialized.")
	return fs
}

// initOutput is the JSON shape of Vault's `operator init -format=json`.
type initOutput struct {
	UnsealKeysB64         []string `json:"unseal_keys_b64"`
	UnsealKeysHex         []string `json:"unseal_keys_hex"`
	UnsealShares          int      `json:"unseal_shares"`
	UnsealThreshold       int      `json:"unseal_threshold"`
	RecoveryKeysB64       []string `json:"recovery_keys_b64,omitempty"`
	RecoveryKeysHex       []string `json:"recovery_keys_hex,omitempty"`
	RecoveryKeysShares    int      `json:"recovery_keys_shares,omitempty"`
	RecoveryKeysThreshold int      `json:"recovery_keys_threshold,omitempty"`
	RootToken             string   `json:"root_token"`
}

func (c *operatorInitCommand) Run(args []string) int {
	fs := c.flags()
	args, ok := c.parse(fs, args)
	if !ok || !checkArgs(args, 0, 0) {
		return exitLocal
	}
	if c.flagKeyShares < 1 || c.flagKeyThreshold < 1 || c.flagKeyThreshold > c.flagKeyShares {
		printErr("Invalid key shares/threshold: need 1 <= -key-threshold (%d) <= -key-shares (%d)",
			c.flagKeyThreshold, c.flagKeyShares)
		return exitLocal
	}
	if c.flagRecoveryShares < 1 || c.flagRecoveryThreshold < 1 || c.flagRecoveryThreshold > c.flagRecoveryShares {
		printErr("Invalid recovery shares/threshold: need 1 <= -recovery-threshold (%d) <= -recovery-shares (%d)",
			c.flagRecoveryThreshold, c.flagRecoveryShares)
		return exitLocal
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()

	if c.flagStatus {
		inited, err := client.Sys().InitStatusWithContext(ctx)
		if err != nil {
			return remoteFailed("checking initialization status", err)
		}
		if !inited {
			writeOut("Ward is not initialized\n")
			return 2
		}
		writeOut("Ward is initialized\n")
		return exitOK
	}

	// Which keys: recovery keys with an auto-unseal seal. Explicit flags
	// decide; otherwise the server's seal status (Vault's CLI does the
	// same); a server that cannot say is taken to be Shamir.
	recovery := set["recovery-shares"] || set["recovery-threshold"]
	if !recovery && !set["key-shares"] && !set["key-threshold"] {
		if st, err := client.Sys().SealStatusWithContext(ctx); err == nil && st.RecoverySeal {
			recovery = true
		}
	}
	req := &api.InitRequest{SecretShares: c.flagKeyShares, SecretThreshold: c.flagKeyThreshold}
	if recovery {
		req = &api.InitRequest{RecoveryShares: c.flagRecoveryShares, RecoveryThreshold: c.flagRecoveryThreshold}
	}

	// Never retry: if a first attempt initialized the server but its reply
	// was lost, a retry would fail with "already initialized" and hide the
	// real cause. Better to report the original error.
	client.SetMaxRetries(0)
	resp, err := client.Sys().InitWithContext(ctx, req)
	if err != nil {
		return remoteFailed("initializing", err)
	}
	if recovery {
		return c.outputRecovery(resp)
	}

	keys := resp.Keys
	if len(resp.KeysB64) == len(resp.Keys) {
		keys = resp.KeysB64
	}
	if c.jsonOutput() {
		return printJSON(initOutput{
			UnsealKeysB64:   resp.KeysB64,
			UnsealKeysHex:   resp.Keys,
			UnsealShares:    len(resp.Keys),
			UnsealThreshold: c.flagKeyThreshold,
			RecoveryKeysB64: resp.RecoveryKeysB64,
			RecoveryKeysHex: resp.RecoveryKeys,
			RootToken:       resp.RootToken,
		})
	}
	var b strings.Builder
	for i, k := range keys {
		fmt.Fprintf(&b, "Unseal Key %d: %s\n", i+1, k)
	}
	fmt.Fprintf(&b, "\nInitial Root Token: %s\n\n", resp.RootToken)
	fmt.Fprintf(&b, "Ward initialized with %d key shares and a key threshold of %d. Please\n"+
		"securely distribute the key shares printed above. When Ward is re-sealed,\n"+
		"restarted, or stopped, you must supply at least %d of these keys to unseal it\n"+
		"before it can start servicing requests.\n\n"+
		"Ward does not store the generated root key. Without at least %d keys to\n"+
		"reconstruct the root key, Ward will remain permanently sealed!\n",
		len(keys), c.flagKeyThreshold, c.flagKeyThreshold, c.flagKeyThreshold)
	writeOut(b.String())
	return exitOK
}

// outputRecovery prints the result of an init with recovery keys.
func (c *operatorInitCommand) outputRecovery(resp *api.InitResponse) int {
	keys := resp.RecoveryKeys
	if len(resp.RecoveryKeysB64) == len(resp.RecoveryKeys) {
		keys = resp.RecoveryKeysB64
	}
	if c.jsonOutput() {
		return printJSON(initOutput{
			UnsealKeysB64: []string{}, UnsealKeysHex: []string{},
			RecoveryKeysB64: resp.RecoveryKeysB64, RecoveryKeysHex: resp.RecoveryKeys,
			RecoveryKeysShares: len(keys), RecoveryKeysThreshold: c.flagRecoveryThreshold,
			RootToken: resp.RootToken,
		})
	}
	var b strings.Builder
	for i, k := range keys {
		fmt.Fprintf(&b, "Recovery Key %d: %s\n", i+1, k)
	}
	fmt.Fprintf(&b, "\nInitial Root Token: %s\n\n", resp.RootToken)
	fmt.Fprintf(&b, "Success! Ward is initialized and unsealed by its seal.\n\n"+
		"Recovery key initialized with %d key shares and a key threshold of %d. Please\n"+
		"securely distribute the key shares printed above. They generate root tokens,\n"+
		"rekey, unseal after \"ward operator seal\" and migrate the seal.\n",
		len(keys), c.flagRecoveryThreshold)
	writeOut(b.String())
	return exitOK
}

// ---- operator unseal ----

type operatorUnsealCommand struct {
	baseCommand
	flagReset   bool
	flagMigrate bool
}

func (c *operatorUnsealCommand) Synopsis() string { return "Unseal a server" }

func (c *operatorUnsealCommand) Help() string {
	return helpText(`
Usage: ward operator unseal [options] [KEY]

  Submits one unseal key share. Run it once per share until the threshold
  is reached. Without KEY, the key is prompted for (not echoed) on a
  terminal, or read as one line from stdin otherwise; prefer that to KEY,
  which ends up in the shell history and process list.

  -reset discards the shares submitted so far.

  -migrate submits the share towards a pending seal migration (a seal
  stanza added, or the current one marked disabled = "true"): the keys of
  the seal storage is sealed with now, unseal keys when leaving Shamir,
  recovery keys when leaving an HSM.
`, c.flags())
}

func (c *operatorUnsealCommand) flags() *flag.FlagSet {
	fs := c.flagSet("operator unseal", withFormat)
	fs.BoolVar(&c.flagReset, "reset", false, "Discard the key shares submitted so far.")
	fs.BoolVar(&c.flagMigrate, "migrate", false, "Submit the share towards the pending seal migration.")
	return fs
}

func (c *operatorUnsealCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 0, 1) {
		return exitLocal
	}
	if c.flagReset && len(args) > 0 {
		printErr("-reset takes no unseal key")
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()

	var status *api.SealStatusResponse
	if c.flagReset {
		status, err = client.Sys().ResetUnsealProcessWithContext(ctx)
		if err != nil {
			return remoteFailed("resetting unseal process", err)
		}
		return c.outputSealStatus(client, status)
	}

	var key string
	if len(args) == 1 {
		key = strings.TrimSpace(args[0])
	} else {
		key, err = promptSecret("Unseal Key (will be hidden): ")
		if err != nil {
			printErr("Error reading unseal key: %s", err)
			return exitLocal
		}
	}
	if key == "" {
		printErr("No unseal key provided")
		return exitLocal
	}
	if c.flagMigrate {
		status, err = client.Sys().UnsealWithOptionsWithContext(ctx, &api.UnsealOpts{Key: key, Migrate: true})
	} else {
		status, err = client.Sys().UnsealWithContext(ctx, key)
	}
	if err != nil {
		return remoteFailed("unsealing", err)
	}
	return c.outputSealStatus(client, status)
}

// promptSecret asks for a secret on stderr. On a terminal the input is not
// echoed; otherwise (a pipe, a test) one line is read from stdin.
func promptSecret(prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && f == os.Stdin && isTerminal(f) {
		v, err := speakeasy.FAsk(stderr, prompt)
		return strings.TrimSpace(v), err
	}
	fmt.Fprint(stderr, prompt)
	line, err := bufio.NewReader(stdin).ReadString('\n')
	fmt.Fprintln(stderr)
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// ---- operator seal ----

type operatorSealCommand struct{ baseCommand }

func (c *operatorSealCommand) Synopsis() string { return "Seal the server" }

func (c *operatorSealCommand) Help() string {
	return helpText(`
Usage: ward operator seal [options]

  Seals the server: it forgets its keys and stops serving requests until
  unsealed again. Needs a token with sudo on sys/seal.
`, c.flags())
}

func (c *operatorSealCommand) flags() *flag.FlagSet { return c.flagSet("operator seal", noOutputFlags) }

func (c *operatorSealCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	if err := client.Sys().SealWithContext(context.Background()); err != nil {
		return remoteFailed("sealing", err)
	}
	writeOut("Success! Ward is sealed.\n")
	return exitOK
}
