package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// fullSweepEvery is how often Run lists the expiry index even when it
// believes nothing is due (a safety net for keys written by another node
// sharing the storage). Listing is O(due window), so this is cheap.
const fullSweepEvery = time.Minute

// Run is the expiry loop: every Interval it revokes the leases that are due
// (expired, or whose failed revocation is due for another attempt), reading
// only the due part of the expiry index, with at most Options.Concurrency
// revocations at once. It does not wait for the revocations it started
// before looking again: a lease that comes due while earlier ones are
// being revoked is started as soon as a slot is free, not after the
// slowest of them. It returns when ctx is done, after the revocations it
// started have finished. Call it once per Manager; the kernel starts it at
// unseal and cancels ctx at seal.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	g := m.newGroup()
	g.report = func(err error) {
		if ctx.Err() == nil {
			m.logger.Error("lease: expiring a lease failed", "error", err)
		}
	}
	defer g.Wait()
	for {
		if err := m.dispatch(ctx, g); err != nil && ctx.Err() == nil {
			m.logger.Error("lease: expiry sweep failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep processes every expiry index key due at now, and returns when
// they are all processed (Run's work, one round at a time: for tests).
func (m *Manager) sweep(ctx context.Context) error {
	g := m.newGroup()
	err := m.dispatch(ctx, g)
	_, errs := g.Wait()
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dispatch starts, in g, the handling of every expiry index key due at
// now that is not already being handled, and returns once they are all
// started (g.Go waits for a free slot). A handler that must look at its
// key again lowers nextDue itself when it finishes.
func (m *Manager) dispatch(ctx context.Context, g *group) error {
	now := m.now()
	nowSec := now.Unix()
	m.mu.Lock()
	full := now.Sub(m.lastFull) >= fullSweepEvery
	if !full && nowSec < m.nextDue {
		m.mu.Unlock()
		return nil
	}
	if full {
		m.lastFull = now
	}
	// Reset before listing: a write that notes a due time after this point
	// lowers nextDue again; one that noted it before wrote its key before
	// our List, so we see the key. A handler still running from an earlier
	// round lowers it when it finishes, if it must.
	m.nextDue = math.MaxInt64
	m.mu.Unlock()

	next := int64(math.MaxInt64) // earliest second not looked at
	err := m.walkDue(ctx, expiryPrefix, 0, 0, nowSec, &next, g)
	if err != nil {
		next = 0 // look again next time
	}
	m.mu.Lock()
	m.nextDue = min(m.nextDue, next)
	m.mu.Unlock()
	return err
}

// startExpiring claims an expiry index key for one handler; false when a
// handler already has it.
func (m *Manager) startExpiring(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.expiring[key]; busy {
		return false
	}
	m.expiring[key] = struct{}{}
	return true
}

// finishExpiring releases a key claimed by startExpiring; when the key
// must be looked at again, its second sec becomes due for Run.
func (m *Manager) finishExpiring(key string, done bool, sec int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.expiring, key)
	if !done {
		m.nextDue = min(m.nextDue, sec)
	}
}

// walkDue lists one level of the expiry index under prefix (depth 0 = the
// 2^16 s windows, 1 = the 2^8 s windows, 2 = seconds, 3 = lease hashes)
// in time order, descending into folders that start at or before nowSec
// and stopping at the first that starts later (lowering *next to it).
// start is the second the folder at prefix starts at. Keys already being
// handled are skipped: their handler reports whether they need another
// look.
func (m *Manager) walkDue(ctx context.Context, prefix string, depth int, start, nowSec int64, next *int64, g *group) error {
	keys, err := m.view.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("lease: list expiry index: %w", err)
	}
	if depth == 3 {
		sec := start
		for _, h := range keys {
			if strings.HasSuffix(h, "/") {
				continue
			}
			key := prefix + h
			if !m.startExpiring(key) {
				continue
			}
			if !g.Go(ctx, func() error {
				done, err := m.expireKey(ctx, key, h)
				m.finishExpiring(key, done, sec)
				return err
			}) {
				m.finishExpiring(key, false, sec)
				return ctx.Err()
			}
		}
		return nil
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, "/") {
			continue // not part of the layout
		}
		child, perr := strconv.ParseInt(strings.TrimSuffix(k, "/"), 10, 64)
		if perr != nil {
			continue
		}
		if child > nowSec {
			*next = min(*next, child)
			return nil
		}
		if err := m.walkDue(ctx, prefix+k, depth+1, child, nowSec, next, g); err != nil {
			return err
		}
	}
	return nil
}

// expireKey handles one due expiry index key. It reports false when the
// key must be looked at again (the lease is due later within that second,
// or storage failed).
func (m *Manager) expireKey(ctx context.Context, key, h string) (bool, error) {
	now := m.now()
	current := func(e *Entry) bool { return !e.Irrevocable && expiryKey(e.due(), h) == key }
	e, _, err := m.indexTarget(ctx, key, h, current)
	if err != nil || e == nil {
		return err == nil, err
	}
	if e.due().After(now) {
		return false, nil // due later in this second: look again
	}
	// The lock is released, but a due lease stays due: it cannot be renewed
	// (it is expired or pending), and revoke re-reads it before deleting.
	err = m.revoke(ctx, e.ID, e, false)
	switch {
	case err == nil || errors.Is(err, ErrRevokeFailed):
		return true, nil // revoked, or rescheduled (recordFailure logged it)
	case ctx.Err() != nil:
		return false, nil
	default:
		return false, err
	}
}
