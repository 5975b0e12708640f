package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/openbao/openbao/api/v2"
)

var kvGroup = &groupCommand{
	synopsis: "Interact with Ward's key-value store",
	help: `Usage: ward kv <subcommand> [options] [args]

  Reads and writes secrets in a key-value secrets engine, version 1 or 2.
  The version is discovered from the server, so the same commands work on
  both; version 2 paths gain their "data/" or "metadata/" segment here.

  The secret is named either as MOUNT/PATH or with -mount:

      $ ward kv put secret/app/db password=s3cr3t
      $ ward kv get -mount=secret -field=password app/db
`,
}

var kvMetadataGroup = &groupCommand{
	synopsis: "Interact with the metadata of a KV version 2 secret",
	help: `Usage: ward kv metadata <subcommand> [options] KEY

  Reads, configures and deletes the metadata of a secret in a KV version 2
  secrets engine: its versions, max_versions, cas_required and custom
  metadata. Deleting the metadata deletes every version of the secret.
`,
}

// kvCommand is the base of the kv commands: the shared flags plus -mount and
// the resolution of a user path to API paths.
type kvCommand struct {
	baseCommand
	flagMount string
}

func (c *kvCommand) kvFlagSet(name string, out outputKind) *flag.FlagSet {
	fs := c.flagSet(name, out)
	fs.StringVar(&c.flagMount, "mount", "",
		`Mount path of the KV engine. With it, KEY is relative to the mount ("-mount=secret app/db"); without it, KEY starts with the mount ("secret/app/db").`)
	return fs
}

// kvPath is a secret's location once the engine has been identified.
type kvPath struct {
	mount   string // mount path with trailing slash, e.g. "secret/"
	v2      bool
	logical string // mount-qualified path the user named, e.g. "secret/app/db"
}

// at returns the API path: for v2, op ("data", "metadata", "delete", …) is
// inserted after the mount; v1 paths are used as they are.
func (p kvPath) at(op string) string {
	if !p.v2 {
		return p.logical
	}
	rest, ok := strings.CutPrefix(p.logical, p.mount)
	if !ok && p.logical+"/" == p.mount {
		rest, ok = "", true
	}
	if !ok {
		rest = p.logical
	}
	return path.Join(p.mount, op, rest)
}

// probePath is the path asked about in sys/internal/ui/mounts: -mount when
// given, else the key itself.
func (c *kvCommand) probePath(key string) string {
	if c.flagMount != "" {
		return sanitizePath(c.flagMount)
	}
	return sanitizePath(key)
}

// resolve finds the engine serving key (or -mount) and its version by asking
// sys/internal/ui/mounts, as the Vault CLI does.
func (c *kvCommand) resolve(ctx context.Context, client *api.Client, key string) (kvPath, error) {
	key = sanitizePath(key)
	probe := c.probePath(key)
	mount, version, err := kvPreflight(ctx, client, probe)
	if err != nil {
		return kvPath{}, err
	}
	if mount == "" {
		// Old servers (404 on the probe) or a reply without "path": assume
		// the mount is -mount, or the first segment of the key.
		mount = probe
		if c.flagMount == "" {
			mount, _, _ = strings.Cut(probe, "/")
		}
		mount += "/"
	}
	p := kvPath{mount: mount, v2: version == 2, logical: key}
	if c.flagMount != "" {
		p.logical = path.Join(mount, key)
	}
	return p, nil
}

// kvPreflight returns the mount path and KV version serving probePath.
// A 404 means a server without the endpoint: version 1, mount unknown.
func kvPreflight(ctx context.Context, client *api.Client, probePath string) (string, int, error) {
	r := client.NewRequest("GET", "/v1/sys/internal/ui/mounts/"+probePath)
	resp, err := client.RawRequestWithContext(ctx, r)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode == 404 {
			return "", 1, nil
		}
		return "", 0, err
	}
	secret, err := api.ParseSecret(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if secret == nil {
		return "", 0, errors.New("empty reply from the server")
	}
	mount, _ := secret.Data["path"].(string)
	if mount != "" && !strings.HasSuffix(mount, "/") {
		mount += "/"
	}
	version := 1
	if opts, ok := secret.Data["options"].(map[string]any); ok {
		if v, _ := opts["version"].(string); v == "2" {
			version = 2
		}
	}
	return mount, version, nil
}

