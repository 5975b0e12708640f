package storage

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// inmem is the reference Backend: a map under a mutex. It is meant for tests
// and for reading the contract, not for speed (List scans every key).
type inmem struct {
	mu sync.RWMutex // protects the fields below
	m  map[string][]byte
	// closed is set by Close; every later call returns ErrClosed.
	closed bool
}

var _ Backend = (*inmem)(nil)

// NewInmem returns an empty in-memory Backend, the reference implementation
// of the contract (as raft's MemoryStorage is for raft.Storage).
func NewInmem() Backend {
	return &inmem{m: make(map[string][]byte)}
}

func (s *inmem) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, ErrInvalidKey
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	v, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	return clone(v), nil
}

func (s *inmem) Put(ctx context.Context, key string, value []byte) error {
	return s.Batch(ctx, []Op{{Kind: OpPut, Key: key, Value: value}})
}

func (s *inmem) Delete(ctx context.Context, key string) error {
	return s.Batch(ctx, []Op{{Kind: OpDelete, Key: key}})
}

func (s *inmem) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	var out []string
	seen := make(map[string]bool)
	for k := range s.m {
		if len(k) == len(prefix) || !strings.HasPrefix(k, prefix) {
			continue // a key equal to prefix is not a child of it
		}
		child, _ := listChild(prefix, k)
		if !seen[child] {
			seen[child] = true
			out = append(out, child)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *inmem) Batch(ctx context.Context, ops []Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckOps(ops); err != nil {
		return err
	}
	// Copy values before taking the lock: the map must never share memory
	// with a caller's slice.
	vals := make([][]byte, len(ops))
	for i, op := range ops {
		if op.Kind == OpPut {
			vals[i] = clone(op.Value)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for i, op := range ops {
		switch op.Kind {
		case OpPut:
			s.m[op.Key] = vals[i]
		case OpDelete:
			delete(s.m, op.Key)
		}
	}
	return nil
}

func (s *inmem) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.m = nil
	return nil
}

// clone copies v into a new slice that is never nil, so a present key with
// an empty value is distinguishable from an absent one.
func clone(v []byte) []byte {
	out := make([]byte, len(v))
	copy(out, v)
	return out
}
