// Command jwt-wasm is the JWT auth method built as a Ward WASM module. It
// serves what the go-plugin build of jwt serves; only the transport
// differs (this main's one line), with one consequence: JWKS and OIDC
// discovery fetches go through the host (sdk/wasmguest/wasmhttp), so the
// mount must grant the key server's host (wasm_allowed_hosts), and
// jwks_ca_pem / oidc_discovery_ca_pem are refused (the host verifies TLS
// with its own roots).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o jwt.wasm ./plugins/auth/jwt/cmd/jwt-wasm
package main

import (
	"github.com/wardproject/ward/plugins/auth/jwt"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest"
)

// Version is the plugin's version, set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	wasmguest.Serve(wasmguest.ServeOpts{
		Name:         "jwt",
		Type:         logical.TypeAuth,
		Version:      Version,
		Factory:      jwt.Factory,
		Capabilities: []string{"auth-login"},
		// No ConcurrentWrites: role updates read, change and write a role
		// without a keyed lock, so the host runs one write (a login is an
		// update) at a time per mount.
	})
}
