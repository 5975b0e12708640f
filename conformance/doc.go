// Package conformance is Ward's plugin conformance suite, version 1: a
// versioned set of checks (conformance v1 tests plugins of SDK v1) and the
// runner behind `ward plugin conformance`.
//
// The suite starts a plugin in a harness kernel — no server: the kernel's
// own plugin runner (kernel/plugin) for a go-plugin binary, the WASM
// sandbox (wasm/) for a module — gives every mount an in-memory storage
// view it can inspect, and runs the checks of every profile the plugin
// declares in its capabilities (ProfileCore always). Each check has a
// stable ID recorded in golden.txt with the SDK release that added it.
// Checks find what to send from the plugin's own schema; profile checks
// that need credentials or external services take them from a Fixture
// (fixtures/ holds those of the first-party plugins).
//
// Results are a Report, written as text, JSON or JUnit XML. A failure
// carries the request sent, the answer expected and the answer received.
//
// The package owns the harness and the checks. It must never weaken a
// check to let a plugin pass, never keep a plugin's state outside the
// storage views it hands out, and never send a plugin anything the server
// would not (requests, storage answers, control calls of protocol v1).
// It does not start a server and needs no network beyond the plugin's own
// (a fixture may point a plugin at a database).
package conformance
