package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// Exit codes, as the Vault CLI documents them: 1 for local errors (flags,
// arguments, input files), 2 for errors from the server or from reaching it.
const (
	exitOK     = 0
	exitLocal  = 1
	exitRemote = 2
)

// defaultAddress is used when neither -address nor WARD_ADDR/VAULT_ADDR is set.
const defaultAddress = "https://127.0.0.1:8200"

// tokenFileName is read from the home directory when no token variable is
// set (Vault's equivalent is ~/.vault-token).
const tokenFileName = ".ward-token"

// firstEnv returns the first non-empty variable among names, Ward's own name
// first so WARD_X overrides VAULT_X.
func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// outputKind says which output flags a command accepts.
type outputKind int

const (
	withFormat    outputKind = 1 << iota // -format
	withField                            // -field
	withWrapTTL                          // -wrap-ttl (and WARD_WRAP_TTL/VAULT_WRAP_TTL)
	noOutputFlags outputKind = 0
)

// baseCommand holds the flags every command shares and builds the client.
// Commands embed it and add their own flags in flags().
type baseCommand struct {
	flagAddress       string
	flagCACert        string
	flagTLSSkipVerify bool
	flagFormat        string
	flagField         string
	flagWrapTTL       string
	// wrapping says the command accepts -wrap-ttl: only then do the flag
	// and WARD_WRAP_TTL/VAULT_WRAP_TTL apply.
	wrapping bool
}

// Names of the shared flags, so help can list them apart from command flags.
var (
	httpFlagNames   = map[string]bool{"address": true, "ca-cert": true, "tls-skip-verify": true, "wrap-ttl": true}
	outputFlagNames = map[string]bool{"format": true, "field": true}
)

// flagSet returns a FlagSet with the shared flags registered. Parse errors are
// reported by parse, so the set itself writes nothing.
func (b *baseCommand) flagSet(name string, out outputKind) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&b.flagAddress, "address", "",
		"Address of the Ward server. Overrides WARD_ADDR, then VAULT_ADDR; default "+defaultAddress+".")
	fs.StringVar(&b.flagCACert, "ca-cert", "",
		"Path to a PEM CA certificate used to verify the server. Overrides WARD_CACERT, then VAULT_CACERT.")
	fs.BoolVar(&b.flagTLSSkipVerify, "tls-skip-verify", false,
		"Do not verify the server's TLS certificate. Insecure; also WARD_SKIP_VERIFY or VAULT_SKIP_VERIFY.")
	if out&withFormat != 0 {
		fs.StringVar(&b.flagFormat, "format", "",
			`Output format: "table" or "json". Overrides WARD_FORMAT, then VAULT_FORMAT; default table.`)
	}
	if out&withField != 0 {
		fs.StringVar(&b.flagField, "field", "",
			"Print only this field, raw (no trailing newline unless stdout is a terminal).")
	}
	if out&withWrapTTL != 0 {
		b.wrapping = true
		fs.StringVar(&b.flagWrapTTL, "wrap-ttl", "",
			`Wrap the response in a single-use token living this long ("60s", "5m" or seconds); `+
				"unwrap it with 'ward unwrap'. Overrides WARD_WRAP_TTL, then VAULT_WRAP_TTL.")
	}
	return fs
}

