package token

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// fullSweepEvery is how often the sweeper lists the expiry index even when
// it believes nothing is due (a safety net for index keys written by
// another process sharing the storage).
const fullSweepEvery = time.Minute

// Revoke revokes the token and, recursively, all its descendants. The token
// and every descendant fail Lookup as soon as the token is marked, before
// the descendants are deleted. Revoking a token that is already gone is not
// an error.
func (s *Store) Revoke(ctx context.Context, e *Entry) error {
	if e == nil || e.HashedID == "" {
		return nil
	}
	return s.revokeTree(ctx, e.HashedID)
}

// RevokeOrphan revokes the token only; its children become orphans
// (Parent "") and stay valid throughout.
func (s *Store) RevokeOrphan(ctx context.Context, e *Entry) error {
	if e == nil || e.HashedID == "" {
		return nil
	}
	h := e.HashedID
	if err := s.orphanChildren(ctx, h); err != nil {
		return err
	}
	if err := s.mark(ctx, h); err != nil {
		return err
	}
	// Children created while we worked: Create re-checks its parent after
	// writing the index, so any child that passed that check is listed now.
	if err := s.orphanChildren(ctx, h); err != nil {
		return err
	}
	if err := s.finalize(ctx, h, ""); err != nil {
		return err
	}
	s.notifyRevoked(ctx, h)
	return nil
}

// notifyRevoked tells the kernel a token is gone (see Options.Revoked).
func (s *Store) notifyRevoked(ctx context.Context, h string) {
	if s.revoked != nil {
		s.revoked(ctx, h)
	}
}

// orphanChildren clears Parent on every child of h and drops h's child index.
func (s *Store) orphanChildren(ctx context.Context, h string) error {
	children, err := s.children(ctx, h)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := s.orphan(ctx, c, h); err != nil {
			return err
		}
		if err := s.view.Delete(ctx, parentKey(h, c)); err != nil {
			return fmt.Errorf("token: delete parent index: %w", err)
		}
	}
	return nil
}

func (s *Store) orphan(ctx context.Context, child, parent string) error {
	l := s.lockFor(child)
	l.Lock()
	defer l.Unlock()
	ce, err := s.get(ctx, child)
	if err != nil || ce == nil || ce.Parent != parent {
		return err
	}
	ce.Parent = ""
	return s.put(ctx, ce)
}

func (s *Store) children(ctx context.Context, h string) ([]string, error) {
	keys, err := s.view.List(ctx, parentPrefix+h+"/")
	if err != nil {
		return nil, fmt.Errorf("token: list parent index: %w", err)
	}
	out := keys[:0]
	for _, k := range keys {
		if !strings.HasSuffix(k, "/") {
			out = append(out, k)
		}
	}
	return out, nil
}

// revokeTree marks root and its descendants top-down, then deletes them
// bottom-up, with an explicit stack (trees may be deep).
func (s *Store) revokeTree(ctx context.Context, root string) error {
	type frame struct {
		hashed, parent string // parent as found in the parent index
		expanded       bool
	}
	stack := []frame{{hashed: root}}
	for len(stack) > 0 {
		top := len(stack) - 1
		if !stack[top].expanded {
			stack[top].expanded = true
			h := stack[top].hashed
			if err := s.mark(ctx, h); err != nil {
				return err
			}
			children, err := s.children(ctx, h)
			if err != nil {
				return err
			}
			for _, c := range children {
				stack = append(stack, frame{hashed: c, parent: h})
			}
			continue
		}
		f := stack[top]
		stack = stack[:top]
		if err := s.finalize(ctx, f.hashed, f.parent); err != nil {
			return err
		}
		s.notifyRevoked(ctx, f.hashed)
	}
	return nil
}

// RevokeByMount revokes every token issued by the auth mount with this
// accessor, and their descendants: disabling an auth method ends the
// sessions it opened, as in Vault.
func (s *Store) RevokeByMount(ctx context.Context, accessor string) error {
	if accessor == "" || strings.Contains(accessor, "/") {
		return fmt.Errorf("token: invalid mount accessor")
	}
	prefix := mountPrefix + accessor + "/"
	for {
		keys, err := s.view.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("token: list mount index: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		for _, h := range keys {
			if err := s.revokeTree(ctx, h); err != nil {
				return err
			}
			// finalize removed the key with the entry; a key whose entry
			// was already gone is removed here.
			if err := s.view.Delete(ctx, prefix+h); err != nil {
				return fmt.Errorf("token: delete mount index: %w", err)
			}
		}
	}
}

// mark sets NumUses to revocationPending so the token and its descendants
// fail every lookup from now on.
func (s *Store) mark(ctx context.Context, h string) error {
	l := s.lockFor(h)
	l.Lock()
	defer l.Unlock()
	e, err := s.get(ctx, h)
	if err != nil || e == nil || e.NumUses == revocationPending {
		return err
	}
	e.NumUses = revocationPending
	return s.put(ctx, e)
}

