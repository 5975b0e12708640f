package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// The key management commands: operator rotate, key-status, rekey and
// generate-root, with Vault's flags and output.

// ---- operator rotate ----

type operatorRotateCommand struct {
	baseCommand
	flagReencrypt bool
}

func (c *operatorRotateCommand) Synopsis() string { return "Rotate the barrier encryption key" }

func (c *operatorRotateCommand) Help() string {
	return helpText(`
Usage: ward operator rotate [options]

  Adds a new term to the barrier's keyring: new writes use it, and entries
  written under older terms stay readable. With -reencrypt, every entry is
  then re-encrypted under the new term in the background (follow it with
  "ward read sys/rotate/reencrypt"). Needs sudo on sys/rotate.

  Automatic rotation (after a number of encryptions or an interval) is
  configured at sys/rotate/config.
`, c.flags())
}

func (c *operatorRotateCommand) flags() *flag.FlagSet {
	fs := c.flagSet("operator rotate", withFormat)
	fs.BoolVar(&c.flagReencrypt, "reencrypt", false, "Re-encrypt every entry under the new key term in the background.")
	return fs
}

func (c *operatorRotateCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	ctx := context.Background()
	var body map[string]any
	if c.flagReencrypt {
		body = map[string]any{"reencrypt": true}
	}
	resp, err := send(ctx, client, "POST", "sys/rotate", body)
	if err != nil {
		return remoteFailed("rotating key", err)
	}
	if resp != nil {
		for _, w := range resp.Warnings {
			printErr("WARNING! %s", w)
		}
	}
	status, err := client.Sys().KeyStatusWithContext(ctx)
	if err != nil {
		return remoteFailed("reading key status", err)
	}
	if c.jsonOutput() {
		return printJSON(status)
	}
	writeOut("Success! Rotated key\n\n")
	printKeyValues(keyStatusRows(status))
	if c.flagReencrypt {
		writeOut("\nRe-encryption started: see \"ward read sys/rotate/reencrypt\".\n")
	}
	return exitOK
}

func keyStatusRows(s *api.KeyStatus) [][]string {
	return [][]string{
		{"Key Term", fmt.Sprint(s.Term)},
		{"Install Time", s.InstallTime.UTC().Format(time.RFC822)},
		{"Encryption Count", fmt.Sprint(s.Encryptions)},
	}
}

// ---- operator key-status ----

type operatorKeyStatusCommand struct{ baseCommand }

func (c *operatorKeyStatusCommand) Synopsis() string {
	return "Provide information about the active encryption key"
}

func (c *operatorKeyStatusCommand) Help() string {
	return helpText(`
Usage: ward operator key-status [options]

  Prints the active barrier key term, when it was installed and how many
  encryptions it has performed.
`, c.flags())
}

func (c *operatorKeyStatusCommand) flags() *flag.FlagSet {
	return c.flagSet("operator key-status", withFormat)
}

func (c *operatorKeyStatusCommand) Run(args []string) int {
	_, client, code := c.begin(c.flags(), args, 0, 0)
	if code != exitOK {
		return code
	}
	status, err := client.Sys().KeyStatusWithContext(context.Background())
	if err != nil {
		return remoteFailed("reading key status", err)
	}
	if c.jsonOutput() {
		return printJSON(status)
	}
	printKeyValues(keyStatusRows(status))
	return exitOK
}

// ---- operator rekey ----

type operatorRekeyCommand struct {
	baseCommand
	flagInit, flagCancel, flagStatus bool
	flagKeyShares, flagKeyThreshold  int
	flagNonce, flagTarget            string
	flagPGPKeys                      string
	flagBackup, flagVerify           bool
}

func (c *operatorRekeyCommand) Synopsis() string { return "Generate new unseal keys" }

func (c *operatorRekeyCommand) Help() string {
	return helpText(`
Usage: ward operator rekey [options] [KEY]

  Generates a new set of unseal keys (or, with -target=recovery, recovery
  keys of an auto-unseal seal), optionally changing their number and
  threshold. A threshold of the current keys must be provided. The server
  stays unsealed throughout. Needs sudo on sys/rekey.

  Start a rekey:

      $ ward operator rekey -init -key-shares=5 -key-threshold=3

  Then, once per current key holder (the key is prompted for when not
  given; prefer that to an argument):

      $ ward operator rekey -nonce=NONCE

  The new keys are printed when the threshold is reached.

  With -verify at -init, the new keys are not stored until a threshold of
  them has been entered back: until then the current keys stay valid, so
  new keys lost on their way (a crash, a timeout) cost nothing. Once the
  new keys are printed, each new key holder runs:

      $ ward operator rekey -verify

  -verify -status shows the verification's progress; -verify -cancel
  restarts it (same new keys, new nonce); -cancel abandons the rekey.
`, c.flags())
}

