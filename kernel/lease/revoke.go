package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Revoke asks the engine to revoke the lease, then deletes the lease and
// all its index keys in one atomic batch. A lease that does not exist is
// already revoked: Revoke returns nil. If the engine fails, the lease is
// kept, marked pending and retried by Run with backoff; Revoke returns
// ErrRevokeFailed wrapping the engine's error. An irrevocable lease is
// tried again (and stays irrevocable if it fails).
func (m *Manager) Revoke(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	return m.revoke(ctx, id, nil, false)
}

// RevokePrefix revokes every lease whose ID starts with prefix (a "/" is
// appended when missing, as Vault does): sys/leases/revoke-prefix, and
// revoke-force with force set. It runs up to Options.Concurrency
// revocations at once. Without force, leases the engine fails to revoke
// are kept and retried (the error wraps ErrRevokeFailed with a count);
// with force, they are deleted anyway (Vault's revoke-force: the engine's
// side may keep the credential, which is logged) and the call succeeds.
func (m *Manager) RevokePrefix(ctx context.Context, prefix string, force bool) error {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if prefix == "" || !validPrefix(prefix) {
		return fmt.Errorf("%w: malformed prefix", ErrInvalid)
	}
	g := m.newGroup()
	var walk func(p string) error
	walk = func(p string) error {
		keys, err := m.view.List(ctx, idPrefix+p)
		if err != nil {
			return fmt.Errorf("lease: list leases: %w", err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				if err := walk(p + k); err != nil {
					return err
				}
				continue
			}
			id := p + k
			if !g.Go(ctx, func() error { return m.revoke(ctx, id, nil, force) }) {
				return ctx.Err()
			}
		}
		return nil
	}
	werr := walk(prefix)
	failed, errs := g.Wait()
	if werr != nil {
		errs = append(errs, werr)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d leases", ErrRevokeFailed, failed)
	}
	return nil
}

// RevokeByToken revokes every lease created by the token with this hash,
// up to Options.Concurrency at once. Leases the engine fails to revoke are
// kept and retried by Run (and logged); they are not an error, so revoking
// a token never fails because an engine is down. The error reports storage
// failures only.
func (m *Manager) RevokeByToken(ctx context.Context, tokenHash string) error {
	if tokenHash == "" || strings.Contains(tokenHash, "/") || tokenHash == "." || tokenHash == ".." {
		return fmt.Errorf("%w: malformed token hash", ErrInvalid)
	}
	prefix := tokenPrefix + tokenHash + "/"
	keys, err := m.view.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("lease: list token index: %w", err)
	}
	g := m.newGroup()
	for _, h := range keys {
		if strings.HasSuffix(h, "/") {
			continue
		}
		key := prefix + h
		ok := g.Go(ctx, func() error {
			e, _, err := m.indexTarget(ctx, key, h, func(e *Entry) bool { return e.TokenHash == tokenHash })
			if err != nil || e == nil {
				return err
			}
			err = m.revoke(ctx, e.ID, e, false)
			if errors.Is(err, ErrRevokeFailed) {
				return nil // pending: Run retries it
			}
			return err
		})
		if !ok {
			break
		}
	}
	_, errs := g.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Irrevocable returns the leases whose revocation failed MaxAttempts times,
// with their last error. They stay until revoked or forgotten (force).
func (m *Manager) Irrevocable(ctx context.Context) ([]*Entry, error) {
	keys, err := m.view.List(ctx, irrevocablePrefix)
	if err != nil {
		return nil, fmt.Errorf("lease: list irrevocable leases: %w", err)
	}
	var out []*Entry
	for _, h := range keys {
		if strings.HasSuffix(h, "/") {
			continue
		}
		se, err := m.view.Get(ctx, irrevocableKey(h))
		if err != nil {
			return nil, fmt.Errorf("lease: read irrevocable index: %w", err)
		}
		if se == nil {
			continue
		}
		e, err := m.get(ctx, string(se.Value))
		if err != nil {
			return nil, err
		}
		if e != nil && e.Irrevocable {
			out = append(out, e)
		}
	}
	return out, nil
}

// indexTarget reads the index key (whose value is a lease ID) and returns
// the lease if it has hash h and ok holds for it. A key that does not name
// such a lease is deleted (under the lease's lock, so a concurrent write
// cannot be undone): nil is returned and removed is true.
func (m *Manager) indexTarget(ctx context.Context, key, h string, ok func(*Entry) bool) (_ *Entry, removed bool, err error) {
	se, err := m.view.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("lease: read index: %w", err)
	}
	if se == nil {
		return nil, false, nil
	}
	id := string(se.Value)
	l := m.lockFor(h)
	l.Lock()
	defer l.Unlock()
	var e *Entry
	if validID(id) && hashID(id) == h {
		if e, err = m.get(ctx, id); err != nil {
			return nil, false, err
		}
	}
	if e == nil || !ok(e) {
		if err := m.view.Delete(ctx, key); err != nil {
			return nil, false, fmt.Errorf("lease: delete stale index key: %w", err)
		}
		return nil, true, nil
	}
	return e, false, nil
}

