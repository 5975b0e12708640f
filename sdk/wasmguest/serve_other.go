//go:build !wasip1

package wasmguest

import (
	"fmt"
	"os"
)

// Serve is only meaningful in a module built with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared; anywhere else it says so and exits 1.
func Serve(opts ServeOpts) {
	fmt.Fprintf(os.Stderr, "%s: this program is a Ward WASM plugin; build it with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared\n", opts.Name)
	os.Exit(1)
}
