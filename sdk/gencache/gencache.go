// Package gencache is a plugin's bounded cache of decoded storage records,
// kept exact against concurrent writers and the host's invalidations by
// generations. KV's metadata and transit's keyrings use it; the
// interleavings the rules cover are spelled out in
// plugins/secrets/kv/cache.go.
//
// Shard i holds the keys of lock stripe i (sdk/keylock) and has a
// generation, bumped by every Store, Remove and Clear, never by Populate.
//
//   - A reader that misses takes a token (the generation) with Lookup
//     before its storage Get, and caches what it read with Populate, which
//     keeps it only if the generation is still the token: it can never put
//     back a record that a writer or an invalidation replaced meanwhile.
//   - A writer holds the key's stripe lock (keylock) across its
//     read-modify-write. It takes Token before its storage write; after a
//     successful write Store caches its record if the generation is still
//     the token and drops the key otherwise (an invalidation raced the
//     write: which of the two storage kept is unknown). After a delete or
//     a failed write it calls Remove (the change may have landed).
//   - The host's invalidation of a key calls Remove; of everything, Clear.
//
// Values are cached as given: callers cache immutable values or copies.
// The zero Cache is empty and ready to use.
package gencache

import (
	"sync"

	"github.com/wardproject/ward/sdk/keylock"
)

// MaxEntries bounds a Cache: at most ShardCapacity entries per shard; an
// entry beyond its shard's capacity evicts an arbitrary entry of that
// shard (eviction only drops, so it needs no generation bump).
const (
	MaxEntries    = 64 << 10
	ShardCapacity = MaxEntries / keylock.Stripes
)

// Cache maps keys to values of type V.
type Cache[V any] struct {
	shards [keylock.Stripes]shard[V]
}

type shard[V any] struct {
	mu      sync.RWMutex // protects the fields below
	gen     uint64
	entries map[string]V
}

func (c *Cache[V]) shard(key string) *shard[V] { return &c.shards[keylock.StripeOf(key)] }

// Lookup returns key's value and true on a hit; on a miss, the token to
// pass to Populate.
func (c *Cache[V]) Lookup(key string) (v V, hit bool, token uint64) {
	sh := c.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	v, hit = sh.entries[key]
	return v, hit, sh.gen
}

// Populate caches v, read from storage after Lookup returned token, unless
// the shard changed since.
func (c *Cache[V]) Populate(key string, token uint64, v V) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen == token {
		sh.insertLocked(key, v)
	}
}

// Token returns the generation of key's shard, which a writer holding
// key's stripe lock takes before its storage write and passes to Store.
func (c *Cache[V]) Token(key string) uint64 {
	sh := c.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.gen
}

// Store caches v after it was written to storage, token having been taken
// before the write, or drops key if the generation moved since.
func (c *Cache[V]) Store(key string, token uint64, v V) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	raced := sh.gen != token
	sh.gen++
	if raced {
		delete(sh.entries, key)
		return
	}
	sh.insertLocked(key, v)
}

// Remove drops key.
func (c *Cache[V]) Remove(key string) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	delete(sh.entries, key)
}

// Clear drops every entry.
func (c *Cache[V]) Clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.gen++
		sh.entries = nil
		sh.mu.Unlock()
	}
}

// Len returns the number of entries.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

func (sh *shard[V]) insertLocked(key string, v V) {
	if sh.entries == nil {
		sh.entries = make(map[string]V)
	}
	if _, ok := sh.entries[key]; !ok && len(sh.entries) >= ShardCapacity {
		for victim := range sh.entries { // map order: an arbitrary key
			delete(sh.entries, victim)
			break
		}
	}
	sh.entries[key] = v
}

// Range calls f for every entry, shard by shard under the shard's read
// lock (f must not call the Cache), until f returns false.
func (c *Cache[V]) Range(f func(key string, v V) bool) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for k, v := range sh.entries {
			if !f(k, v) {
				sh.mu.RUnlock()
				return
			}
		}
		sh.mu.RUnlock()
	}
}
