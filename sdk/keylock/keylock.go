// Package keylock serialises the read-modify-write cycles a plugin runs on
// named keys (a KV path, a transit key name): Lock around reading a record
// and writing its successor, RLock around reads that must not see a write
// half done.
//
// In a plugin process (go-plugin or built in) a Set is a fixed array of
// read-write mutexes that keys hash onto. In a WASM module served by
// sdk/wasmguest it also takes the mount's lock of the key from the host
// (ABI v1.1, docs/wasm-abi.md): a mount runs several instances of a
// module, each with its own memory, so in-process mutexes alone would let
// two instances update one key at once and lose a write. With the host's
// locks a plugin's writes can run on every instance in parallel (declare
// it with wasmguest.ServeOpts.ConcurrentWrites); writes to one key stay
// serialised.
//
// Taking a host lock also brings the instance up to date: before Lock or
// RLock returns, the backend's InvalidateKey has been called for every
// storage key other instances changed since this instance last heard, so
// anything the plugin caches about the key is exact while it holds the
// lock. Consequently a plugin must not hold, while calling Lock or RLock,
// a mutex that its InvalidateKey takes.
//
// What it must never do: let a lock outlive the request that took it (the
// host releases a call's locks when the call ends, whatever ended it), or
// block an instance while that instance holds another host lock (it polls
// instead: a WASM instance has one thread, and a blocked thread cannot
// release what it holds).
package keylock

import (
	"sync"

	"github.com/wardproject/ward/sdk/internal/hostlock"
)

// Stripes is the number of in-process mutexes of a Set.
const Stripes = 256

// StripeOf maps a key to its in-process stripe (FNV-1a). Caches sharded
// the same way have one shard per stripe, so a key's lock and its shard
// match.
func StripeOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % Stripes)
}

// Set is a set of read-write locks named by keys. Two keys may share an
// in-process stripe, never a host lock; a key never has two locks. The
// zero value is ready to use; a Set must not be copied.
//
// Locks of one Set nest only in a fixed order (by key, for instance), as
// with any mutexes; a goroutine must not take a key's lock twice.
type Set struct {
	// Name keeps this Set's host locks apart from another Set's in the
	// same plugin: two Sets that may lock the same key in one request
	// need different names. Optional; set it before first use.
	Name string

	stripes [Stripes]sync.RWMutex
}

func (s *Set) hostKey(key string) string {
	if s.Name == "" {
		return key
	}
	return s.Name + "\x00" + key
}

// Lock takes key's lock exclusively.
func (s *Set) Lock(key string) {
	mu := &s.stripes[StripeOf(key)]
	mu.Lock()
	s.hostLock(mu.Unlock, key, false)
}

// Unlock releases key's exclusive lock.
func (s *Set) Unlock(key string) {
	defer s.stripes[StripeOf(key)].Unlock() // even if the host's release fails
	s.hostUnlock(key)
}

// RLock takes key's lock shared: with other readers, never with Lock.
func (s *Set) RLock(key string) {
	mu := &s.stripes[StripeOf(key)]
	mu.RLock()
	s.hostLock(mu.RUnlock, key, true)
}

// RUnlock releases one shared hold of key's lock.
func (s *Set) RUnlock(key string) {
	defer s.stripes[StripeOf(key)].RUnlock()
	s.hostUnlock(key)
}

// hostLock takes the host's lock of key, if there is a host; when that
// fails (sdk/wasmguest ends the instance instead, but another Locker may
// panic), undo gives the stripe back, so that no in-process mutex stays
// held by a request that never got its lock.
func (s *Set) hostLock(undo func(), key string, shared bool) {
	h := hostlock.Host
	if h == nil {
		return
	}
	ok := false
	defer func() {
		if !ok {
			undo()
		}
	}()
	h.Lock(s.hostKey(key), shared)
	ok = true
}

func (s *Set) hostUnlock(key string) {
	if h := hostlock.Host; h != nil {
		h.Unlock(s.hostKey(key))
	}
}
