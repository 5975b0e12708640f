package kv

import (
	"maps"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/gencache"
)

// metaCache holds the decoded metadata records (meta/<key>) and the decoded
// config record of one v2 mount, so that a read costs one storage callback
// (the version record) instead of two, and a write none to read metadata.
// It never holds version data. doc.go says when it is safe; this comment
// says how it stays consistent with storage.
//
// # Rules
//
// The records follow sdk/gencache, the config the same rules. Shard i of
// the cache holds the keys of lock stripe i. Each shard (and the config)
// has a generation, bumped by every store, remove, invalidation and
// clear, never by a populate.
//
//   - A reader that misses takes a token (the generation) before its
//     storage Get, and caches what it read only if the generation is still
//     the token (populate).
//   - A writer holds the key's stripe lock across its read-modify-write. It
//     takes a token before its storage put; after a successful put it
//     caches its record if the generation is still the token, and drops the
//     key otherwise (store). After a delete, or a failed put or delete (the
//     change may have landed), it drops the key (remove).
//   - The host invalidates a key after a change made elsewhere is visible
//     to Get; invalidation drops the key (or clears the cache).
//   - Records go in and come out as deep copies; a cached record is never
//     modified.
//
// # Interleavings
//
// R reads key k and misses, W writes k in this process, I is the host's
// InvalidateKey("meta/k") after another replica (X) changed k. Storage is
// linearizable; "token", "Get", "populate", "put" and "store" are the steps
// above, each atomic against the shard's mutex except Get and put.
//
//  1. R in a handler, against W: R holds k's stripe RLock and W its Lock,
//     so R's token-Get-populate runs wholly before W's token-put-store
//     (W's store overwrites) or wholly after (R hits W's record, or on an
//     eviction Gets it from storage).
//  2. R outside the stripe lock (the existence check; config reads in
//     writers), against W:
//     a. R's populate before W's store: W's store overwrites.
//     b. R's token after W's store: W's put had returned, so R's Get reads
//     W's record or newer.
//     c. R's token before W's store, R's populate after: W's store bumped
//     the generation, so the populate is dropped whatever R read. Without
//     the generation R could put back the record W replaced: the classic
//     read-populate against invalidate race, and what it exists for.
//  3. R against I (the stripe lock cannot help: I belongs to no request):
//     I after R's token and before R's populate drops the populate (as 2c);
//     I before R's token means X's change was visible first, so R's Get
//     reads it; I after R's populate drops what R cached.
//  4. W against W on keys of one shard: both hold the stripe Lock, so their
//     token-put-store runs are serialised and the cache ends with the last
//     record, as storage does. That is also why, during W's put, only I or
//     a clear can move the generation: W's store is dropped only on a real
//     race, never because another key of the shard was written.
//  5. W against I, after X wrote k concurrently (replicas do not lock each
//     other; doc.go): if I lands before W's token, W's store proceeds and
//     caches W's record, which is newer than X's in storage as in the
//     cache; if I lands between W's token and W's store, which of the two
//     puts storage kept is unknown, so W drops k instead; if I lands after
//     W's store, it drops W's record. Either way the cache never ends on a
//     record storage does not hold, provided I follows X's change.
//  6. A failed put or delete may or may not have reached storage (a lost
//     reply), so the key is dropped and the next read asks storage.
//  7. Eviction only drops entries, which never makes the cache disagree
//     with storage, so it needs no generation bump.
//
// A dropped populate, or a store dropped in case 5, only costs a miss.
// Storage changes that bypass this process without an InvalidateKey are
// not seen until the key is written here, invalidated or evicted.
type metaCache struct {
	// records are the metadata records by user key (nil: the key has no
	// metadata), stored as copies and handed out as copies. Bound:
	// gencache.MaxEntries; a record costs about 150 bytes, plus about 85
	// per retained version and the size of its custom_metadata (at most 64
	// pairs of 128+512 bytes): a full cache of keys with 10 versions each
	// measured about 61 MiB of heap.
	records gencache.Cache[*keyMetadata]

	cfgMu  sync.Mutex // protects the fields below
	cfg    mountConfig
	cfgOK  bool   // cfg holds the stored config (or its absence: zero value)
	cfgGen uint64 // bumped on every change of cfg or its record
}