// finalize deletes a token's indexes and then its entry. indexParent is the
// parent under which the tree walk found it ("" for the walk's root).
func (s *Store) finalize(ctx context.Context, h, indexParent string) error {
	l := s.lockFor(h)
	l.Lock()
	defer l.Unlock()
	e, err := s.get(ctx, h)
	if err != nil {
		return err
	}
	var keys []string
	if e != nil {
		keys = append(keys, s.accessorKey(e.Accessor))
		if !e.ExpireTime.IsZero() {
			keys = append(keys, expiryKey(e.ExpireTime, h))
		}
		if e.Parent != "" {
			keys = append(keys, parentKey(e.Parent, h))
		}
		if e.MountAccessor != "" {
			keys = append(keys, mountKey(e.MountAccessor, h))
		}
	}
	if indexParent != "" && (e == nil || e.Parent != indexParent) {
		keys = append(keys, parentKey(indexParent, h))
	}
	keys = append(keys, idPrefix+h) // the entry goes last
	defer s.cache.invalidate(h)
	for _, k := range keys {
		if err := s.view.Delete(ctx, k); err != nil {
			return fmt.Errorf("token: delete during revocation: %w", err)
		}
	}
	return nil
}

// revokeIfInvalid revokes h (and its tree) if it is marked, expired, or
// its parent is gone. Lookups feed it through revokeQ.
func (s *Store) revokeIfInvalid(ctx context.Context, h string) error {
	e, err := s.get(ctx, h)
	if err != nil || e == nil {
		return err
	}
	if !e.usableAt(s.clock()) {
		return s.revokeTree(ctx, h)
	}
	if e.Parent == "" {
		return nil
	}
	p, err := s.get(ctx, e.Parent)
	if err != nil || p != nil {
		return err
	}
	// The parent is gone. Re-read the entry: revoke-orphan clears Parent
	// before it deletes the parent, so a still-set Parent means dangling.
	again, err := s.get(ctx, h)
	if err != nil || again == nil || again.Parent != e.Parent {
		return err
	}
	return s.revokeTree(ctx, h)
}

// Run is the expiry sweeper: every second it revokes the tokens whose
// ExpireTime has passed, reading only the due buckets of the expiry index,
// and it revokes the invalid tokens that lookups reported. It returns when
// ctx is done. Call it once per Store.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("token: expiry sweep failed", "error", err)
			}
		case h := <-s.revokeQ:
			if err := s.revokeIfInvalid(ctx, h); err != nil && ctx.Err() == nil {
				s.logger.Error("token: background revocation failed", "error", err)
			}
		}
	}
}

// sweep processes every expiry bucket at or before now.
func (s *Store) sweep(ctx context.Context) error {
	now := s.clock()
	s.mu.Lock()
	full := now.Sub(s.lastFull) >= fullSweepEvery
	if !full && now.Unix() < s.nextDue {
		s.mu.Unlock()
		return nil
	}
	if full {
		s.lastFull = now
	}
	// Reset before listing: a Create that notes an expiry after this point
	// lowers nextDue again; one that noted it before wrote its key before
	// our List, so we see the key.
	s.nextDue = math.MaxInt64
	s.mu.Unlock()

	next := int64(math.MaxInt64)
	defer func() {
		s.mu.Lock()
		s.nextDue = min(s.nextDue, next)
		s.mu.Unlock()
	}()

	buckets, err := s.view.List(ctx, expiryPrefix)
	if err != nil {
		next = 0
		return fmt.Errorf("token: list expiry index: %w", err)
	}
	var errs []error
	for _, b := range buckets {
		if !strings.HasSuffix(b, "/") {
			continue
		}
		sec, perr := strconv.ParseInt(strings.TrimSuffix(b, "/"), 10, 64)
		if perr != nil {
			continue
		}
		if sec > now.Unix() {
			next = min(next, sec)
			break
		}
		keys, err := s.view.List(ctx, expiryPrefix+b)
		if err != nil {
			next = min(next, sec)
			errs = append(errs, fmt.Errorf("token: list expiry bucket: %w", err))
			continue
		}
		for _, h := range keys {
			if ctx.Err() != nil {
				next = min(next, sec)
				return errors.Join(append(errs, ctx.Err())...)
			}
			done, err := s.sweepOne(ctx, sec, h, now)
			if err != nil {
				errs = append(errs, err)
			}
			if !done || err != nil {
				next = min(next, sec)
			}
		}
	}
	return errors.Join(errs...)
}

// sweepOne handles expiry/<sec>/<h>. It reports false when the key must be
// looked at again (the token expires later within that second, or an error).
func (s *Store) sweepOne(ctx context.Context, sec int64, h string, now time.Time) (bool, error) {
	key := fmt.Sprintf("%s%020d/%s", expiryPrefix, sec, h)
	l := s.lockFor(h)
	l.Lock()
	e, err := s.get(ctx, h)
	if err != nil {
		l.Unlock()
		return false, err
	}
	switch {
	case e == nil || e.ExpireTime.IsZero() || e.ExpireTime.Unix() != sec:
		// Stale: revoked, or renewed into another bucket. The lock keeps a
		// concurrent Renew from having written this bucket's key for an
		// entry we read before its update.
		err = s.view.Delete(ctx, key)
		l.Unlock()
		if err != nil {
			return false, fmt.Errorf("token: delete expiry index: %w", err)
		}
		return true, nil
	case e.usableAt(now):
		l.Unlock()
		return false, nil
	}
	l.Unlock()
	if err := s.revokeTree(ctx, h); err != nil {
		return false, err
	}
	return true, nil
}
