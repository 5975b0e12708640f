package logical

import (
	"context"
	"sort"
	"strings"
	"sync"
)

// InmemStorage is a Storage held in memory, for plugin tests. It follows the
// same contract as the host's storage views (List semantics, copies in and out).
type InmemStorage struct {
	mu sync.RWMutex // protects m
	m  map[string][]byte
}

var _ BatchStorage = (*InmemStorage)(nil)

// NewInmemStorage returns an empty InmemStorage.
func NewInmemStorage() *InmemStorage { return &InmemStorage{m: map[string][]byte{}} }

func (s *InmemStorage) Get(_ context.Context, key string) (*StorageEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	return &StorageEntry{Key: key, Value: append([]byte(nil), v...)}, nil
}

func (s *InmemStorage) Put(_ context.Context, e *StorageEntry) error {
	if e == nil || e.Key == "" {
		return InvalidRequest("storage: empty key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[e.Key] = append([]byte(nil), e.Value...)
	return nil
}

func (s *InmemStorage) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *InmemStorage) List(_ context.Context, prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for k := range s.m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if !seen[rest] {
			seen[rest] = true
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Batch applies ops atomically.
func (s *InmemStorage) Batch(_ context.Context, ops []StorageOp) error {
	for _, op := range ops {
		if op.Key == "" {
			return InvalidRequest("storage: empty key")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if op.Delete {
			delete(s.m, op.Key)
		} else {
			s.m[op.Key] = append([]byte(nil), op.Value...)
		}
	}
	return nil
}
