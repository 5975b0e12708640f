package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fullSweepEvery is how often Run lists the expiry index even when it
// believes nothing is due (a safety net for keys written by another node
// sharing the storage). Listing is O(due window), so this is cheap.
const fullSweepEvery = time.Minute

// Run is the expiry loop: every Interval it revokes the leases that are due
// (expired, or whose failed revocation is due for another attempt), reading
// only the due part of the expiry index, with at most Options.Concurrency
// revocations at once. It returns when ctx is done, after the revocations
// it started have finished. Call it once per Manager; the kernel starts it
// at unseal and cancels ctx at seal.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if err := m.sweep(ctx); err != nil && ctx.Err() == nil {
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
// they are all processed.
func (m *Manager) sweep(ctx context.Context) error {
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
	// our List, so we see the key.
	m.nextDue = math.MaxInt64
	m.mu.Unlock()

	s := &sweepState{next: math.MaxInt64}
	defer func() {
		m.mu.Lock()
		m.nextDue = min(m.nextDue, s.next)
		m.mu.Unlock()
	}()

	g := m.newGroup()
	err := m.walkDue(ctx, expiryPrefix, 0, 0, nowSec, s, g)
	_, errs := g.Wait()
	if err != nil {
		s.later(0) // look again next time
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweepState collects what the workers of one sweep learn.
type sweepState struct {
	mu   sync.Mutex // protects next
	next int64      // earliest second that still needs a look
}

func (s *sweepState) later(sec int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = min(s.next, sec)
}

// walkDue lists one level of the expiry index under prefix (depth 0 = the
// 2^16 s windows, 1 = the 2^8 s windows, 2 = seconds, 3 = lease hashes)
// in time order, descending into folders that start at or before nowSec
// and stopping at the first that starts later. start is the second the
// folder at prefix starts at.
func (m *Manager) walkDue(ctx context.Context, prefix string, depth int, start, nowSec int64, s *sweepState, g *group) error {
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
			if !g.Go(ctx, func() error {
				done, err := m.expireKey(ctx, key, h)
				if !done {
					s.later(sec)
				}
				return err
			}) {
				s.later(sec)
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
			s.later(child)
			return nil
		}
		if err := m.walkDue(ctx, prefix+k, depth+1, child, nowSec, s, g); err != nil {
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