// connect builds the client and resolves key to its engine; on failure it
// has printed the error and returns the exit code.
func (c *kvCommand) connect(key string) (context.Context, *api.Client, kvPath, int) {
	client, err := c.client()
	if err != nil {
		return nil, nil, kvPath{}, clientFailed(err)
	}
	ctx := context.Background()
	p, err := c.resolve(ctx, client, key)
	if err != nil {
		return nil, nil, kvPath{}, remoteFailed("finding the KV engine for "+c.probePath(key), err)
	}
	return ctx, client, p, exitOK
}

// start is the opening of the simple kv commands: parse flags, check the
// argument count, then connect for the first argument.
func (c *kvCommand) start(fs *flag.FlagSet, args []string, min, max int) (context.Context, *api.Client, kvPath, int) {
	args, ok := c.parse(fs, args)
	if !ok || !checkArgs(args, min, max) {
		return nil, nil, kvPath{}, exitLocal
	}
	return c.connect(args[0])
}

// printKVWrite prints the reply to a v2 write (the new version's metadata)
// or Vault's success line when there is no reply.
func (c *kvCommand) printKVWrite(secret *api.Secret, apiPath string) int {
	if secret == nil {
		if !c.jsonOutput() {
			writeOut("Success! Data written to: " + apiPath + "\n")
		}
		return exitOK
	}
	if c.flagField != "" {
		return c.printField(secret, c.flagField)
	}
	if c.jsonOutput() {
		return printJSON(secret)
	}
	printWarnings(secret)
	printPathHeader("Secret Path", apiPath)
	writeOut(sectionHeader("Metadata", secret.Data) + "\n")
	printKeyValues(mapRows(secret.Data))
	return exitOK
}

// ---- kv get ----

type kvGetCommand struct {
	kvCommand
	flagVersion int
}

func (c *kvGetCommand) Synopsis() string { return "Retrieve data from the KV store" }

func (c *kvGetCommand) Help() string {
	return helpText(`
Usage: ward kv get [options] KEY

  Retrieves the secret at KEY. For KV version 2, -version selects an older
  version; the table output shows the version's metadata, then the data.

      $ ward kv get secret/app/db
      $ ward kv get -version=1 -field=password secret/app/db
`, c.flags())
}

func (c *kvGetCommand) flags() *flag.FlagSet {
	fs := c.kvFlagSet("kv get", withFormat|withField)
	fs.IntVar(&c.flagVersion, "version", 0, "Version to read (KV v2 only); 0 reads the latest.")
	return fs
}

