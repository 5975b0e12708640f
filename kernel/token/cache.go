package token

import "sync"

// cacheSize bounds the entry cache; beyond it an arbitrary entry is evicted.
const cacheSize = 1 << 16

// entryCache keeps decoded token entries by hashed ID, so that the check
// every request makes costs no storage read, decryption or JSON decoding.
// It holds only what storage holds (no token IDs). Every write of an entry
// goes through put and every removal through invalidate, so the cache can
// only be stale between a storage write and its invalidation; gen makes
// sure a lookup that read storage before an invalidation cannot insert what
// it read afterwards.
type entryCache struct {
	mu  sync.Mutex // protects the fields below
	m   map[string]*Entry
	gen uint64
}

func newEntryCache() *entryCache { return &entryCache{m: map[string]*Entry{}} }

// get returns a copy of the cached entry and the generation to pass to add.
func (c *entryCache) get(h string) (*Entry, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[h]; e != nil {
		return e.clone(), c.gen
	}
	return nil, c.gen
}

// add caches e unless an invalidation happened since gen was read.
func (c *entryCache) add(e *Entry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.setLocked(e)
}

// set caches e after a successful write of it.
func (c *entryCache) set(e *Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.setLocked(e)
}

func (c *entryCache) setLocked(e *Entry) {
	if _, ok := c.m[e.HashedID]; !ok && len(c.m) >= cacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	ce := e.clone()
	ce.ID = "" // the token itself is never kept
	c.m[e.HashedID] = ce
}

// invalidate forgets h, after its entry was deleted from storage.
func (c *entryCache) invalidate(h string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, h)
}