func (c *operatorRekeyCommand) flags() *flag.FlagSet {
	fs := c.flagSet("operator rekey", withFormat)
	fs.BoolVar(&c.flagInit, "init", false, "Start a rekey.")
	fs.BoolVar(&c.flagCancel, "cancel", false, "Cancel the rekey in progress and discard the keys provided.")
	fs.BoolVar(&c.flagStatus, "status", false, "Print the progress of the rekey in progress.")
	fs.IntVar(&c.flagKeyShares, "key-shares", 5, "Number of new key shares (with -init).")
	fs.IntVar(&c.flagKeyThreshold, "key-threshold", 3, "Number of new key shares needed (with -init).")
	fs.StringVar(&c.flagNonce, "nonce", "", "Nonce of the rekey; read from the server when not given.")
	fs.StringVar(&c.flagTarget, "target", "barrier", `"barrier" (unseal keys) or "recovery" (recovery keys of an auto-unseal seal).`)
	fs.StringVar(&c.flagPGPKeys, "pgp-keys", "", "Not supported by Ward.")
	fs.BoolVar(&c.flagBackup, "backup", false, "Not supported by Ward.")
	fs.BoolVar(&c.flagVerify, "verify", false, "With -init: store the new keys only once a threshold of them has been entered back. "+
		"Otherwise: enter a new key to verify it (with -status or -cancel: the verification's).")
	return fs
}

func (c *operatorRekeyCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 0, 1) {
		return exitLocal
	}
	switch {
	case c.flagPGPKeys != "" || c.flagBackup:
		printErr("-pgp-keys and -backup are not supported by Ward")
		return exitLocal
	case c.flagTarget != "barrier" && c.flagTarget != "recovery":
		printErr("Invalid -target %q (expected \"barrier\" or \"recovery\")", c.flagTarget)
		return exitLocal
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()
	recovery := c.flagTarget == "recovery"
	sys := client.Sys()
	switch {
	case c.flagInit:
		if c.flagKeyShares < 1 || c.flagKeyThreshold < 1 || c.flagKeyThreshold > c.flagKeyShares {
			printErr("Invalid key shares/threshold: need 1 <= -key-threshold (%d) <= -key-shares (%d)", c.flagKeyThreshold, c.flagKeyShares)
			return exitLocal
		}
		client.SetMaxRetries(0)
		req := &api.RekeyInitRequest{SecretShares: c.flagKeyShares, SecretThreshold: c.flagKeyThreshold,
			RequireVerification: c.flagVerify}
		var st *api.RekeyStatusResponse
		if recovery {
			st, err = sys.RekeyRecoveryKeyInitWithContext(ctx, req)
		} else {
			st, err = sys.RekeyInitWithContext(ctx, req)
		}
		if err != nil {
			return remoteFailed("initializing rekey", err)
		}
		return c.printStatus(st)
	case c.flagVerify:
		return c.verify(ctx, client, recovery, args)
	case c.flagCancel:
		if recovery {
			err = sys.RekeyRecoveryKeyCancelWithContext(ctx)
		} else {
			err = sys.RekeyCancelWithContext(ctx)
		}
		if err != nil {
			return remoteFailed("canceling rekey", err)
		}
		writeOut("Success! Canceled rekeying (if it was started)\n")
		return exitOK
	case c.flagStatus:
		st, err := c.status(ctx, sys, recovery)
		if err != nil {
			return remoteFailed("reading rekey status", err)
		}
		return c.printStatus(st)
	}

	st, err := c.status(ctx, sys, recovery)
	if err != nil {
		return remoteFailed("reading rekey status", err)
	}
	if !st.Started {
		printErr("No rekey is in progress. Start one with \"ward operator rekey -init\".")
		return exitLocal
	}
	nonce := c.flagNonce
	if nonce == "" {
		nonce = st.Nonce
	}
	key, code := shareArg(args, "Key (will be hidden): ")
	if code != exitOK {
		return code
	}
	client.SetMaxRetries(0)
	var up *api.RekeyUpdateResponse
	if recovery {
		up, err = sys.RekeyRecoveryKeyUpdateWithContext(ctx, key, nonce)
	} else {
		up, err = sys.RekeyUpdateWithContext(ctx, key, nonce)
	}
	if err != nil {
		return remoteFailed("posting unseal key", err)
	}
	if !up.Complete {
		st, err := c.status(ctx, sys, recovery)
		if err != nil {
			return remoteFailed("reading rekey status", err)
		}
		return c.printStatus(st)
	}
	if c.jsonOutput() {
		return printJSON(up)
	}
	var b strings.Builder
	keys := up.KeysB64
	if len(keys) == 0 {
		keys = up.Keys
	}
	for i, k := range keys {
		fmt.Fprintf(&b, "Key %d: %s\n", i+1, k)
	}
	noun := "unseal keys"
	if recovery {
		noun = "recovery keys"
	}
	switch {
	case len(keys) > 0 && up.VerificationRequired:
		fmt.Fprintf(&b, "\nOperation nonce: %s\nVerification nonce: %s\n\n", up.Nonce, up.VerificationNonce)
		fmt.Fprintf(&b, "Ward generated %d key shares with a key threshold of %d. They are NOT in use yet:\n"+
			"the current %s stay valid until %d of the new ones are entered with\n"+
			"\"ward operator rekey -verify%s\". Please securely distribute the key shares\n"+
			"printed above.\n", len(keys), st.T, noun, st.T, targetFlag(recovery))
	case len(keys) > 0:
		fmt.Fprintf(&b, "\nOperation nonce: %s\n\n", up.Nonce)
		fmt.Fprintf(&b, "Ward rekeyed with %d key shares and a key threshold of %d. Please securely\n"+
			"distribute the key shares printed above. The old %s no longer work.\n", len(keys), st.T, noun)
	default:
		b.WriteString("Success! The root key was rotated (an auto-unseal seal has no unseal keys).\n")
	}
	writeOut(b.String())
	return exitOK
}

