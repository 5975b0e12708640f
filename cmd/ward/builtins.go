package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/plugins/auth/approle"
	"github.com/wardproject/ward/plugins/auth/jwt"
	"github.com/wardproject/ward/plugins/auth/userpass"
	"github.com/wardproject/ward/plugins/secrets/database"
	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/plugins/secrets/transit"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

// builtins are the first-party plugins shipped inside the ward binary. The
// server runs each out of process by re-executing itself:
// `ward plugin exec NAME`.
var builtins = map[string]sdkplugin.ServeOpts{
	"database": {Name: "database", Type: logical.TypeSecret, Version: version, Factory: database.Factory, Capabilities: []string{"leasing"}},
	"kv":       {Name: "kv", Type: logical.TypeSecret, Version: version, Factory: kv.Factory, Capabilities: []string{"kv"}},
	"transit":  {Name: "transit", Type: logical.TypeSecret, Version: version, Factory: transit.Factory},
	"approle":  {Name: "approle", Type: logical.TypeAuth, Version: version, Factory: approle.Factory, Capabilities: []string{"auth-login"}},
	"jwt":      {Name: "jwt", Type: logical.TypeAuth, Version: version, Factory: jwt.Factory, Capabilities: []string{"auth-login"}},
	"userpass": {Name: "userpass", Type: logical.TypeAuth, Version: version, Factory: userpass.Factory, Capabilities: []string{"auth-login"}},
}

// builtinCatalog returns the catalog entries of the builtins, pinned to the
// SHA-256 of the running executable.
func builtinCatalog() ([]plugin.Entry, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate the ward executable: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	out := make([]plugin.Entry, 0, len(builtins))
	for name, b := range builtins {
		out = append(out, plugin.Entry{Name: name, Type: string(b.Type), Version: b.Version,
			Command: exe, Args: []string{"plugin", "exec", name}, SHA256: sum, Builtin: true})
	}
	return out, nil
}
