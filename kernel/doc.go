// Package kernel is Ward's core: it wires storage, the barrier and the seal,
// tokens, the mount table, the router and the plugin runner into the request
// path described in docs/architecture.md, and owns the seal state machine.
//
// The kernel never imports plugins/: secret engines and auth methods reach it
// only as catalog entries started by the plugin runner. The kernel's own
// endpoints (sys/, auth/token/) are in-process backends built with the same
// SDK framework plugins use.
package kernel
