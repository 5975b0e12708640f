package storage

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// Backend is the physical key/value store under the barrier. Keys are strings
// with "/" separators; values are opaque bytes. Implementations are safe for
// concurrent use. Slices passed in and handed back are never retained or
// shared: a caller may modify them freely afterwards.
type Backend interface {
	// Get returns the value stored under key, or (nil, nil) when key is absent.
	// A present key with an empty value yields a non-nil, empty slice.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key, replacing any previous value.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the immediate children of prefix, sorted: keys without
	// the prefix, and "folders" (a child that has further "/" segments) once
	// each with a trailing "/". For keys a/b, a/c/d, a/c/e and a/f/,
	// List("a/") is ["b", "c/", "f/"]. The prefix is matched as a plain
	// string, so a prefix that is not a folder works too: List("a/c") is
	// ["/"] for the same keys. A key equal to prefix is not its own child
	// and is not listed. Absent children give an empty result, not an error.
	List(ctx context.Context, prefix string) ([]string, error)
	// Batch applies puts and deletes atomically: all of them or none.
	// Readers never observe part of a batch.
	Batch(ctx context.Context, ops []Op) error
	// Close releases the backend. Afterwards every method returns ErrClosed;
	// a second Close returns nil.
	Close() error
}

// OpKind says what an Op does.
type OpKind uint8

const (
	// OpPut stores Op.Value under Op.Key.
	OpPut OpKind = iota + 1
	// OpDelete removes Op.Key.
	OpDelete
)

// Op is one write in a Batch.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte // for OpPut only
}

var (
	// ErrClosed is returned by every Backend method called after Close.
	ErrClosed = errors.New("storage: backend closed")
	// ErrInvalidKey is returned by Get, Put, Delete and Batch for an empty key.
	ErrInvalidKey = errors.New("storage: invalid key")
	// ErrInvalidOp is returned by Batch for an Op whose Kind is neither
	// OpPut nor OpDelete.
	ErrInvalidOp = errors.New("storage: invalid batch operation")
)

// CheckOps validates a batch before any of it is applied, so a Backend can
// reject a bad batch without applying part of it. It returns ErrInvalidKey or
// ErrInvalidOp, wrapped with the index of the offending Op.
func CheckOps(ops []Op) error {
	for i, op := range ops {
		if op.Kind != OpPut && op.Kind != OpDelete {
			return &opError{index: i, err: ErrInvalidOp}
		}
		if op.Key == "" {
			return &opError{index: i, err: ErrInvalidKey}
		}
	}
	return nil
}

// opError points at the first bad Op in a batch without quoting its value.
type opError struct {
	index int
	err   error
}

func (e *opError) Error() string { return e.err.Error() + " at batch index " + strconv.Itoa(e.index) }
func (e *opError) Unwrap() error { return e.err }

// listChild returns the List entry that key contributes under prefix: the
// rest of key after prefix, cut after its first "/" if it has one. key must
// start with prefix. The second result reports whether the child is a folder.
func listChild(prefix, key string) (child string, folder bool) {
	rest := key[len(prefix):]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i+1], true
	}
	return rest, false
}
