package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/openbao/openbao/api/v2"
)

// loginMethod says how the credentials of one auth method type are sent to
// its login endpoint, auth/MOUNT/login[/PATHKEY]. Every argument other than
// pathKey goes in the body as given, so a method's optional parameters need
// no change here.
type loginMethod struct {
	// pathKey, if set, is the argument that names the login path
	// (auth/MOUNT/login/<value>) instead of going in the body.
	pathKey string
	// required are the arguments that must be given, non-empty.
	required []string
	// prompted is the secret argument asked for when absent: without echo
	// on a terminal, as one line of stdin otherwise.
	prompted string
	// identifiers are arguments that never contain whitespace: surrounding
	// whitespace (the newline of key=@file) is dropped.
	identifiers []string
}

// tokenMethod is the default -method: an existing token, verified with a
// lookup-self rather than exchanged at a login endpoint.
const tokenMethod = "token"

// loginMethods are the -method values other than "token".
var loginMethods = map[string]loginMethod{
	"userpass": {pathKey: "username", prompted: "password", identifiers: []string{"username"}},
	"approle":  {required: []string{"role_id"}, identifiers: []string{"role_id", "secret_id"}},
	"jwt":      {required: []string{"jwt"}, identifiers: []string{"role", "jwt"}},
}

// methodNames lists the -method values for messages.
func methodNames() string {
	names := []string{tokenMethod}
	rest := make([]string, 0, len(loginMethods))
	for n := range loginMethods {
		rest = append(rest, n)
	}
	sort.Strings(rest)
	return strings.Join(append(names, rest...), ", ")
}

type loginCommand struct {
	baseCommand
	flagMethod    string
	flagPath      string
	flagNoStore   bool
	flagTokenOnly bool
}

func (c *loginCommand) Synopsis() string { return "Authenticate locally" }

func (c *loginCommand) Help() string {
	return helpText(`
Usage: ward login [options] [TOKEN | KEY=VALUE…]

  Authenticates to Ward and stores the resulting token in ~/`+tokenFileName+`
  (mode 0600), where later commands read it unless WARD_TOKEN or
  VAULT_TOKEN is set.

  The default method, "token", checks an existing token with a lookup and
  stores it. Give the token as TOKEN; with "-" it is read from stdin, and
  with no argument it is prompted for (not echoed) on a terminal or read
  as one line from stdin otherwise:

      $ ward login
      $ ward login - < token.txt

  Other methods take KEY=VALUE arguments, sent to auth/PATH/login. A value
  of @FILE reads the file and a value of - reads stdin, as in "ward write".
  -method is the auth method TYPE; -path is where it is enabled (default:
  the TYPE).

      $ ward login -method=userpass username=alice
      $ ward login -method=approle role_id=… secret_id=@secret-id.txt
      $ ward login -method=jwt -path=ci role=deploy jwt=@/run/ci/id-token

  userpass needs username; without password=… the password is prompted
  for (not echoed) on a terminal or read as one line from stdin otherwise.
  approle needs role_id and, if the role binds one, secret_id. jwt needs
  jwt and, unless the method has a default role, role.

  -token-only prints only the token and does not store it; -no-store shows
  the usual output without storing the token.
`, c.flags())
}

func (c *loginCommand) flags() *flag.FlagSet {
	fs := c.flagSet("login", withFormat|withField)
	fs.StringVar(&c.flagMethod, "method", tokenMethod,
		"Auth method TYPE: "+methodNames()+". Use -path for where it is enabled.")
	fs.StringVar(&c.flagPath, "path", "",
		"Path where the auth method is enabled (default: the method TYPE, e.g. userpass/).")
	fs.BoolVar(&c.flagNoStore, "no-store", false,
		"Do not store the token in ~/"+tokenFileName+"; it is only shown in the output.")
	fs.BoolVar(&c.flagTokenOnly, "token-only", false,
		`Print only the token, and do not store it: short for "-field=token -no-store".`)
	return fs
}

