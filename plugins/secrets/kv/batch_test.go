package kv

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// batchCounting wraps InmemStorage, counting Batch and Put calls and failing
// batches on demand.
type batchCounting struct {
	*logical.InmemStorage
	batches, puts atomic.Int64
	fail          atomic.Bool
}

func (b *batchCounting) Put(ctx context.Context, e *logical.StorageEntry) error {
	b.puts.Add(1)
	return b.InmemStorage.Put(ctx, e)
}

func (b *batchCounting) Batch(ctx context.Context, ops []logical.StorageOp) error {
	b.batches.Add(1)
	if b.fail.Load() {
		return errors.New("injected batch failure")
	}
	return b.InmemStorage.Batch(ctx, ops)
}

func TestWritesCommitInOneBatch(t *testing.T) {
	e := newEnv(t, "2")
	st := &batchCounting{InmemStorage: e.s}
	req := func(data map[string]any) (*logical.Response, error) {
		return e.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.UpdateOperation, Path: "data/app", Data: data, Storage: st, MountPoint: "secret/"})
	}
	e.ok(logical.UpdateOperation, "metadata/app", map[string]any{"max_versions": 2})
	for i := 0; i < 3; i++ {
		if _, err := req(map[string]any{"data": map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	if st.batches.Load() != 3 || st.puts.Load() != 0 {
		t.Fatalf("3 writes made %d batches and %d single puts; want 3 and 0", st.batches.Load(), st.puts.Load())
	}
	// Version 1 was pruned inside the third batch.
	if e.hasKey(versionKey("app", 1)) || !e.hasKey(versionKey("app", 3)) {
		t.Fatalf("pruning not applied with the batch: %v", e.storageKeys())
	}

	// A failed batch leaves neither the version nor the metadata behind,
	// and the cache does not pretend otherwise.
	st.fail.Store(true)
	if _, err := req(map[string]any{"data": map[string]any{"n": "lost"}}); err == nil {
		t.Fatal("write succeeded although its batch failed")
	}
	st.fail.Store(false)
	if e.hasKey(versionKey("app", 4)) {
		t.Fatal("a failed batch left a version record")
	}
	resp := e.ok(logical.ReadOperation, "metadata/app", nil)
	if resp.Data["current_version"] != 3 {
		t.Fatalf("current_version after a failed write = %v, want 3", resp.Data["current_version"])
	}
}