// wrapTTL returns the wrap TTL the command asks for, in seconds ("" for
// none): -wrap-ttl, else WARD_WRAP_TTL, else VAULT_WRAP_TTL.
func (b *baseCommand) wrapTTL() (string, error) {
	if !b.wrapping {
		return "", nil
	}
	v := b.flagWrapTTL
	if v == "" {
		v = firstEnv("WARD_WRAP_TTL", "VAULT_WRAP_TTL")
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	d, err := parseDuration(v)
	if err != nil || d < time.Second {
		return "", fmt.Errorf("invalid wrap TTL %q: want a duration of at least 1s", v)
	}
	return strconv.FormatInt(int64(d/time.Second), 10), nil
}

// parse parses args, validates the output flags and returns the positional
// arguments. On failure it has printed the error; return exitLocal.
func (b *baseCommand) parse(fs *flag.FlagSet, args []string) ([]string, bool) {
	if err := fs.Parse(args); err != nil {
		printErr("%s", err)
		printErr("Run 'ward %s -h' for usage.", fs.Name())
		return nil, false
	}
	if name := misplacedFlag(fs, args); name != "" {
		// Go's flag parsing stops at the first positional argument, so a
		// flag after it would silently become data (a key named "-cas").
		printErr("Flag -%s must come before the positional arguments", name)
		printErr("Run 'ward %s -h' for usage.", fs.Name())
		return nil, false
	}
	switch f := b.format(); f {
	case "table", "json":
	default:
		printErr("Invalid output format: %s (expected \"table\" or \"json\")", f)
		return nil, false
	}
	return fs.Args(), true
}

// misplacedFlag returns the name of a flag of fs found among the positional
// arguments, unless "--" explicitly ended the flags. Only the name is
// returned: the value may be a secret.
func misplacedFlag(fs *flag.FlagSet, args []string) string {
	for _, a := range args {
		if a == "--" {
			return ""
		}
	}
	for _, a := range fs.Args() {
		name, ok := strings.CutPrefix(a, "-")
		if !ok || name == "" {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		if fs.Lookup(name) != nil {
			return name
		}
	}
	return ""
}

// begin parses flags, checks the argument count and builds the client.
func (b *baseCommand) begin(fs *flag.FlagSet, args []string, min, max int) ([]string, *api.Client, int) {
	args, ok := b.parse(fs, args)
	if !ok || !checkArgs(args, min, max) {
		return nil, nil, exitLocal
	}
	client, err := b.client()
	if err != nil {
		return nil, nil, clientFailed(err)
	}
	return args, client, exitOK
}

// format returns the output format: -format, else WARD_FORMAT/VAULT_FORMAT,
// else table.
func (b *baseCommand) format() string {
	if b.flagFormat != "" {
		return strings.ToLower(b.flagFormat)
	}
	if f := firstEnv("WARD_FORMAT", "VAULT_FORMAT"); f != "" {
		return strings.ToLower(f)
	}
	return "table"
}

func (b *baseCommand) jsonOutput() bool { return b.format() == "json" }

// clientWithoutToken builds an OpenBao API client from flags and
// environment, with no token (what login needs). It starts from
// api.NewConfig, which ignores BAO_*/VAULT_* variables, so the precedence
// here (flag, WARD_*, VAULT_*) is the only one that applies.
//
// Retries keep the library default (2 retries on 5xx and connection errors,
// as the Vault CLI does) unless WARD_MAX_RETRIES/VAULT_MAX_RETRIES says
// otherwise; commands whose repetition is harmful call SetMaxRetries(0).
func (b *baseCommand) clientWithoutToken() (*api.Client, error) {
	cfg := api.NewConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = b.flagAddress
	if cfg.Address == "" {
		cfg.Address = firstEnv("WARD_ADDR", "VAULT_ADDR")
	}
	if cfg.Address == "" {
		cfg.Address = defaultAddress
	}

	if v := firstEnv("WARD_MAX_RETRIES", "VAULT_MAX_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("invalid WARD_MAX_RETRIES/VAULT_MAX_RETRIES value %q", v)
		}
		cfg.MaxRetries = n
	}

	tlsCfg := &api.TLSConfig{CACert: b.flagCACert, Insecure: b.flagTLSSkipVerify}
	if tlsCfg.CACert == "" {
		tlsCfg.CACert = firstEnv("WARD_CACERT", "VAULT_CACERT")
	}
	if !tlsCfg.Insecure {
		if v := firstEnv("WARD_SKIP_VERIFY", "VAULT_SKIP_VERIFY"); v != "" {
			skip, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("invalid WARD_SKIP_VERIFY/VAULT_SKIP_VERIFY value %q", v)
			}
			tlsCfg.Insecure = skip
		}
	}
	if tlsCfg.CACert != "" || tlsCfg.Insecure {
		if err := cfg.ConfigureTLS(tlsCfg); err != nil {
			return nil, fmt.Errorf("configuring TLS: %w", err)
		}
	}

	wrapTTL, err := b.wrapTTL()
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	// api.NewClient reads BAO_TOKEN (or VAULT_TOKEN) itself; drop it so
	// only Ward's precedence (resolveToken) applies.
	client.ClearToken()
	if wrapTTL != "" {
		client.SetWrappingLookupFunc(func(string, string) string { return wrapTTL })
	}
	return client, nil
}

