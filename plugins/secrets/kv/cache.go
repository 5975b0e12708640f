package kv

import (
	"maps"
	"sync"
	"time"
)

// metaCache holds the decoded metadata records (meta/<key>) and the decoded
// config record of one v2 mount, so that a read costs one storage callback
// (the version record) instead of two, and a write none for metadata. It
// never holds version data. doc.go says when it is safe; this comment says
// how it stays consistent with storage.
//
// # Rules
//
// Every function that changes meta/<key> or config in storage updates the
// cache after the storage call returns and before it releases the key's
// stripe lock: store after a successful put, remove after a delete, and
// remove after a failed put or delete (whose effect is unknown). A reader
// that misses takes a token (its shard's generation) before its storage Get
// and inserts what it read only if the generation is unchanged; store,
// remove, invalidation and clear all bump the generation. Records go in and
// out as deep copies, so no caller can change a cached record.
//
// # Interleavings
//
// R is a reader that misses on key k, W a writer of k in this process, I an
// InvalidateKey("meta/k") from the host after another replica changed k.
//
//  1. R and W both in handlers: R holds k's stripe RLock, W its Lock, so
//     R's token-Get-populate runs wholly before or wholly after W's
//     put-store. After: R finds W's record in the cache (or, if it was
//     evicted, reads storage, which already holds it).
//  2. R outside the stripe lock (the existence check, config reads):
//     a. token, Get, populate, then W's put and store: W's store overwrites.
//     b. W's put and store, then token, Get: Get sees W's record or newer.
//     c. token, then W's store, then populate: the generation moved, so the
//     populate is dropped whatever Get returned; the next reader hits W's
//     record. This is the "read-populate vs invalidate" race the generation
//     exists for: without it R could put back the record W replaced.
//     d. W's store before R's token but W's put after R's Get: impossible,
//     W's put returns before its store.
//  3. R against I (the stripe lock cannot help: I comes from outside any
//     request): if I runs after R's token, R's populate is dropped (2c); if
//     before, the host has already applied the change (it must invalidate
//     after the change is visible to Get), so R's Get reads it (2b).
//  4. W against W: both hold k's stripe Lock, so their put-store pairs are
//     serialised and the cache ends with the last one, as storage does.
//  5. A failed put or delete may or may not have reached storage (a lost
//     reply); removing the entry and bumping the generation makes the next
//     read ask storage.
//  6. Eviction only removes entries; a removal never makes the cache newer
//     or older than storage, so it needs no generation bump.
//
// A dropped populate, or one dropped because another key of the same shard
// was written, only costs a later miss.
type metaCache struct {
	shards [lockStripes]cacheShard // indexed by stripeOf(key), as the locks

	cfgMu  sync.Mutex // protects the fields below
	cfg    mountConfig
	cfgOK  bool   // cfg holds the stored config (or its absence: zero value)
	cfgGen uint64 // bumped on every change of cfg or its record
}

// cacheShard is one stripe's part of the cache.
type cacheShard struct {
	mu  sync.RWMutex // protects the fields below
	gen uint64       // bumped on every store, remove and clear
	// entries maps a user key to its decoded record; a nil record means
	// the key has no metadata. Records are never modified once inserted.
	entries map[string]*keyMetadata
}

// Memory bound: at most maxCachedKeys records per mount (shardCapacity per
// shard). A record is about 150 bytes plus about 100 per retained version
// and the size of its custom_metadata (at most 64 pairs of 128+512 bytes),
// so with the default 10 versions and little custom_metadata the cache of a
// full mount is around 100 MiB at worst. Keys beyond the bound evict an
// arbitrary key of the same shard.
const (
	maxCachedKeys = 64 << 10
	shardCapacity = maxCachedKeys / lockStripes
)

// lookup returns a copy of key's cached record and true on a hit (the copy
// is nil when the key is known to have no metadata). On a miss it returns
// the token to pass to populate.
func (c *metaCache) lookup(key string) (m *keyMetadata, hit bool, token uint64) {
	sh := &c.shards[stripeOf(key)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	cached, ok := sh.entries[key]
	if !ok {
		return nil, false, sh.gen
	}
	return cached.clone(), true, 0
}

// populate caches a copy of m (nil: no metadata), read from storage after
// lookup returned token, unless the shard changed since.
func (c *metaCache) populate(key string, token uint64, m *keyMetadata) {
	sh := &c.shards[stripeOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != token {
		return
	}
	sh.insertLocked(key, m.clone())
}

// store caches a copy of m after it was written to storage.
func (c *metaCache) store(key string, m *keyMetadata) {
	cp := m.clone()
	sh := &c.shards[stripeOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	sh.insertLocked(key, cp)
}

// remove drops key, after a delete of its record, a failed storage write, or
// an invalidation.
func (c *metaCache) remove(key string) {
	sh := &c.shards[stripeOf(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	delete(sh.entries, key)
}

// clear drops every record and the config.
func (c *metaCache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.gen++
		sh.entries = nil
		sh.mu.Unlock()
	}
	c.removeConfig()
}

// size returns the number of cached keys (for tests).
func (c *metaCache) size() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

func (sh *cacheShard) insertLocked(key string, m *keyMetadata) {
	if sh.entries == nil {
		sh.entries = make(map[string]*keyMetadata)
	}
	if _, ok := sh.entries[key]; !ok && len(sh.entries) >= shardCapacity {
		for victim := range sh.entries { // map order: an arbitrary key
			delete(sh.entries, victim)
			break
		}
	}
	sh.entries[key] = m
}

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

// storeConfig caches cfg after it was written to storage.
func (c *metaCache) storeConfig(cfg mountConfig) {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	c.cfgGen++
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