func targetFlag(recovery bool) string {
	if recovery {
		return " -target=recovery"
	}
	return ""
}

// verify drives the verification of the new keys (sys/rekey/verify): its
// status, its restart, or one new key. The endpoints are read through the
// response's data, which every server version fills.
func (c *operatorRekeyCommand) verify(ctx context.Context, client *api.Client, recovery bool, args []string) int {
	path := "sys/rekey/verify"
	if recovery {
		path = "sys/rekey-recovery-key/verify"
	}
	if c.flagCancel {
		if _, err := send(ctx, client, "DELETE", path, nil); err != nil {
			return remoteFailed("restarting the rekey verification", err)
		}
		writeOut("Success! Restarted the rekey verification (the new keys are unchanged; enter them again)\n")
		return exitOK
	}
	st, err := send(ctx, client, "GET", path, nil)
	if err != nil {
		return remoteFailed("reading the rekey verification status", err)
	}
	if c.flagStatus {
		return c.printVerifyStatus(st)
	}
	if st == nil || st.Data["started"] != true {
		printErr("No rekey is waiting for verification. Start one with \"ward operator rekey -init -verify\".")
		return exitLocal
	}
	nonce := c.flagNonce
	if nonce == "" {
		nonce, _ = st.Data["nonce"].(string)
	}
	key, code := shareArg(args, "New key (will be hidden): ")
	if code != exitOK {
		return code
	}
	client.SetMaxRetries(0)
	up, err := send(ctx, client, "PUT", path, map[string]any{"key": key, "nonce": nonce})
	if err != nil {
		return remoteFailed("posting the new key", err)
	}
	if up != nil && up.Data["complete"] == true {
		if c.jsonOutput() {
			return printJSON(up.Data)
		}
		writeOut("Success! Rekey verified: the new keys are in use and the old ones no longer work.\n")
		return exitOK
	}
	if st, err = send(ctx, client, "GET", path, nil); err != nil {
		return remoteFailed("reading the rekey verification status", err)
	}
	return c.printVerifyStatus(st)
}

