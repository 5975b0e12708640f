package conformance

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// view is one mount's storage in the harness: in memory, with a log of
// every call the plugin makes, so checks can see what a request touched,
// and an optional stall that holds every call up (for the deadline check).
type view struct {
	mem *logical.InmemStorage

	mu    sync.Mutex // protects the fields below
	calls []storageCall
	stall time.Duration
}

type storageCall struct {
	op  string // get, put, delete, list, batch
	key string
	at  time.Time
}

var _ logical.BatchStorage = (*view)(nil)

func newView() *view { return &view{mem: logical.NewInmemStorage()} }

func (v *view) record(ctx context.Context, op, key string) error {
	v.mu.Lock()
	v.calls = append(v.calls, storageCall{op: op, key: key, at: time.Now()})
	d := v.stall
	v.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *view) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := v.record(ctx, "get", key); err != nil {
		return nil, err
	}
	return v.mem.Get(ctx, key)
}

func (v *view) Put(ctx context.Context, e *logical.StorageEntry) error {
	key := ""
	if e != nil {
		key = e.Key
	}
	if err := v.record(ctx, "put", key); err != nil {
		return err
	}
	return v.mem.Put(ctx, e)
}

func (v *view) Delete(ctx context.Context, key string) error {
	if err := v.record(ctx, "delete", key); err != nil {
		return err
	}
	return v.mem.Delete(ctx, key)
}

func (v *view) List(ctx context.Context, prefix string) ([]string, error) {
	if err := v.record(ctx, "list", prefix); err != nil {
		return nil, err
	}
	return v.mem.List(ctx, prefix)
}

func (v *view) Batch(ctx context.Context, ops []logical.StorageOp) error {
	key := ""
	if len(ops) > 0 {
		key = ops[0].Key
	}
	if err := v.record(ctx, "batch", key); err != nil {
		return err
	}
	return v.mem.Batch(ctx, ops)
}

// callCount returns how many calls the plugin made so far.
func (v *view) callCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.calls)
}

// callsAfter returns the calls that began after t.
func (v *view) callsAfter(t time.Time) []storageCall {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []storageCall
	for _, c := range v.calls {
		if c.at.After(t) {
			out = append(out, c)
		}
	}
	return out
}

func (v *view) setStall(d time.Duration) {
	v.mu.Lock()
	v.stall = d
	v.mu.Unlock()
}

// snapshot returns every entry of the view.
func (v *view) snapshot() map[string]string {
	ctx := context.Background()
	keys, _ := logical.CollectKeys(ctx, v.mem, "")
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if e, _ := v.mem.Get(ctx, k); e != nil {
			out[k] = string(e.Value)
		}
	}
	return out
}

// clone returns a new view holding the same entries (and no call log).
func (v *view) clone() *view {
	c := newView()
	for k, val := range v.snapshot() {
		_ = c.mem.Put(context.Background(), &logical.StorageEntry{Key: k, Value: []byte(val)})
	}
	return c
}

// keys returns every key of the view.
func (v *view) keys() []string {
	ks, _ := logical.CollectKeys(context.Background(), v.mem, "")
	return ks
}

// sameSnapshot reports whether two snapshots hold the same entries.
func sameSnapshot(a, b map[string]string) bool { return maps.Equal(a, b) }