func (c *loginCommand) Run(args []string) int {
	args, ok := c.parse(c.flags(), args)
	if !ok {
		return exitLocal
	}
	if c.flagTokenOnly {
		c.flagNoStore, c.flagField = true, "token"
	}
	method := strings.ToLower(sanitizePath(c.flagMethod))
	if method == "" {
		method = tokenMethod
	}

	var secret *api.Secret
	var code int
	if method == tokenMethod {
		secret, code = c.loginToken(args)
	} else if spec, ok := loginMethods[method]; ok {
		secret, code = c.loginWith(method, spec, args)
	} else {
		printErr("Unknown auth method: %s (expected one of %s). -method takes the TYPE; "+
			"use -path for where it is enabled, and \"ward auth list\" to see the enabled methods.",
			method, methodNames())
		return exitLocal
	}
	if code != exitOK {
		return code
	}
	return c.finish(secret)
}

// loginToken verifies an existing token with lookup-self and returns a
// secret whose auth block describes it, as a login would have.
func (c *loginCommand) loginToken(args []string) (*api.Secret, int) {
	if c.flagPath != "" {
		printErr("-path does not apply to -method=token")
		return nil, exitLocal
	}
	if !checkArgs(args, 0, 1) {
		return nil, exitLocal
	}
	var token string
	given := len(args) == 1
	if given {
		arg := args[0]
		if !strings.HasPrefix(arg, "token=") {
			// A bare token (a token could contain "=": only the exact
			// key selects key=value parsing).
			arg = "token=" + arg
		}
		data, err := parseKVArgs(stdin, []string{arg})
		if err != nil {
			printErr("Failed to parse K=V data: %s", err)
			return nil, exitLocal
		}
		v, ok := data["token"].(string)
		if !ok {
			printErr("The token must be a single value")
			return nil, exitLocal
		}
		token = strings.TrimSpace(v)
	}
	client, err := c.clientWithoutToken()
	if err != nil {
		return nil, clientFailed(err)
	}
	if !given {
		if token, err = promptSecret("Token (will be hidden): "); err != nil && !errors.Is(err, io.EOF) {
			printErr("Error reading token: %s", err)
			return nil, exitLocal
		}
	}
	if token == "" {
		printErr("No token provided")
		return nil, exitLocal
	}

	client.SetToken(token)
	lookup, err := client.Auth().Token().LookupSelfWithContext(context.Background())
	if err != nil {
		return nil, remoteFailed("authenticating", err)
	}
	if lookup == nil || lookup.Data == nil {
		printErr("Error authenticating: empty token lookup reply from the server")
		return nil, exitRemote
	}
	auth, err := tokenAuth(lookup, token)
	if err != nil {
		printErr("Error authenticating: unexpected token lookup reply: %s", err)
		return nil, exitRemote
	}
	return &api.Secret{Auth: auth, Warnings: lookup.Warnings}, exitOK
}

// tokenAuth builds the auth block of token from its lookup data, with the
// fields a login reply would carry.
func tokenAuth(lookup *api.Secret, token string) (*api.SecretAuth, error) {
	accessor, err := lookup.TokenAccessor()
	if err != nil {
		return nil, err
	}
	// TokenPolicies also fills lookup.Auth's token and identity policies.
	policies, err := lookup.TokenPolicies()
	if err != nil {
		return nil, err
	}
	metadata, err := lookup.TokenMetadata()
	if err != nil {
		return nil, err
	}
	ttl, err := lookup.TokenTTL()
	if err != nil {
		return nil, err
	}
	renewable, err := lookup.TokenIsRenewable()
	if err != nil {
		return nil, err
	}
	auth := &api.SecretAuth{
		ClientToken:   token,
		Accessor:      accessor,
		Policies:      policies,
		Metadata:      metadata,
		LeaseDuration: int(ttl.Seconds()),
		Renewable:     renewable,
	}
	if lookup.Auth != nil {
		auth.TokenPolicies = lookup.Auth.TokenPolicies
		auth.IdentityPolicies = lookup.Auth.IdentityPolicies
	}
	return auth, nil
}