// lookup returns a copy of key's cached record and true on a hit (the copy
// is nil when the key is known to have no metadata). On a miss it returns
// the token to pass to populate.
func (c *metaCache) lookup(key string) (m *keyMetadata, hit bool, token uint64) {
	cached, hit, token := c.records.Lookup(key)
	if !hit {
		return nil, false, token
	}
	return cached.clone(), true, 0
}

// populate caches a copy of m (nil: no metadata), read from storage after
// lookup returned token, unless the shard changed since.
func (c *metaCache) populate(key string, token uint64, m *keyMetadata) {
	c.records.Populate(key, token, m.clone())
}

// token returns the generation of key's shard, which a writer holding
// key's stripe lock takes before its storage put and passes to store.
func (c *metaCache) token(key string) uint64 { return c.records.Token(key) }

// store caches a copy of m after it was written to storage, token having
// been taken before the put. Every writer of the shard holds the same
// stripe lock as the caller, so only an invalidation or a clear can have
// moved the generation since: then the put raced a change on another
// replica, its order against that change is unknown, and store drops key
// instead (case 5 above).
func (c *metaCache) store(key string, token uint64, m *keyMetadata) {
	c.records.Store(key, token, m.clone())
}

// remove drops key, after a delete of its record, a failed storage write, or
// an invalidation.
func (c *metaCache) remove(key string) { c.records.Remove(key) }

// clear drops every record and the config.
func (c *metaCache) clear() {
	c.records.Clear()
	c.removeConfig()
}

// size returns the number of cached keys (for tests).
func (c *metaCache) size() int { return c.records.Len() }

// lookupConfig returns the cached config and true on a hit; on a miss, the
// token to pass to populateConfig.
func (c *metaCache) lookupConfig() (cfg mountConfig, hit bool, token uint64) {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	return c.cfg, c.cfgOK, c.cfgGen
}

// populateConfig caches cfg, read from storage after lookupConfig returned
// token, unless the config changed since.
func (c *metaCache) populateConfig(token uint64, cfg mountConfig) {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	if c.cfgGen == token {
		c.cfg, c.cfgOK = cfg, true
	}
}

// configToken returns the config's generation, which a writer holding
// configKey's stripe lock takes before its storage put and passes to
// storeConfig.
func (c *metaCache) configToken() uint64 {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	return c.cfgGen
}

// storeConfig caches cfg after it was written to storage, or drops the
// config if an invalidation came in since token was taken (as store).
func (c *metaCache) storeConfig(token uint64, cfg mountConfig) {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	raced := c.cfgGen != token
	c.cfgGen++
	if raced {
		c.cfg, c.cfgOK = mountConfig{}, false
		return
	}
	c.cfg, c.cfgOK = cfg, true
}

// removeConfig drops the config, after a failed write or an invalidation.
func (c *metaCache) removeConfig() {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	c.cfgGen++
	c.cfg, c.cfgOK = mountConfig{}, false
}

// clone returns a deep copy of m (nil for nil), with a non-nil Versions map
// as readMeta returns it.
func (m *keyMetadata) clone() *keyMetadata {
	if m == nil {
		return nil
	}
	c := *m
	c.CustomMetadata = maps.Clone(m.CustomMetadata)
	c.Versions = make(map[int]*versionMetadata, len(m.Versions))
	// Two allocations for all versions rather than one or two each.
	vms := make([]versionMetadata, 0, len(m.Versions))
	var times []time.Time
	for n, vm := range m.Versions {
		if vm == nil {
			c.Versions[n] = nil
			continue
		}
		vms = append(vms, *vm)
		v := &vms[len(vms)-1]
		if vm.DeletionTime != nil {
			if times == nil {
				times = make([]time.Time, 0, len(m.Versions))
			}
			times = append(times, *vm.DeletionTime)
			v.DeletionTime = &times[len(times)-1]
		}
		c.Versions[n] = v
	}
	return &c
}
