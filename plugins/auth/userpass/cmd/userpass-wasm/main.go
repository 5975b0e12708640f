// Command userpass-wasm is the userpass auth method built as a Ward WASM
// module. It serves exactly what the go-plugin build of userpass serves;
// only the transport differs (this main's one line).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o userpass.wasm ./plugins/auth/userpass/cmd/userpass-wasm
package main

import (
	"github.com/wardproject/ward/plugins/auth/userpass"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest"
)

// Version is the plugin's version, set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	wasmguest.Serve(wasmguest.ServeOpts{
		Name:         "userpass",
		Type:         logical.TypeAuth,
		Version:      Version,
		Factory:      userpass.Factory,
		Capabilities: []string{"auth-login"},
		// Every read-modify-write of a user holds the user's sdk/keylock
		// lock and nothing is cached: writes (a login is an update) may run
		// on every instance of a mount at once, so logins, each a bcrypt
		// comparison, do not queue behind one another.
		ConcurrentWrites: true,
	})
}
