// Command approle-wasm is the AppRole auth method built as a Ward WASM
// module. It serves exactly what the go-plugin build of approle serves;
// only the transport differs (this main's one line).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o approle.wasm ./plugins/auth/approle/cmd/approle-wasm
package main

import (
	"github.com/wardproject/ward/plugins/auth/approle"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest"
)

// Version is the plugin's version, set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	wasmguest.Serve(wasmguest.ServeOpts{
		Name:         "approle",
		Type:         logical.TypeAuth,
		Version:      Version,
		Factory:      approle.Factory,
		Capabilities: []string{"auth-login"},
		// No ConcurrentWrites: approle serialises its read-modify-write
		// cycles (secret ID use counts, the role_id index, the salt) with
		// in-process locks, so the host runs one write (a login is an
		// update) at a time per mount.
	})
}