// revoke revokes one lease; concurrent calls for the same lease share one
// engine call (a forced call repeats it if the shared one failed, and any
// call repeats it if the shared one was cancelled by its caller). e, when
// not nil, is the lease as the caller just read it (saves a read).
func (m *Manager) revoke(ctx context.Context, id string, e *Entry, force bool) error {
	h := hashID(id)
	for {
		m.mu.Lock()
		c, busy := m.inflight[h]
		if !busy {
			c = &call{done: make(chan struct{})}
			m.inflight[h] = c
		}
		m.mu.Unlock()
		if busy {
			select {
			case <-c.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			cancelled := errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)
			if c.err == nil || !force && !cancelled {
				return c.err
			}
			e = nil
			continue
		}
		c.err = m.revokeLeader(ctx, id, h, e, force)
		m.mu.Lock()
		delete(m.inflight, h)
		m.mu.Unlock()
		close(c.done)
		return c.err
	}
}

func (m *Manager) revokeLeader(ctx context.Context, id, h string, e *Entry, force bool) error {
	if e == nil {
		var err error
		if e, err = m.get(ctx, id); err != nil || e == nil {
			return err
		}
	}
	berr := m.revokeSecret(ctx, e)
	if berr != nil && ctx.Err() != nil {
		// Cancelled (the kernel is sealing or the caller left): not the
		// engine's failure, so no attempt is counted.
		return ctx.Err()
	}
	if berr != nil && !force {
		return m.recordFailure(ctx, id, h, berr)
	}

	l := m.lockFor(h)
	l.Lock()
	defer l.Unlock()
	cur, err := m.getSince(ctx, id, e)
	if err != nil || cur == nil {
		return err
	}
	// cur, not e: a renewal may have moved the expiry key meanwhile.
	if err := m.apply(ctx, deleteOps(cur)); err != nil {
		return fmt.Errorf("lease: delete revoked lease: %w", err)
	}
	if berr != nil {
		m.logger.Warn("lease: forced revocation forgot a lease the secret engine failed to revoke",
			"mount", cur.MountPoint, "path", cur.Path, "error", berr)
	}
	return nil
}

// revokeSecret calls the engine once a call slot is free.
func (m *Manager) revokeSecret(ctx context.Context, e *Entry) error {
	select {
	case m.calls <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-m.calls }()
	return m.backend.RevokeSecret(ctx, e.clone())
}

// recordFailure counts a failed revocation: the lease's expiry key moves
// to the time of the next attempt, or to the irrevocable set after
// MaxAttempts failures. It returns ErrRevokeFailed wrapped with berr.
func (m *Manager) recordFailure(ctx context.Context, id, h string, berr error) error {
	l := m.lockFor(h)
	l.Lock()
	defer l.Unlock()
	cur, err := m.get(ctx, id)
	if err != nil {
		return err
	}
	if cur == nil {
		return nil // revoked meanwhile
	}
	old := cur.clone()
	now := m.now()
	cur.RevokeAttempts++
	cur.LastError = truncate(berr.Error(), maxErrorLen)
	if cur.RevokeAttempts >= m.maxAttempts {
		cur.Irrevocable = true
		cur.NextAttempt = time.Time{}
	} else {
		cur.NextAttempt = now.Add(m.backoff(cur.RevokeAttempts))
	}
	ops, err := putOps(cur, old)
	if err != nil {
		return err
	}
	if err := m.apply(ctx, ops); err != nil {
		return fmt.Errorf("lease: record failed revocation: %w", err)
	}
	if cur.Irrevocable {
		m.logger.Error("lease: revocation failed too many times; lease is irrevocable",
			"mount", cur.MountPoint, "path", cur.Path, "attempts", cur.RevokeAttempts, "error", berr)
	} else {
		m.noteDue(cur.NextAttempt)
		m.logger.Warn("lease: revocation failed; will retry",
			"mount", cur.MountPoint, "path", cur.Path, "attempts", cur.RevokeAttempts,
			"retry_in", cur.NextAttempt.Sub(now).Round(time.Millisecond), "error", berr)
	}
	return fmt.Errorf("%w: %w", ErrRevokeFailed, berr)
}

// backoff is the delay after the n-th failure (n ≥ 1): RetryBase·2^(n-1)
// capped at RetryMax, with equal jitter.
func (m *Manager) backoff(n int) time.Duration {
	d := m.retryBase
	for i := 1; i < n && d < m.retryMax; i++ {
		d *= 2
	}
	d = min(d, m.retryMax)
	half := d / 2
	return half + rand.N(d-half+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// group runs functions under the Manager's concurrency bound and collects
// their outcomes.
type group struct {
	sem chan struct{}
	wg  sync.WaitGroup

	// report, when set, receives every error instead of Wait (Run's
	// group lives as long as Run and must not accumulate them).
	report func(error)

	mu     sync.Mutex // protects the fields below
	failed int        // calls that returned ErrRevokeFailed
	errs   []error    // other errors
}

func (m *Manager) newGroup() *group { return &group{sem: m.tasks} }

// Go runs f once a slot is free; it returns false (and does not run f)
// when ctx is done first.
func (g *group) Go(ctx context.Context, f func() error) bool {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	g.wg.Go(func() {
		defer func() { <-g.sem }()
		err := f()
		if err == nil {
			return
		}
		if g.report != nil {
			g.report(err)
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if errors.Is(err, ErrRevokeFailed) {
			g.failed++
		} else if len(g.errs) < 8 {
			g.errs = append(g.errs, err)
		}
	})
	return true
}

// Wait waits for every f and returns the counts.
func (g *group) Wait() (failed int, errs []error) {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed, g.errs
}