// client builds the client as clientWithoutToken does, authenticated with
// the token resolveToken finds.
func (b *baseCommand) client() (*api.Client, error) {
	client, err := b.clientWithoutToken()
	if err != nil {
		return nil, err
	}
	token, err := resolveToken()
	if err != nil {
		return nil, err
	}
	if token != "" {
		client.SetToken(token)
	}
	return client, nil
}

// resolveToken returns WARD_TOKEN, else VAULT_TOKEN, else the contents of
// ~/.ward-token, else "" (unauthenticated: enough for status, init, unseal).
func resolveToken() (string, error) {
	if t := firstEnv("WARD_TOKEN", "VAULT_TOKEN"); t != "" {
		return strings.TrimSpace(t), nil
	}
	path, err := tokenFilePath()
	if err != nil {
		return "", nil
	}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		// The error names the file, never its contents.
		return "", fmt.Errorf("reading token file: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// tokenFilePath returns the path of ~/.ward-token.
func tokenFilePath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, tokenFileName), nil
}

// clientFailed reports a client construction error (bad address, CA file,
// token file): a local problem.
func clientFailed(err error) int {
	printErr("Error initializing client: %s", err)
	return exitLocal
}

// remoteFailed reports an error returned by the server (or by the transport
// while reaching it) as "Error <doing>: <message>".
func remoteFailed(doing string, err error) int {
	msg := describeError(err)
	sep := ": "
	if strings.HasPrefix(msg, "\n") {
		sep = ":" // a list of messages, one per line
	}
	printErr("Error %s%s%s", doing, sep, msg)
	return exitRemote
}

// describeError renders an API error as the server's own message(s) rather
// than the client library's multi-line dump.
func describeError(err error) string {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return err.Error()
	}
	var msgs []string
	for _, m := range re.Errors {
		if m = strings.TrimSpace(m); m != "" {
			msgs = append(msgs, m)
		}
	}
	switch {
	case len(msgs) == 0:
		return fmt.Sprintf("server returned HTTP %d", re.StatusCode)
	case re.RawError:
		// Not a Vault-style JSON error (a proxy page, say): show the start.
		const max = 200
		m := msgs[0]
		if r := []rune(m); len(r) > max {
			m = string(r[:max]) + "…"
		}
		return fmt.Sprintf("HTTP %d: %s", re.StatusCode, m)
	case len(msgs) == 1:
		return msgs[0]
	default:
		return "\n* " + strings.Join(msgs, "\n* ")
	}
}

// checkArgs verifies the number of positional arguments (max < 0: no upper
// bound) and prints Vault's message when it is wrong.
func checkArgs(args []string, min, max int) bool {
	expected := strconv.Itoa(min)
	switch {
	case max < 0:
		expected = fmt.Sprintf("%d or more", min)
	case max != min:
		expected = fmt.Sprintf("%d to %d", min, max)
	}
	switch {
	case len(args) < min:
		printErr("Not enough arguments (expected %s, got %d)", expected, len(args))
		return false
	case max >= 0 && len(args) > max:
		printErr("Too many arguments (expected %s, got %d)", expected, len(args))
		return false
	}
	return true
}

// sanitizePath trims spaces and surrounding slashes from a user-given path.
func sanitizePath(p string) string {
	return strings.Trim(strings.TrimSpace(p), "/")
}

// send issues method on /v1/<path> with body encoded as JSON (no body if nil)
// and parses the reply as a secret; an empty reply (204) gives nil, nil. It
// exists for the methods the Logical client does not offer (POST, LIST).
func send(ctx context.Context, client *api.Client, method, path string, body any) (*api.Secret, error) {
	r := client.NewRequest(method, "/v1/"+path)
	if body != nil {
		if err := r.SetJSONBody(body); err != nil {
			return nil, err
		}
	}
	resp, err := client.RawRequestWithContext(ctx, r)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return api.ParseSecret(resp.Body)
}

// list issues a LIST on path. A 404 (nothing there) gives nil, nil, as in
// the Logical client.
func list(ctx context.Context, client *api.Client, path string) (*api.Secret, error) {
	r := client.NewRequest("LIST", "/v1/"+path)
	resp, err := client.RawRequestWithContext(ctx, r)
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return api.ParseSecret(resp.Body)
}