func (c *operatorRekeyCommand) printVerifyStatus(st *api.Secret) int {
	data := map[string]any{}
	if st != nil && st.Data != nil {
		data = st.Data
	}
	if c.jsonOutput() {
		return printJSON(data)
	}
	printKeyValues([][]string{
		{"Verification Nonce", fmt.Sprint(data["nonce"])},
		{"Started", fmt.Sprint(data["started"])},
		{"Verification Progress", fmt.Sprintf("%v/%v", data["progress"], data["t"])},
		{"New Shares", fmt.Sprint(data["n"])},
		{"New Threshold", fmt.Sprint(data["t"])},
	})
	return exitOK
}

func (c *operatorRekeyCommand) status(ctx context.Context, sys *api.Sys, recovery bool) (*api.RekeyStatusResponse, error) {
	if recovery {
		return sys.RekeyRecoveryKeyStatusWithContext(ctx)
	}
	return sys.RekeyStatusWithContext(ctx)
}

func (c *operatorRekeyCommand) printStatus(st *api.RekeyStatusResponse) int {
	if c.jsonOutput() {
		return printJSON(st)
	}
	rows := [][]string{
		{"Nonce", st.Nonce},
		{"Started", fmt.Sprint(st.Started)},
		{"Rekey Progress", fmt.Sprintf("%d/%d", st.Progress, st.Required)},
		{"New Shares", fmt.Sprint(st.N)},
		{"New Threshold", fmt.Sprint(st.T)},
		{"Verification Required", fmt.Sprint(st.VerificationRequired)},
	}
	if st.VerificationNonce != "" {
		rows = append(rows, []string{"Verification Nonce", st.VerificationNonce})
	}
	printKeyValues(rows)
	return exitOK
}

// shareArg returns the key share from the arguments or, when absent, a
// prompt that does not echo it.
func shareArg(args []string, prompt string) (string, int) {
	var key string
	if len(args) == 1 {
		key = strings.TrimSpace(args[0])
	} else {
		var err error
		if key, err = promptSecret(prompt); err != nil {
			printErr("Error reading key: %s", err)
			return "", exitLocal
		}
	}
	if key == "" {
		printErr("No key provided")
		return "", exitLocal
	}
	return key, exitOK
}

// ---- operator generate-root ----

type operatorGenerateRootCommand struct {
	baseCommand
	flagInit, flagCancel, flagStatus, flagGenerateOTP bool
	flagDecode, flagOTP, flagNonce, flagPGPKey        string
}

func (c *operatorGenerateRootCommand) Synopsis() string { return "Generate a new root token" }

func (c *operatorGenerateRootCommand) Help() string {
	return helpText(`
Usage: ward operator generate-root [options] [KEY]

  Generates a new root token from a threshold of unseal keys (recovery keys
  with an auto-unseal seal). No token is needed: the key shares are the
  authority. The token is returned encoded with a one-time password (OTP)
  only the initiator holds, in Vault's encoding.

  Start, letting the server choose the OTP (printed once):

      $ ward operator generate-root -init

  Provide keys, once per key holder:

      $ ward operator generate-root

  Decode the encoded token:

      $ ward operator generate-root -decode=ENCODED -otp=OTP
`, c.flags())
}

func (c *operatorGenerateRootCommand) flags() *flag.FlagSet {
	fs := c.flagSet("operator generate-root", withFormat)
	fs.BoolVar(&c.flagInit, "init", false, "Start a root token generation.")
	fs.BoolVar(&c.flagCancel, "cancel", false, "Cancel the generation in progress.")
	fs.BoolVar(&c.flagStatus, "status", false, "Print the progress of the generation in progress.")
	fs.BoolVar(&c.flagGenerateOTP, "generate-otp", false, "Print a random OTP of the length the server expects.")
	fs.StringVar(&c.flagDecode, "decode", "", "Decode this encoded root token (with -otp).")
	fs.StringVar(&c.flagOTP, "otp", "", "OTP for -init (optional) or -decode.")
	fs.StringVar(&c.flagNonce, "nonce", "", "Nonce of the generation; read from the server when not given.")
	fs.StringVar(&c.flagPGPKey, "pgp-key", "", "Not supported by Ward.")
	return fs
}

