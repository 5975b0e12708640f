package barrier

import (
	"context"
	"strings"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

// View is a logical.Storage confined to one prefix of the barrier's logical
// key space: a plugin's storage. Keys are relative to the prefix, and a View
// cannot name a key outside it. Its methods return ErrSealed while the
// barrier is sealed and a *logical.Error with CodeInvalidRequest for a key
// it rejects.
type View struct {
	b      *Barrier
	prefix string // logical prefix: "" or ending in "/"
	// pprefix is dataPrefix+prefix, the physical prefix of every key.
	pprefix string
	// err, when set, is returned by every method: the view was made with an
	// invalid prefix.
	err error
}

var _ logical.BatchStorage = (*View)(nil)

// View returns the storage view rooted at prefix, which must be "" (the whole
// logical key space) or end in "/", like "logical/<uuid>/". It must not start
// with "/" or contain a ".." segment. A View made with an invalid prefix
// rejects every call.
func (b *Barrier) View(prefix string) *View {
	if err := checkPrefix(prefix); err != nil {
		return &View{b: b, err: err}
	}
	return &View{b: b, prefix: prefix, pprefix: dataPrefix + prefix}
}

// SubView returns the view rooted at prefix inside v. The same rules as for
// Barrier.View apply to prefix.
func (v *View) SubView(prefix string) *View {
	if v.err != nil {
		return v
	}
	if err := checkPrefix(prefix); err != nil {
		return &View{b: v.b, err: err}
	}
	return v.b.View(v.prefix + prefix)
}

// Prefix returns the view's logical prefix.
func (v *View) Prefix() string { return v.prefix }

// Get implements logical.Storage.
func (v *View) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := v.check(key); err != nil {
		return nil, err
	}
	value, err := v.b.get(ctx, v.pprefix+key)
	if err != nil || value == nil {
		return nil, err
	}
	return &logical.StorageEntry{Key: key, Value: value}, nil
}

// Put implements logical.Storage.
func (v *View) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if entry == nil {
		return logical.InvalidRequest("storage entry is nil")
	}
	if err := v.check(entry.Key); err != nil {
		return err
	}
	return v.b.put(ctx, v.pprefix+entry.Key, entry.Value)
}

// Delete implements logical.Storage.
func (v *View) Delete(ctx context.Context, key string) error {
	if err := v.check(key); err != nil {
		return err
	}
	return v.b.delete(ctx, v.pprefix+key)
}

// Batch implements logical.BatchStorage: the ops are checked, encrypted and
// committed in one atomic physical batch.
func (v *View) Batch(ctx context.Context, ops []logical.StorageOp) error {
	phys := make([]storage.Op, len(ops))
	for i, op := range ops {
		if err := v.check(op.Key); err != nil {
			return err
		}
		phys[i] = storage.Op{Kind: storage.OpPut, Key: v.prefix + op.Key, Value: op.Value}
		if op.Delete {
			phys[i] = storage.Op{Kind: storage.OpDelete, Key: v.prefix + op.Key}
		}
	}
	return v.b.Batch(ctx, phys)
}

// List implements logical.Storage. An empty prefix lists the view's top level.
func (v *View) List(ctx context.Context, prefix string) ([]string, error) {
	if v.err != nil {
		return nil, v.err
	}
	if err := checkPath(prefix); err != nil {
		return nil, err
	}
	return v.b.list(ctx, v.pprefix+prefix)
}

func (v *View) check(key string) error {
	if v.err != nil {
		return v.err
	}
	if key == "" {
		return logical.InvalidRequest("storage key is empty")
	}
	return checkPath(key)
}

// checkPath rejects a key or prefix that starts with "/" or has a ".."
// segment. Storage never resolves "..", so such a key could not escape a
// view anyway; rejecting it keeps plugin code from relying on path semantics
// that do not exist. Messages never quote the key: key names are a plugin's
// business and may be sensitive to it.
func checkPath(p string) error {
	if strings.HasPrefix(p, "/") {
		return logical.InvalidRequest("storage key must not start with \"/\"")
	}
	for rest := p; ; {
		seg, after, found := strings.Cut(rest, "/")
		if seg == ".." {
			return logical.InvalidRequest("storage key must not contain a \"..\" segment")
		}
		if !found {
			return nil
		}
		rest = after
	}
}

// checkPrefix applies checkPath and requires a non-empty prefix to end in
// "/", so that views "a/" and "ab/" can never overlap.
func checkPrefix(p string) error {
	if p != "" && !strings.HasSuffix(p, "/") {
		return logical.InvalidRequest("storage view prefix must end in \"/\"")
	}
	return checkPath(p)
}
