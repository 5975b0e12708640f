// Package wasmguest runs a Ward plugin as a WebAssembly module: the guest
// side of the WASM transport (ABI v1, docs/wasm-abi.md). A plugin's main
// differs from its go-plugin build by one line:
//
//	func main() {
//		wasmguest.Serve(wasmguest.ServeOpts{Name: "kv", Type: logical.TypeSecret, Factory: kv.Factory})
//	}
//
// and the module is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o kv.wasm ./cmd/kv-wasm
//
// A reactor's main is not run by the Go runtime, so the package runs it
// itself on the host's first call; Serve records the options and returns.
// (Calling Serve from an init function works too.)
//
// Inside the module one instance serves one mount, one call at a time:
// storage calls go to the host through imported functions and are
// confined there to the mount's view. The module has no filesystem, no
// network (outbound HTTP only through sdk/wasmguest/wasmhttp, and only to
// hosts the mount grants), no environment, and no goroutine survives a
// call: periodic work must be driven by requests.
//
// It must never keep a request's data after the request (instances are
// reused by later requests of the same mount) nor start goroutines that
// outlive a call; nor serve on once its caches or locks may be out of
// step with the host's: when an invalidation cannot be applied (the
// backend's InvalidateKey panics, or the host says "everything changed"
// and the backend is no logical.AllInvalidator) or a host lock call
// fails, it ends the instance (exit code 70) instead, and the host
// replaces it. Built for any other GOOS, Serve only reports that the
// program must be built for wasip1.
package wasmguest

import "github.com/wardproject/ward/sdk/logical"

// ServeOpts describes the plugin a module serves; the same fields as
// sdk/plugin.ServeOpts.
type ServeOpts struct {
	// Name and Version identify the plugin.
	Name    string
	Version string
	// Type is "secret" or "auth".
	Type logical.BackendType
	// Factory builds the backend of the instance's mount.
	Factory logical.Factory
	// Capabilities declares conformance profiles (for example "kv").
	Capabilities []string
	// ConcurrentWrites declares that the plugin's write requests may run
	// on several instances of a mount at once: every read-modify-write
	// cycle it runs holds a sdk/keylock lock of what it reads, and anything
	// it caches across requests is dropped by its InvalidateKey (and its
	// InvalidateAll, logical.AllInvalidator, if it has one). Without
	// it the host runs one write request at a time per mount. A WASM
	// build only: a plugin process is one instance.
	ConcurrentWrites bool
}

// SDKVersion is the release of this SDK; modules report it in Info.
const SDKVersion = "1.0.0"