func (c *operatorGenerateRootCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(args, 0, 1) {
		return exitLocal
	}
	if c.flagPGPKey != "" {
		printErr("-pgp-key is not supported by Ward; use an OTP")
		return exitLocal
	}
	if c.flagDecode != "" {
		if c.flagOTP == "" {
			printErr("-decode needs -otp")
			return exitLocal
		}
		tok, err := decodeRootToken(c.flagDecode, c.flagOTP)
		if err != nil {
			printErr("Error decoding the root token: %s", err)
			return exitLocal
		}
		if c.jsonOutput() {
			return printJSON(map[string]string{"token": tok})
		}
		printKeyValues([][]string{{"Root Token", tok}})
		return exitOK
	}
	client, err := c.client()
	if err != nil {
		return clientFailed(err)
	}
	ctx := context.Background()
	sys := client.Sys()
	switch {
	case c.flagGenerateOTP:
		st, err := sys.GenerateRootStatusWithContext(ctx)
		if err != nil {
			return remoteFailed("getting root generation status", err)
		}
		otp, err := randomOTP(st.OTPLength)
		if err != nil {
			printErr("Error generating an OTP: %s", err)
			return exitLocal
		}
		writeOut(otp + "\n")
		return exitOK
	case c.flagInit:
		client.SetMaxRetries(0)
		st, err := sys.GenerateRootInitWithContext(ctx, c.flagOTP, "")
		if err != nil {
			return remoteFailed("initializing root generation", err)
		}
		return c.printStatus(st)
	case c.flagCancel:
		if err := sys.GenerateRootCancelWithContext(ctx); err != nil {
			return remoteFailed("canceling root token generation", err)
		}
		writeOut("Success! Root token generation canceled (if it was started)\n")
		return exitOK
	case c.flagStatus:
		st, err := sys.GenerateRootStatusWithContext(ctx)
		if err != nil {
			return remoteFailed("getting root generation status", err)
		}
		return c.printStatus(st)
	}
	st, err := sys.GenerateRootStatusWithContext(ctx)
	if err != nil {
		return remoteFailed("getting root generation status", err)
	}
	if !st.Started {
		printErr("No root generation is in progress. Start one with \"ward operator generate-root -init\".")
		return exitLocal
	}
	nonce := c.flagNonce
	if nonce == "" {
		nonce = st.Nonce
	}
	key, code := shareArg(args, "Key (will be hidden): ")
	if code != exitOK {
		return code
	}
	client.SetMaxRetries(0)
	st, err = sys.GenerateRootUpdateWithContext(ctx, key, nonce)
	if err != nil {
		return remoteFailed("posting unseal key", err)
	}
	return c.printStatus(st)
}

func (c *operatorGenerateRootCommand) printStatus(st *api.GenerateRootStatusResponse) int {
	if c.jsonOutput() {
		return printJSON(st)
	}
	rows := [][]string{
		{"Nonce", st.Nonce},
		{"Started", fmt.Sprint(st.Started)},
		{"Progress", fmt.Sprintf("%d/%d", st.Progress, st.Required)},
		{"Complete", fmt.Sprint(st.Complete)},
	}
	if st.EncodedToken != "" {
		rows = append(rows, []string{"Encoded Token", st.EncodedToken})
	}
	if st.OTP != "" {
		rows = append(rows, []string{"OTP", st.OTP})
	}
	if st.OTPLength != 0 {
		rows = append(rows, []string{"OTP Length", fmt.Sprint(st.OTPLength)})
	}
	printKeyValues(rows)
	if st.Complete {
		writeOut("\nDecode it with: ward operator generate-root -decode=<Encoded Token> -otp=<OTP>\n")
	}
	return exitOK
}

// decodeRootToken reverses Vault's encoding (sdk helper/roottoken with an
// OTP length > 0): raw standard base64 of the token XOR the OTP.
func decodeRootToken(encoded, otp string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(encoded, "="))
	if err != nil {
		return "", fmt.Errorf("not base64: %w", err)
	}
	if len(raw) != len(otp) {
		return "", fmt.Errorf("the OTP has %d characters, the encoded token %d bytes", len(otp), len(raw))
	}
	for i := range raw {
		raw[i] ^= otp[i]
	}
	return string(raw), nil
}

// randomOTP returns n random base62 characters, as Vault's -generate-otp.
func randomOTP(n int) (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	if n <= 0 {
		return "", fmt.Errorf("the server reports no OTP length")
	}
	out := make([]byte, n)
	for i := range out {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		out[i] = alphabet[v.Int64()]
	}
	return string(out), nil
}
