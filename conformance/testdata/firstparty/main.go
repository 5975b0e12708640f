// Command firstparty serves Ward's first-party plugins for the
// conformance tests: `firstparty NAME`. The table is cmd/ward/builtins.go's
// (names, types, capabilities); it exists so that the tests run the
// plugins without the race detector and without building the whole ward
// binary. cmd/ward's own test runs `ward plugin conformance` on the real
// table.
package main

import (
	"fmt"
	"os"

	"github.com/wardproject/ward/plugins/auth/approle"
	"github.com/wardproject/ward/plugins/auth/jwt"
	"github.com/wardproject/ward/plugins/auth/userpass"
	"github.com/wardproject/ward/plugins/secrets/database"
	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/plugins/secrets/transit"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

const version = "conformance-test"

var plugins = map[string]sdkplugin.ServeOpts{
	"database": {Name: "database", Type: logical.TypeSecret, Version: version, Factory: database.Factory, Capabilities: []string{"leasing"}},
	"kv":       {Name: "kv", Type: logical.TypeSecret, Version: version, Factory: kv.Factory, Capabilities: []string{"kv"}},
	"transit":  {Name: "transit", Type: logical.TypeSecret, Version: version, Factory: transit.Factory},
	"approle":  {Name: "approle", Type: logical.TypeAuth, Version: version, Factory: approle.Factory, Capabilities: []string{"auth-login"}},
	"jwt":      {Name: "jwt", Type: logical.TypeAuth, Version: version, Factory: jwt.Factory, Capabilities: []string{"auth-login"}},
	"userpass": {Name: "userpass", Type: logical.TypeAuth, Version: version, Factory: userpass.Factory, Capabilities: []string{"auth-login"}},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: firstparty NAME")
		os.Exit(2)
	}
	opts, ok := plugins[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "no first-party plugin %q\n", os.Args[1])
		os.Exit(2)
	}
	sdkplugin.Serve(opts)
}