func (c *kvGetCommand) Run(args []string) int {
	ctx, client, p, code := c.start(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	apiPath := p.at("data")
	var params map[string][]string
	if p.v2 && c.flagVersion > 0 {
		params = map[string][]string{"version": {strconv.Itoa(c.flagVersion)}}
	}
	secret, err := client.Logical().ReadWithDataWithContext(ctx, apiPath, params)
	if err != nil {
		return remoteFailed("reading "+apiPath, err)
	}
	if secret == nil {
		printErr("No value found at %s", apiPath)
		return exitRemote
	}

	data := secret.Data
	var metadata map[string]any
	if p.v2 {
		data, _ = secret.Data["data"].(map[string]any)
		metadata, _ = secret.Data["metadata"].(map[string]any)
	}
	if c.flagField != "" {
		if data == nil {
			printErr("No data found at %s", apiPath)
			return exitRemote
		}
		return c.printField(data, c.flagField)
	}
	if c.jsonOutput() {
		return printJSON(secret)
	}
	printWarnings(secret)
	if p.v2 {
		printPathHeader("Secret Path", apiPath)
	}
	if metadata != nil {
		writeOut(sectionHeader("Metadata", metadata) + "\n")
		printKeyValues(mapRows(metadata))
		writeOut("\n")
	}
	if data != nil {
		if p.v2 {
			writeOut(sectionHeader("Data", data) + "\n")
		}
		printKeyValues(mapRows(data))
	}
	return exitOK
}

// ---- kv put ----

type kvPutCommand struct {
	kvCommand
	flagCAS int
}

func (c *kvPutCommand) Synopsis() string { return "Set or update data in the KV store" }

func (c *kvPutCommand) Help() string {
	return helpText(`
Usage: ward kv put [options] KEY [DATA]

  Writes DATA to KEY, replacing what was there (KV version 2 keeps the
  previous versions). DATA is key=value pairs; a value of @FILE reads the
  file, a value of - reads stdin, and a lone - reads a JSON object from stdin.

      $ ward kv put secret/app/db user=app password=@pw.txt
      $ ward kv put -cas=0 secret/app/db password=-   # create only
`, c.flags())
}

func (c *kvPutCommand) flags() *flag.FlagSet {
	fs := c.kvFlagSet("kv put", withFormat|withField)
	fs.IntVar(&c.flagCAS, "cas", -1,
		"Check-and-set (KV v2): write only if the current version is this one; 0 writes only if the key does not exist. -1 disables the check.")
	return fs
}

func (c *kvPutCommand) Run(args []string) int {
	fs := c.flags()
	rest, ok := c.parse(fs, args)
	if !ok || !checkArgs(rest, 1, -1) {
		return exitLocal
	}
	if len(rest) == 1 {
		printErr("Must supply data")
		return exitLocal
	}
	data, err := parseKVArgs(stdin, rest[1:])
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	ctx, client, p, code := c.connect(rest[0])
	if code != exitOK {
		return code
	}
	apiPath := p.at("data")
	body := data
	if p.v2 {
		body = map[string]any{"data": data}
		if c.flagCAS >= 0 {
			body["options"] = map[string]any{"cas": c.flagCAS}
		}
	}
	secret, err := send(ctx, client, "POST", apiPath, body)
	if err != nil {
		return remoteFailed("writing data to "+apiPath, err)
	}
	return c.printKVWrite(secret, apiPath)
}

// ---- kv patch ----

type kvPatchCommand struct {
	kvCommand
	flagCAS        int
	flagMethod     string
	flagRemoveData listFlag
}

func (c *kvPatchCommand) Synopsis() string { return "Update part of the data of a KV v2 secret" }

func (c *kvPatchCommand) Help() string {
	return helpText(`
Usage: ward kv patch [options] KEY [DATA]

  Changes some keys of an existing KV version 2 secret and keeps the others,
  creating a new version. DATA is key=value pairs as for "kv put".

  The default method sends an HTTP PATCH (JSON merge patch); if the server
  or the policy does not allow it, the command falls back to reading the
  secret and writing it back with check-and-set. -method=rw forces that.
`, c.flags())
}

func (c *kvPatchCommand) flags() *flag.FlagSet {
	fs := c.kvFlagSet("kv patch", withFormat|withField)
	fs.IntVar(&c.flagCAS, "cas", 0, "Check-and-set: patch only if the current version is this one (0: no check).")
	fs.StringVar(&c.flagMethod, "method", "", `"patch" (HTTP PATCH only) or "rw" (read, then write); default tries patch then rw.`)
	fs.Var(&c.flagRemoveData, "remove-data", "Key to remove from the secret; repeatable.")
	return fs
}

func (c *kvPatchCommand) Run(args []string) int {
	fs := c.flags()
	rest, ok := c.parse(fs, args)
	if !ok || !checkArgs(rest, 1, -1) {
		return exitLocal
	}
	if len(rest) == 1 && len(c.flagRemoveData.values) == 0 {
		printErr("Must supply data")
		return exitLocal
	}
	switch c.flagMethod {
	case "", "patch", "rw":
	default:
		printErr("Unsupported method provided to -method flag: %s", c.flagMethod)
		return exitLocal
	}
	data, err := parseKVArgs(stdin, rest[1:])
	if err != nil {
		printErr("Failed to parse K=V data: %s", err)
		return exitLocal
	}
	for _, k := range c.flagRemoveData.values {
		data[k] = nil // null removes a key in a JSON merge patch
	}
	ctx, client, p, code := c.connect(rest[0])
	if code != exitOK {
		return code
	}
	if !p.v2 {
		printErr("KV engine mount must be version 2 for patch support")
		return exitLocal
	}
	apiPath := p.at("data")

	if c.flagMethod == "rw" {
		return c.readThenWrite(ctx, client, apiPath, data)
	}
	body := map[string]any{"data": data}
	if c.flagCAS > 0 {
		body["options"] = map[string]any{"cas": c.flagCAS}
	}
	secret, err := client.Logical().JSONMergePatch(ctx, apiPath, body)
	if err != nil {
		var re *api.ResponseError
		if c.flagMethod == "" && errors.As(err, &re) {
			switch re.StatusCode {
			case 405: // server without PATCH
				return c.readThenWrite(ctx, client, apiPath, data)
			case 403: // policy without the "patch" capability
				printErr("Warning: HTTP PATCH was denied on %s; falling back to read-then-write. "+
					"Grant the \"patch\" capability to use PATCH.", apiPath)
				return c.readThenWrite(ctx, client, apiPath, data)
			}
		}
		return remoteFailed("writing data to "+apiPath, err)
	}
	return c.printKVWrite(secret, apiPath)
}

// readThenWrite merges patch into the current data and writes it back with
// check-and-set on the version read, so a concurrent write is not lost.
func (c *kvPatchCommand) readThenWrite(ctx context.Context, client *api.Client, apiPath string, patch map[string]any) int {
	current, err := client.Logical().ReadWithContext(ctx, apiPath)
	if err != nil {
		return remoteFailed("reading "+apiPath, err)
	}
	var data, meta map[string]any
	if current != nil {
		data, _ = current.Data["data"].(map[string]any)
		meta, _ = current.Data["metadata"].(map[string]any)
	}
	if data == nil || meta == nil {
		printErr("No value found at %s; patch only works on existing data", apiPath)
		return exitRemote
	}
	for k, v := range patch {
		if v == nil {
			delete(data, k)
			continue
		}
		data[k] = v
	}
	cas := meta["version"]
	if c.flagCAS > 0 {
		cas = c.flagCAS
	}
	secret, err := send(ctx, client, "POST", apiPath, map[string]any{
		"data":    data,
		"options": map[string]any{"cas": cas},
	})
	if err != nil {
		return remoteFailed("writing data to "+apiPath, err)
	}
	return c.printKVWrite(secret, apiPath)
}

// ---- kv delete / undelete / destroy ----

type kvDeleteCommand struct {
	kvCommand
	flagVersions listFlag
}

func (c *kvDeleteCommand) Synopsis() string { return "Delete versions of a secret in the KV store" }

func (c *kvDeleteCommand) Help() string {
	return helpText(`
Usage: ward kv delete [options] KEY

  Deletes the secret at KEY. For KV version 2 this is a soft delete of the
  latest version (or of -versions), which "kv undelete" reverses; "kv
  destroy" removes data for good. For KV version 1 the secret is removed.
`, c.flags())
}

func (c *kvDeleteCommand) flags() *flag.FlagSet {
	fs := c.kvFlagSet("kv delete", noOutputFlags)
	fs.Var(&c.flagVersions, "versions", "Versions to delete (KV v2), comma-separated or repeated: -versions=1,2.")
	return fs
}

func (c *kvDeleteCommand) Run(args []string) int {
	rest, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(rest, 1, 1) {
		return exitLocal
	}
	versions, err := parseVersions(c.flagVersions.values)
	if err != nil {
		printErr("%s", err)
		return exitLocal
	}
	ctx, client, p, code := c.connect(rest[0])
	if code != exitOK {
		return code
	}
	var apiPath string
	switch {
	case !p.v2 && len(versions) > 0:
		// Deleting the whole v1 secret when versions were asked for would
		// destroy more than requested.
		printErr("-versions is not supported on KV version 1 mounts")
		return exitLocal
	case len(versions) > 0:
		apiPath = p.at("delete")
		_, err = send(ctx, client, "POST", apiPath, map[string]any{"versions": versions})
	default:
		apiPath = p.at("data")
		_, err = client.Logical().DeleteWithContext(ctx, apiPath)
	}
	if err != nil {
		return remoteFailed("deleting "+apiPath, err)
	}
	writeOut("Success! Data deleted (if it existed) at: " + apiPath + "\n")
	return exitOK
}

// kvVersionsCommand implements undelete and destroy: a v2-only write of
// {"versions": [...]} to <mount>/<op>/<path>.
type kvVersionsCommand struct {
	kvCommand
	flagVersions listFlag
	op           string // "undelete" or "destroy"
	method       string // as in the KV v2 API docs
	synopsis     string
	usage        string
}

func newKVUndeleteCommand() *kvVersionsCommand {
	return &kvVersionsCommand{op: "undelete", method: "POST",
		synopsis: "Undelete versions of a KV v2 secret",
		usage: `
Usage: ward kv undelete [options] -versions=N[,N…] KEY

  Restores soft-deleted versions of a KV version 2 secret.
`}
}

func newKVDestroyCommand() *kvVersionsCommand {
	return &kvVersionsCommand{op: "destroy", method: "PUT",
		synopsis: "Permanently destroy versions of a KV v2 secret",
		usage: `
Usage: ward kv destroy [options] -versions=N[,N…] KEY

  Permanently removes the data of the given versions of a KV version 2
  secret. This cannot be undone.
`}
}

func (c *kvVersionsCommand) Synopsis() string { return c.synopsis }
func (c *kvVersionsCommand) Help() string     { return helpText(c.usage, c.flags()) }

func (c *kvVersionsCommand) flags() *flag.FlagSet {
	fs := c.kvFlagSet("kv "+c.op, noOutputFlags)
	fs.Var(&c.flagVersions, "versions", "Versions to "+c.op+", comma-separated or repeated: -versions=1,2. Required.")
	return fs
}

func (c *kvVersionsCommand) Run(args []string) int {
	rest, ok := c.parse(c.flags(), args)
	if !ok || !checkArgs(rest, 1, 1) {
		return exitLocal
	}
	versions, err := parseVersions(c.flagVersions.values)
	if err != nil {
		printErr("%s", err)
		return exitLocal
	}
	if len(versions) == 0 {
		printErr("No versions provided, use the \"-versions\" flag to specify the versions to %s.", c.op)
		return exitLocal
	}
	ctx, client, p, code := c.connect(rest[0])
	if code != exitOK {
		return code
	}
	if !p.v2 {
		printErr("kv %s is not supported on KV version 1 mounts", c.op)
		return exitLocal
	}
	apiPath := p.at(c.op)
	if _, err := send(ctx, client, c.method, apiPath, map[string]any{"versions": versions}); err != nil {
		return remoteFailed("writing to "+apiPath, err)
	}
	writeOut("Success! Data written to: " + apiPath + "\n")
	return exitOK
}

// ---- kv list ----

type kvListCommand struct{ kvCommand }

func (c *kvListCommand) Synopsis() string { return "List data or secrets in the KV store" }

func (c *kvListCommand) Help() string {
	return helpText(`
Usage: ward kv list [options] PATH

  Lists the keys under PATH. Keys ending in "/" are folders.

      $ ward kv list secret/app
`, c.flags())
}

func (c *kvListCommand) flags() *flag.FlagSet { return c.kvFlagSet("kv list", withFormat) }

func (c *kvListCommand) Run(args []string) int {
	ctx, client, p, code := c.start(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	apiPath := p.at("metadata")
	secret, err := list(ctx, client, apiPath)
	if err != nil {
		return remoteFailed("listing "+apiPath, err)
	}
	if secret == nil {
		printErr("No value found at %s", apiPath)
		return exitRemote
	}
	return c.outputKeys(secret, apiPath)
}

// ---- kv metadata get / put / delete ----

type kvMetadataGetCommand struct{ kvCommand }

func (c *kvMetadataGetCommand) Synopsis() string { return "Retrieve the metadata of a KV v2 secret" }

func (c *kvMetadataGetCommand) Help() string {
	return helpText(`
Usage: ward kv metadata get [options] KEY

  Shows the metadata of a KV version 2 secret and of each of its versions.
`, c.flags())
}

func (c *kvMetadataGetCommand) flags() *flag.FlagSet {
	return c.kvFlagSet("kv metadata get", withFormat|withField)
}

func (c *kvMetadataGetCommand) Run(args []string) int {
	ctx, client, p, code := c.start(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	if !p.v2 {
		printErr("Metadata not supported on KV Version 1")
		return exitLocal
	}
	apiPath := p.at("metadata")
	secret, err := client.Logical().ReadWithContext(ctx, apiPath)
	if err != nil {
		return remoteFailed("reading "+apiPath, err)
	}
	if secret == nil {
		printErr("No value found at %s", apiPath)
		return exitRemote
	}
	if c.flagField != "" {
		return c.printField(secret, c.flagField)
	}
	if c.jsonOutput() {
		return printJSON(secret)
	}
	versions, _ := secret.Data["versions"].(map[string]any)
	meta := make(map[string]any, len(secret.Data))
	for k, v := range secret.Data {
		if k != "versions" {
			meta[k] = v
		}
	}
	printWarnings(secret)
	printPathHeader("Metadata Path", apiPath)
	writeOut(sectionHeader("Metadata", meta) + "\n")
	printKeyValues(mapRows(meta))

	nums := make([]int, 0, len(versions))
	for k := range versions {
		if n, err := strconv.Atoi(k); err == nil {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	for _, n := range nums {
		v, _ := versions[strconv.Itoa(n)].(map[string]any)
		writeOut("\n" + sectionHeader(fmt.Sprintf("Version %d", n), v) + "\n")
		printKeyValues(mapRows(v))
	}
	return exitOK
}

type kvMetadataPutCommand struct {
	kvCommand
	flagMaxVersions        int
	flagCASRequired        bool
	flagDeleteVersionAfter durationFlag
	flagCustomMetadata     mapFlag
}

func (c *kvMetadataPutCommand) Synopsis() string { return "Set the metadata of a KV v2 secret" }

func (c *kvMetadataPutCommand) Help() string {
	return helpText(`
Usage: ward kv metadata put [options] KEY

  Configures a KV version 2 secret; only the flags given are changed.

      $ ward kv metadata put -max-versions=5 -custom-metadata=owner=ops secret/app/db
`, c.flags())
}

func (c *kvMetadataPutCommand) flags() *flag.FlagSet {
	fs := c.kvFlagSet("kv metadata put", noOutputFlags)
	fs.IntVar(&c.flagMaxVersions, "max-versions", 0, "Number of versions to keep (0: the engine's setting).")
	fs.BoolVar(&c.flagCASRequired, "cas-required", false, "Require check-and-set on every write of this secret.")
	fs.Var(&c.flagDeleteVersionAfter, "delete-version-after", "Soft-delete versions this long after they are written (0s: never).")
	fs.Var(&c.flagCustomMetadata, "custom-metadata", "Custom metadata as key=value; repeatable.")
	return fs
}

func (c *kvMetadataPutCommand) Run(args []string) int {
	fs := c.flags()
	ctx, client, p, code := c.start(fs, args, 1, 1)
	if code != exitOK {
		return code
	}
	if !p.v2 {
		printErr("Metadata not supported on KV Version 1")
		return exitLocal
	}
	body := map[string]any{}
	if flagWasSet(fs, "max-versions") {
		body["max_versions"] = c.flagMaxVersions
	}
	if flagWasSet(fs, "cas-required") {
		body["cas_required"] = c.flagCASRequired
	}
	if c.flagDeleteVersionAfter.set {
		body["delete_version_after"] = c.flagDeleteVersionAfter.apiString()
	}
	if c.flagCustomMetadata.values != nil {
		body["custom_metadata"] = c.flagCustomMetadata.values
	}
	apiPath := p.at("metadata")
	if _, err := send(ctx, client, "POST", apiPath, body); err != nil {
		return remoteFailed("writing "+apiPath, err)
	}
	writeOut("Success! Data written to: " + apiPath + "\n")
	return exitOK
}

type kvMetadataDeleteCommand struct{ kvCommand }

func (c *kvMetadataDeleteCommand) Synopsis() string {
	return "Delete a KV v2 secret's metadata and all its versions"
}

func (c *kvMetadataDeleteCommand) Help() string {
	return helpText(`
Usage: ward kv metadata delete [options] KEY

  Deletes every version of a KV version 2 secret and its metadata,
  permanently.
`, c.flags())
}

func (c *kvMetadataDeleteCommand) flags() *flag.FlagSet {
	return c.kvFlagSet("kv metadata delete", noOutputFlags)
}

func (c *kvMetadataDeleteCommand) Run(args []string) int {
	ctx, client, p, code := c.start(c.flags(), args, 1, 1)
	if code != exitOK {
		return code
	}
	if !p.v2 {
		printErr("Metadata not supported on KV Version 1")
		return exitLocal
	}
	apiPath := p.at("metadata")
	if _, err := client.Logical().DeleteWithContext(ctx, apiPath); err != nil {
		return remoteFailed("deleting "+apiPath, err)
	}
	writeOut("Success! Data deleted (if it existed) at: " + apiPath + "\n")
	return exitOK
}
