package logical

import (
	"context"
	"encoding/json"
	"strings"
)

// StorageEntry is one key in a backend's storage view.
type StorageEntry struct {
	Key   string
	Value []byte
}

// Storage is a backend's private key space. Keys use "/" as a separator;
// List returns the immediate children of a prefix, folders with a trailing
// "/", sorted. Get returns (nil, nil) for a missing key.
type Storage interface {
	List(ctx context.Context, prefix string) ([]string, error)
	Get(ctx context.Context, key string) (*StorageEntry, error)
	Put(ctx context.Context, entry *StorageEntry) error
	Delete(ctx context.Context, key string) error
}

// StorageEntryJSON marshals v into an entry under key.
func StorageEntryJSON(key string, v any) (*StorageEntry, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &StorageEntry{Key: key, Value: b}, nil
}

// DecodeJSON unmarshals the entry's value into out.
func (e *StorageEntry) DecodeJSON(out any) error {
	return json.Unmarshal(e.Value, out)
}

// CollectKeys lists every key under prefix, depth first, without folders.
func CollectKeys(ctx context.Context, s Storage, prefix string) ([]string, error) {
	var out []string
	var walk func(p string) error
	walk = func(p string) error {
		keys, err := s.List(ctx, p)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				if err := walk(p + k); err != nil {
					return err
				}
				continue
			}
			out = append(out, p+k)
		}
		return nil
	}
	return out, walk(prefix)
}

// StorageOp is one write of a batch: a put of Value at Key, or a delete.
type StorageOp struct {
	Key    string
	Value  []byte
	Delete bool
}

// BatchStorage is implemented by storage that applies several writes
// atomically: all of them or none, in one durable commit. The host's
// storage views implement it; plugins check for it with a type assertion
// and fall back to single writes when it is absent.
type BatchStorage interface {
	Storage
	Batch(ctx context.Context, ops []StorageOp) error
}
