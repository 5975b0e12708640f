// Package kernel is Ward's core: it wires storage, the barrier and the seal,
// tokens, the mount table, the router and the plugin runner into the request
// path described in docs/architecture.md, and owns the seal state machine.
//
// The kernel never imports plugins/: secret engines and auth methods reach it
// only as catalog entries started by the plugin runner. The kernel's own
// endpoints (sys/, auth/token/, cubbyhole/) are in-process backends built
// with the same SDK framework plugins use. The cubbyhole is the kernel's
// because it is bound to tokens (cubbyhole.go); response wrapping is the
// last stage of the request path (wrapping.go). Neither ever stores a
// token or uses one in a storage key: they key by the token store's HMAC.
package kernel
