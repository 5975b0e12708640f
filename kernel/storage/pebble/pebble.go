package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wardproject/ward/kernel/storage"
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// FS replaces the operating system's filesystem; tests pass vfs.NewMem().
	// Nil means the real filesystem.
	FS vfs.FS
	// Logger receives Pebble's log output. Nil drops informational
	// messages and passes errors and fatal messages to Pebble's default
	// logger.
	Logger pebble.Logger
	// CacheSize is the block cache in bytes; default 128 MiB. Pebble's own
	// default (8 MiB) made every read of a small working set decompress
	// blocks read from files.
	CacheSize int64
}

// withDefaults returns a copy of o with every nil field filled in.
func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = quietLogger{}
	}
	if o.CacheSize == 0 {
		o.CacheSize = 128 << 20
	}
	return o
}

// Store is a storage.Backend on a Pebble database. It is safe for concurrent
// use.
type Store struct {
	// mu guards the lifetime of db, not its contents: every operation holds
	// it shared while it uses db (so concurrent writes still group-commit),
	// and Close holds it exclusively. Pebble panics on a closed DB; this is
	// what turns that into ErrClosed.
	mu sync.RWMutex // protects the fields below
	db *pebble.DB   // nil once closed
}

var _ storage.Backend = (*Store)(nil)

// raftNodeIDKey is where kernel/raft records its node ID.
var raftNodeIDKey = []byte{0x01, 'i'}

// Open opens (creating if needed) the database in dir. A new dir is created
// with mode 0700.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := opts.FS.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pebble: create data dir: %w", err)
	}
	db, err := pebble.Open(dir, &pebble.Options{FS: opts.FS, Logger: opts.Logger, CacheSize: opts.CacheSize,
		MemTableSize: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("pebble: open: %w", err)
	}
	// A raft node's directory (kernel/raft keeps its node ID under this
	// key, a byte no storage key starts with) is refused, not misread.
	if _, closer, err := db.Get(raftNodeIDKey); err == nil {
		closer.Close()
		db.Close()
		return nil, fmt.Errorf("pebble: %s is a raft node's directory: use storage \"raft\"", dir)
	}
	return &Store{db: db}, nil
}

// acquire returns the open DB with s.mu held shared; the caller must call
// s.mu.RUnlock when err is nil.
func (s *Store) acquire(ctx context.Context) (*pebble.DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return nil, storage.ErrClosed
	}
	return s.db, nil
}

// Get implements storage.Backend.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, storage.ErrInvalidKey
	}
	db, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	v, closer, err := db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pebble: get: %w", err)
	}
	// v is only valid until closer.Close.
	out := make([]byte, len(v))
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("pebble: get: %w", err)
	}
	return out, nil
}

// Put implements storage.Backend. The write is synced before Put returns.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return storage.ErrInvalidKey
	}
	db, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := db.Set([]byte(key), value, pebble.Sync); err != nil {
		return fmt.Errorf("pebble: put: %w", err)
	}
	return nil
}

// Delete implements storage.Backend. The write is synced before Delete
// returns.
func (s *Store) Delete(ctx context.Context, key string) error {
	if key == "" {
		return storage.ErrInvalidKey
	}
	db, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := db.Delete([]byte(key), pebble.Sync); err != nil {
		return fmt.Errorf("pebble: delete: %w", err)
	}
	return nil
}

// Batch implements storage.Backend: the ops are committed as one Pebble
// batch, synced before Batch returns.
func (s *Store) Batch(ctx context.Context, ops []storage.Op) error {
	if err := storage.CheckOps(ops); err != nil {
		return err
	}
	db, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	b := db.NewBatch()
	defer b.Close()
	for _, op := range ops {
		// Batch.Set and Batch.Delete copy key and value into the batch.
		switch op.Kind {
		case storage.OpPut:
			err = b.Set([]byte(op.Key), op.Value, nil)
		case storage.OpDelete:
			err = b.Delete([]byte(op.Key), nil)
		}
		if err != nil {
			return fmt.Errorf("pebble: batch: %w", err)
		}
	}
	if err := db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("pebble: batch: %w", err)
	}
	return nil
}

// List implements storage.Backend. It iterates only over keys that start
// with prefix and, on reaching a folder, seeks past every key inside it, so
// its cost grows with the number of children, not the number of keys below
// prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	db, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var lower []byte // nil, not empty, for "": Pebble's invariant checks index bounds
	if prefix != "" {
		lower = []byte(prefix)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("pebble: list: %w", err)
	}
	out, err := listChildren(it, prefix)
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pebble: list: %w", err)
	}
	return out, nil
}

// listChildren walks it (bounded to prefix) and collects List's result.
// Keys come out of Pebble in byte order, and a folder "c/" sorts exactly
// where the keys inside it do, so the result is sorted without a sort.
func listChildren(it *pebble.Iterator, prefix string) ([]string, error) {
	var out []string
	var seek []byte
	for valid := it.First(); valid; {
		rest := it.Key()[len(prefix):] // valid only until the iterator moves
		if len(rest) == 0 {
			valid = it.Next() // the key equal to prefix is not its own child
			continue
		}
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			out = append(out, string(rest))
			valid = it.Next()
			continue
		}
		out = append(out, string(rest[:i+1]))
		// Every key in folder rest[:i+1] starts with prefix+rest[:i]+"/";
		// '0' is '/'+1, so prefix+rest[:i]+"0" is the first key after them.
		seek = append(append(append(seek[:0], prefix...), rest[:i]...), '0')
		valid = it.SeekGE(seek)
	}
	return out, it.Error()
}

// prefixEnd returns the smallest key greater than every key that starts with
// prefix, or nil (no upper bound) when there is none.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Close implements storage.Backend. It waits for operations in flight.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	// Flush the memtables so the next open need not replay the WAL: with
	// a million recent writes that replay took seconds of unseal-to-ready.
	// Nothing depends on it succeeding: the WAL still holds every write.
	_ = s.db.Flush()
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("pebble: close: %w", err)
	}
	return nil
}

// quietLogger drops Pebble's informational chatter (WAL and compaction
// notices) and keeps what an operator must see.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(format string, args ...any) { pebble.DefaultLogger.Errorf(format, args...) }
func (quietLogger) Fatalf(format string, args ...any) { pebble.DefaultLogger.Fatalf(format, args...) }

var _ pebble.Logger = quietLogger{}
