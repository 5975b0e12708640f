package token

import "testing"

func TestEntryCacheStaleInsertRefused(t *testing.T) {
	c := newEntryCache()
	e := &Entry{HashedID: "h", Policies: []string{"default"}, Meta: map[string]string{"k": "v"}}
	_, gen := c.get("h")
	c.invalidate("h") // a revocation lands between the storage read and the insert
	c.add(e, gen)
	if got, _ := c.get("h"); got != nil {
		t.Fatal("an entry read before an invalidation was cached after it")
	}
	_, gen = c.get("h")
	c.add(e, gen)
	got, _ := c.get("h")
	if got == nil {
		t.Fatal("entry not cached")
	}
	got.Policies[0] = "root"
	got.Meta["k"] = "changed"
	again, _ := c.get("h")
	if again.Policies[0] != "default" || again.Meta["k"] != "v" {
		t.Fatal("callers can modify the cached entry")
	}
}

func TestEntryCacheNeverHoldsTheToken(t *testing.T) {
	c := newEntryCache()
	c.set(&Entry{HashedID: "h", ID: "s.the-token"})
	if c.m["h"].ID != "" {
		t.Fatal("the cache kept a token ID")
	}
}

func TestEntryCacheBounded(t *testing.T) {
	c := newEntryCache()
	for i := 0; i < cacheSize+10; i++ {
		c.set(&Entry{HashedID: string(rune(i))})
	}
	if len(c.m) > cacheSize {
		t.Fatalf("cache grew to %d entries", len(c.m))
	}
}