// loginWith logs in at auth/MOUNT/login[/…] with the KEY=VALUE arguments.
// Errors name arguments by key, never by value.
func (c *loginCommand) loginWith(method string, spec loginMethod, args []string) (*api.Secret, int) {
	mount := sanitizePath(c.flagPath)
	if mount == "" {
		mount = method
	}
	data, err := parseKVArgs(stdin, args)
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return nil, exitLocal
	}
	for _, k := range spec.identifiers {
		if _, present := data[k]; !present {
			continue
		}
		v, ok := data[k].(string)
		if !ok {
			printErr("%s must be a single string value", k)
			return nil, exitLocal
		}
		data[k] = strings.TrimSpace(v)
	}
	required := spec.required
	if spec.pathKey != "" {
		required = append([]string{spec.pathKey}, required...)
	}
	for _, k := range required {
		if v, _ := data[k].(string); v == "" {
			printErr("Missing %s: the %s method needs %s=…", k, method, k)
			return nil, exitLocal
		}
	}
	loginPath := "auth/" + mount + "/login"
	if k := spec.pathKey; k != "" {
		v := data[k].(string)
		if strings.Contains(v, "/") || v == "." || v == ".." {
			printErr("Invalid %s: it cannot contain \"/\" or be \".\" or \"..\"", k)
			return nil, exitLocal
		}
		loginPath += "/" + v
		delete(data, k)
	}

	client, err := c.clientWithoutToken()
	if err != nil {
		return nil, clientFailed(err)
	}
	if k := spec.prompted; k != "" {
		if _, present := data[k]; !present {
			v, err := promptSecret(strings.ToUpper(k[:1]) + k[1:] + " (will be hidden): ")
			if err != nil && !errors.Is(err, io.EOF) { // EOF: nothing given
				printErr("Error reading %s: %s", k, err)
				return nil, exitLocal
			}
			if v == "" {
				printErr("No %s provided", k)
				return nil, exitLocal
			}
			data[k] = v
		}
	}

	// A retried login whose first attempt reached the server would mint a
	// second token (and may spend a single-use secret ID): fail instead.
	client.SetMaxRetries(0)
	secret, err := client.Logical().WriteWithContext(context.Background(), loginPath, data)
	if err != nil {
		return nil, remoteFailed("authenticating", err)
	}
	switch {
	case secret == nil || secret.Auth == nil:
		printErr("Error authenticating: the server's reply has no auth information")
		return nil, exitRemote
	case secret.Auth.ClientToken == "":
		printErr("Error authenticating: the server's reply has no token")
		return nil, exitRemote
	}
	return secret, exitOK
}

// finish stores the token of a successful login (unless -no-store) and
// prints the result.
func (c *loginCommand) finish(secret *api.Secret) int {
	if c.flagNoStore {
		if !c.flagTokenOnly {
			printErr("The token was not stored in ~/%s. Set the WARD_TOKEN environment\n"+
				"variable or pass the token below with each request to Ward.\n", tokenFileName)
		}
	} else {
		if err := storeToken(secret.Auth.ClientToken); err != nil {
			printErr("Error storing token: %s", err)
			printErr("Authentication was successful, but the token was not stored. The\n" +
				"resulting token is shown below for your records.\n")
			c.outputSecret(secret)
			return exitLocal
		}
		warnTokenVariable()
	}

	if c.flagField != "" {
		return c.printField(secret, c.flagField)
	}
	if !c.jsonOutput() {
		if c.flagNoStore {
			writeOut("Success! You are now authenticated.\n\n")
		} else {
			writeOut("Success! You are now authenticated. The token information displayed below\n" +
				"is already stored in ~/" + tokenFileName + ". You do NOT need to run \"ward login\"\n" +
				"again. Future Ward requests will automatically use this token.\n\n")
		}
	}
	return c.outputSecret(secret)
}

// warnTokenVariable warns that a token variable overrides the stored token.
func warnTokenVariable() {
	for _, name := range []string{"WARD_TOKEN", "VAULT_TOKEN"} {
		if os.Getenv(name) != "" {
			printErr("WARNING! The %s environment variable is set! The value of this variable\n"+
				"will take precedence; if this is unwanted please unset %s or update its\n"+
				"value accordingly.\n", name, name)
			return
		}
	}
}

// storeToken writes token to ~/.ward-token, readable only by the user. It
// writes a temporary file in the same directory and renames it over the old
// one, so a reader never sees a partial token and a failure leaves the
// previous token in place.
func storeToken(token string) (err error) {
	path, err := tokenFilePath()
	if err != nil {
		return fmt.Errorf("locating the home directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), tokenFileName+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.WriteString(token); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
