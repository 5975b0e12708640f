// Command transit-wasm is the transit secret engine built as a Ward WASM
// module. It serves exactly what the go-plugin build of transit serves;
// only the transport differs (this main's one line).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o transit.wasm ./plugins/secrets/transit/cmd/transit-wasm
package main

import (
	"github.com/wardproject/ward/plugins/secrets/transit"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest"
)

// Version is the plugin's version, set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	wasmguest.Serve(wasmguest.ServeOpts{
		Name:    "transit",
		Type:    logical.TypeSecret,
		Version: Version,
		Factory: transit.Factory,
		// Key writers hold the name's sdk/keylock lock and the key cache
		// follows invalidations: writes (encrypt included) may run on
		// every instance of a mount at once.
		ConcurrentWrites: true,
	})
}
