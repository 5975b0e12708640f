package raft

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wardproject/ward/kernel/storage"
)

// Backend is the storage.Backend of a raft node. Writes (Put, Delete,
// Batch) are proposals: they return once committed by a quorum and applied
// on this node. Reads (Get, List) are linearizable on any node, leader or
// follower: a ReadIndex round, a wait until this node has applied up to the
// index it returns, then a read of the local state.
//
// When the cluster has no leader or this node no quorum, calls fail after a
// bounded wait (Config.RequestTimeout, or the context's earlier deadline)
// with ErrNoLeader or ErrTimeout, both retryable (IsRetryable).
//
// Close releases this handle only; the node keeps running until Node.Close,
// after which every method returns storage.ErrClosed.
type Backend struct {
	n      *Node
	closed atomic.Bool
}

var _ storage.Backend = (*Backend)(nil)

// Backend returns a storage.Backend over the node.
func (n *Node) Backend() *Backend { return &Backend{n: n} }

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return storage.ErrClosed
	}
	if n := b.n; n.stopped.Load() {
		return n.closedErr()
	}
	return ctx.Err()
}

// read runs f against the local database after a linearizable barrier.
func (b *Backend) read(ctx context.Context, f func(db *pebble.DB) error) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.n.linearize(ctx); err != nil {
		return err
	}
	b.n.dbMu.RLock()
	defer b.n.dbMu.RUnlock()
	if b.n.db == nil {
		return storage.ErrClosed
	}
	return f(b.n.db)
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, storage.ErrInvalidKey
	}
	var out []byte
	err := b.read(ctx, func(db *pebble.DB) error {
		v, ok, err := dbGet(db, kvKey(key))
		if err != nil {
			return fmt.Errorf("raft: get: %w", err)
		}
		if ok {
			out = v
		}
		return nil
	})
	return out, err
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := b.read(ctx, func(db *pebble.DB) error {
		lower := kvKey(prefix)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
		if err != nil {
			return fmt.Errorf("raft: list: %w", err)
		}
		out, err = listChildren(it, len(lower))
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("raft: list: %w", err)
		}
		return nil
	})
	return out, err
}

// listChildren walks it (bounded to a prefix of length plen) and collects
// List's result, seeking past each folder so the cost follows the number of
// children, not of keys.
func listChildren(it *pebble.Iterator, plen int) ([]string, error) {
	var out []string
	var seek []byte
	for valid := it.First(); valid; {
		key := it.Key()
		rest := key[plen:]
		if len(rest) == 0 {
			valid = it.Next()
			continue
		}
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			out = append(out, string(rest))
			valid = it.Next()
			continue
		}
		out = append(out, string(rest[:i+1]))
		seek = append(append(seek[:0], key[:plen+i]...), '0') // '0' is '/'+1
		valid = it.SeekGE(seek)
	}
	return out, it.Error()
}

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return storage.ErrInvalidKey
	}
	return b.write(ctx, []op{{put: true, key: key, value: value}})
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if key == "" {
		return storage.ErrInvalidKey
	}
	return b.write(ctx, []op{{key: key}})
}

// Batch implements storage.Backend: the ops are one raft entry, applied in
// one Pebble batch.
func (b *Backend) Batch(ctx context.Context, ops []storage.Op) error {
	if err := storage.CheckOps(ops); err != nil {
		return err
	}
	if len(ops) == 0 {
		return b.check(ctx)
	}
	out := make([]op, len(ops))
	for i, o := range ops {
		out[i] = op{put: o.Kind == storage.OpPut, key: o.Key, value: o.Value}
	}
	return b.write(ctx, out)
}

func (b *Backend) write(ctx context.Context, ops []op) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	return b.n.propose(ctx, ops) // encode copies keys and values
}

// Close implements storage.Backend. It does not stop the node.
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}
