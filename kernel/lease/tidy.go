package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/wardproject/ward/sdk/logical"
)

// TidyReport says what Tidy found and fixed.
type TidyReport struct {
	// Leases is the number of lease entries checked.
	Leases int
	// StaleIndexKeys counts index keys removed because they named no
	// lease, or not as the lease now stands.
	StaleIndexKeys int
	// RestoredIndexKeys counts index keys a lease was missing and got back
	// (only a crash on storage without atomic batches can lose one).
	RestoredIndexKeys int
	// OrphansRevoked counts leases revoked because their creating token is
	// gone (only with Options.TokenExists); OrphansPending those whose
	// revocation failed and is now retried.
	OrphansRevoked, OrphansPending int
}

// Tidy walks every index and every lease once: it removes dangling index
// keys, restores missing ones, and (with Options.TokenExists) revokes leases
// whose token is gone. It serves sys/leases/tidy. Unlike Run it reads the
// whole key space, so its cost grows with the number of leases; its memory
// grows only with the largest folder it lists.
func (m *Manager) Tidy(ctx context.Context) (TidyReport, error) {
	var r TidyReport
	var stale atomic.Int64

	// Index keys first: each is checked against the lease it names.
	err := m.walkKeys(ctx, expiryPrefix, func(key string) error {
		h := key[strings.LastIndexByte(key, '/')+1:]
		return m.tidyIndexKey(ctx, key, h, &stale, func(e *Entry) bool {
			return !e.Irrevocable && expiryKey(e.due(), h) == key
		})
	})
	if err == nil {
		err = m.walkKeys(ctx, tokenPrefix, func(key string) error {
			rest := strings.TrimPrefix(key, tokenPrefix)
			tokenHash, h, ok := strings.Cut(rest, "/")
			return m.tidyIndexKey(ctx, key, h, &stale, func(e *Entry) bool {
				return ok && e.TokenHash == tokenHash
			})
		})
	}
	if err == nil {
		err = m.walkKeys(ctx, irrevocablePrefix, func(key string) error {
			h := strings.TrimPrefix(key, irrevocablePrefix)
			return m.tidyIndexKey(ctx, key, h, &stale, func(e *Entry) bool { return e.Irrevocable })
		})
	}
	r.StaleIndexKeys = int(stale.Load())
	if err != nil {
		return r, err
	}

	// Then the leases: each must have its index keys, and a live token.
	g := m.newGroup()
	var revoked, pending atomic.Int64
	err = m.walkKeys(ctx, idPrefix, func(key string) error {
		id := strings.TrimPrefix(key, idPrefix)
		r.Leases++
		n, tokenHash, err := m.restoreIndexes(ctx, id)
		r.RestoredIndexKeys += n
		if err != nil || tokenHash == "" || m.tokenExists == nil {
			return err
		}
		alive, err := m.tokenExists(ctx, tokenHash)
		if err != nil || alive {
			return err
		}
		if !g.Go(ctx, func() error {
			err := m.revoke(ctx, id, nil, false)
			switch {
			case err == nil:
				revoked.Add(1)
			case errors.Is(err, ErrRevokeFailed):
				pending.Add(1)
			}
			return err
		}) {
			return ctx.Err()
		}
		return nil
	})
	_, errs := g.Wait()
	r.OrphansRevoked, r.OrphansPending = int(revoked.Load()), int(pending.Load())
	if err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

// tidyIndexKey deletes key unless it names a lease with hash h for which
// current holds.
func (m *Manager) tidyIndexKey(ctx context.Context, key, h string, stale *atomic.Int64, current func(*Entry) bool) error {
	_, removed, err := m.indexTarget(ctx, key, h, current)
	if removed {
		stale.Add(1)
	}
	return err
}

// restoreIndexes writes the index keys lease id is missing and returns how
// many it wrote and the lease's token hash.
func (m *Manager) restoreIndexes(ctx context.Context, id string) (int, string, error) {
	h := hashID(id)
	l := m.lockFor(h)
	l.Lock()
	defer l.Unlock()
	e, err := m.get(ctx, id)
	if err != nil || e == nil {
		return 0, "", err
	}
	var ops []logical.StorageOp
	for _, k := range indexKeys(e, h) {
		se, err := m.view.Get(ctx, k)
		if err != nil {
			return 0, "", fmt.Errorf("lease: read index: %w", err)
		}
		if se == nil || string(se.Value) != id {
			ops = append(ops, logical.StorageOp{Key: k, Value: []byte(id)})
		}
	}
	if len(ops) > 0 {
		if err := m.apply(ctx, ops); err != nil {
			return 0, "", fmt.Errorf("lease: restore index: %w", err)
		}
		if !e.Irrevocable {
			m.noteDue(e.due())
		}
	}
	return len(ops), e.TokenHash, nil
}

// walkKeys calls f for every key under prefix, depth first, one folder
// listing in memory per level.
func (m *Manager) walkKeys(ctx context.Context, prefix string, f func(key string) error) error {
	keys, err := m.view.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("lease: list: %w", err)
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasSuffix(k, "/") {
			err = m.walkKeys(ctx, prefix+k, f)
		} else {
			err = f(prefix + k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
