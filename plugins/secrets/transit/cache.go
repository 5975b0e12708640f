package transit

import (
	"sync"

	"github.com/wardproject/ward/sdk/keylock"
)

// keyCache holds the parsed keyring of named keys, so that a request on a
// cached key makes no storage call and parses nothing: encrypting is
// decode, seal, encode. It follows the KV metadata cache's rules (see
// plugins/secrets/kv/cache.go for the interleavings they cover):
//
//   - Shard i holds the keys of lock stripe i and has a generation,
//     bumped by every store, remove and clear, never by a populate.
//   - A reader that misses takes a token (the generation) before its
//     storage Get and caches what it parsed only if the generation is
//     still the token, so it can never put back a keyring that a writer or
//     an invalidation replaced while it was reading.
//   - A writer holds the name's stripe lock across read-modify-write. It
//     takes a token before its storage write; after a successful put it
//     caches its keyring if the generation is still the token and drops
//     the name otherwise (an invalidation raced the put: which of the two
//     storage kept is unknown). After a delete or a failed write it drops
//     the name.
//   - The host invalidates policy/<name> after a change made elsewhere
//     (another WASM instance of the mount, another replica, a restore
//     behind the plugin) is visible to Get; that drops the name.
//
// Keyrings are immutable, so a handler that took one keeps a consistent
// snapshot for the whole request even if a rotation publishes a newer one
// meanwhile: its answer is ordered before the rotation.
//
// Absence is not cached (a missing key costs a storage read; only the
// upsert and error paths meet one).
type keyCache struct {
	shards [lockStripes]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex // protects the fields below
	gen     uint64
	entries map[string]*keyring
}

// Bound: at most maxCachedKeys keyrings per mount (shardCapacity per
// shard); a name beyond its shard's capacity evicts an arbitrary name of
// that shard. A keyring costs a few hundred bytes per version for
// symmetric keys, a few KiB per version for RSA.
const (
	maxCachedKeys = 64 << 10
	shardCapacity = maxCachedKeys / lockStripes
)

// lookup returns name's keyring on a hit, or the token to pass to populate.
func (c *keyCache) lookup(name string) (kr *keyring, token uint64) {
	sh := &c.shards[stripeOf(name)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.entries[name], sh.gen
}

// populate caches kr, read from storage after lookup returned token,
// unless the shard changed since.
func (c *keyCache) populate(name string, token uint64, kr *keyring) {
	sh := &c.shards[stripeOf(name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen == token {
		sh.insertLocked(name, kr)
	}
}

// token returns the generation of name's shard; a writer holding name's
// stripe lock takes it before its storage write and passes it to store.
func (c *keyCache) token(name string) uint64 {
	sh := &c.shards[stripeOf(name)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.gen
}

// store caches kr after it was written to storage, or drops name if an
// invalidation moved the generation since token was taken.
func (c *keyCache) store(name string, token uint64, kr *keyring) {
	sh := &c.shards[stripeOf(name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	raced := sh.gen != token
	sh.gen++
	if raced {
		delete(sh.entries, name)
		return
	}
	sh.insertLocked(name, kr)
}

// remove drops name.
func (c *keyCache) remove(name string) {
	sh := &c.shards[stripeOf(name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	delete(sh.entries, name)
}

// clear drops every keyring.
func (c *keyCache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.gen++
		sh.entries = nil
		sh.mu.Unlock()
	}
}

// size returns the number of cached keyrings (for tests).
func (c *keyCache) size() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

func (sh *cacheShard) insertLocked(name string, kr *keyring) {
	if sh.entries == nil {
		sh.entries = make(map[string]*keyring)
	}
	if _, ok := sh.entries[name]; !ok && len(sh.entries) >= shardCapacity {
		for victim := range sh.entries { // map order: an arbitrary name
			delete(sh.entries, victim)
			break
		}
	}
	sh.entries[name] = kr
}

// lockStripes is the number of in-process lock stripes (sdk/keylock's);
// the cache has one shard per stripe.
const lockStripes = keylock.Stripes

// stripeOf maps a name to its lock stripe, which is also its cache shard.
func stripeOf(name string) int { return keylock.StripeOf(name) }
