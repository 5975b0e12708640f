// Command kv-wasm is the KV secret engine built as a Ward WASM module. It
// serves exactly what the go-plugin build of kv serves; only the transport
// differs (this main's one line).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o kv.wasm ./plugins/secrets/kv/cmd/kv-wasm
package main

import (
	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest"
)

// Version is the plugin's version, set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	wasmguest.Serve(wasmguest.ServeOpts{
		Name:         "kv",
		Type:         logical.TypeSecret,
		Version:      Version,
		Factory:      kv.Factory,
		Capabilities: []string{"kv"},
		// Every read-modify-write holds the key's sdk/keylock lock and the
		// metadata cache follows invalidations: writes may run on every
		// instance of a mount at once.
		ConcurrentWrites: true,
	})
}
