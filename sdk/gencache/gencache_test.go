package gencache

import (
	"fmt"
	"testing"

	"github.com/wardproject/ward/sdk/keylock"
)

// A reader that read storage before a writer (or an invalidation, or a
// clear) cannot put its older value back; a store that raced an
// invalidation drops the key.
func TestGenerations(t *testing.T) {
	var c Cache[string]
	_, hit, token := c.Lookup("k")
	if hit {
		t.Fatal("hit in an empty cache")
	}
	c.Store("k", c.Token("k"), "newer") // a writer finishes first
	c.Populate("k", token, "old")
	if v, _, _ := c.Lookup("k"); v != "newer" {
		t.Fatalf("a stale populate replaced the writer's value: %q", v)
	}
	tok := c.Token("k")
	c.Remove("k") // the invalidation
	c.Store("k", tok, "raced")
	if _, hit, _ := c.Lookup("k"); hit {
		t.Fatal("a store that raced an invalidation was cached")
	}
	_, _, token = c.Lookup("k")
	c.Clear()
	c.Populate("k", token, "old")
	if _, hit, _ := c.Lookup("k"); hit {
		t.Fatal("populate after clear")
	}
	// A populate on another key of the shard does not move the generation.
	_, _, token = c.Lookup("k")
	c.Populate("k", token, "read")
	if v, hit, _ := c.Lookup("k"); !hit || v != "read" {
		t.Fatalf("populate with a current token: %q %v", v, hit)
	}
}

// At most MaxEntries in all, ShardCapacity per shard; a key already
// cached is replaced in place.
func TestBound(t *testing.T) {
	var c Cache[int]
	for i := range MaxEntries + MaxEntries/2 {
		key := fmt.Sprint("k", i)
		if i%2 == 0 {
			c.Store(key, c.Token(key), i)
			continue
		}
		_, _, token := c.Lookup(key)
		c.Populate(key, token, i)
	}
	if n := c.Len(); n > MaxEntries || n < MaxEntries/2 {
		t.Fatalf("%d entries, bound %d", n, MaxEntries)
	}
	for i := range c.shards {
		if n := len(c.shards[i].entries); n > ShardCapacity {
			t.Fatalf("shard %d holds %d, bound %d", i, n, ShardCapacity)
		}
	}
	full := &c.shards[keylock.StripeOf("k0")]
	before := len(full.entries)
	c.Store("k0", c.Token("k0"), 1)
	c.Store("k0", c.Token("k0"), 2)
	if len(full.entries) != before {
		t.Fatalf("re-storing a key changed the shard from %d to %d entries", before, len(full.entries))
	}
}
