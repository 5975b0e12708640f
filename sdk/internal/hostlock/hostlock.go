// Package hostlock connects sdk/keylock to the keyed locks of a Ward WASM
// host (ABI minor 1, the "lock" import). sdk/wasmguest installs the host's
// locker when it serves a module; in a plugin process, and in a WASM
// program not served by sdk/wasmguest, Host stays nil and keylock's locks
// are in-process only.
//
// It holds a hook, nothing else; plugins never import it (it is internal).
package hostlock

// Locker takes and releases the host's lock of a key for the current call.
// Lock blocks until the lock is held (the host stops the call at its
// deadline instead) and may deliver the host's pending invalidations to
// the backend before it returns. Neither returns on failure: the
// sdk/wasmguest locker ends the instance (the host then releases its
// locks), since a request that goes on without its lock, or an instance
// whose locks and caches are out of step with the host, could lose a
// write.
type Locker interface {
	Lock(key string, shared bool)
	Unlock(key string)
}

// Host is set once, before any request, by sdk/wasmguest.
var Host Locker
