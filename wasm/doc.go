// Package wasm is Ward's sandbox for plugins compiled to WebAssembly: it
// compiles modules (refusing those that speak another ABI major or import
// anything the sandbox does not provide), keeps the machine code in an
// on-disk cache, and serves each mount from a pool of module instances
// behind the same handler shape as a go-plugin mount.
//
// It owns the wazero runtimes (one per memory-limit class), the instance
// pools, the host functions of ABI v1 (docs/wasm-abi.md) and the limits:
// memory per instance, wall time per call, message sizes, host calls and
// log bytes per call, outbound HTTP grants.
//
// What it must never do: give a module a capability its mount was not
// granted (no filesystem, no sockets, no environment; storage only inside
// the mount's view; HTTP only to granted hosts); run two calls at once on
// one instance; let a runaway or crashed instance serve another request;
// put request or storage data in an error or a log line.
package wasm
