package wasm

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// The pool. A mount has PoolSize tokens: a call holds one with its
// instance, and so does an instance being created; idle instances hold
// none. A caller takes a token and an idle instance (or creates one while
// fewer than PoolSize exist); when every token is taken it waits, and the
// call that finishes hands its instance, token and all, to a waiter.
//
// Affinity. Each instance has a slot number below PoolSize, and each
// request an affinity (a hash of its path without the first segment:
// data/app/db and metadata/app/db name the same object, as encrypt/k and
// keys/k do). An instance handed on goes to the first waiter, among the
// next affinityWindow, whose affinity maps to its slot, else to the first
// waiter; an idle instance of the request's slot is preferred likewise.
// Requests for one object thus tend to run in the same instance, whose
// caches other instances' writes then rarely invalidate (a KV write whose
// metadata another instance changed must read and decode it again). It
// never leaves an instance idle while a request waits, so a hot object
// still uses every instance; and a waiter passed over maxPassedOver times
// is served next, so nothing waits behind requests that came after it for
// long. Without waiters (a lightly loaded mount) order is arrival order.

const (
	affinityWindow = 32
	maxPassedOver  = 4
)

// waiter is a caller waiting for a token.
type waiter struct {
	affinity uint32
	passed   int // times passed over for a later waiter
	// Set under Mount.mu when the waiter is served: it owns a token, and
	// inst if not nil (else it creates an instance); err if the mount
	// closed instead.
	served bool
	inst   *instance
	err    error
	ready  chan struct{} // closed when served
}

// affinityOf hashes a request path without its first segment (FNV-1a).
func affinityOf(path string) uint32 {
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && i+1 < len(path) {
			path = path[i+1:]
			break
		}
	}
	h := uint32(2166136261)
	for i := 0; i < len(path); i++ {
		h ^= uint32(path[i])
		h *= 16777619
	}
	return h
}

func (m *Mount) slotOf(affinity uint32) int { return int(affinity % uint32(m.cfg.Limits.PoolSize)) }

// takeTokenLocked takes a token if one is free.
func (m *Mount) takeTokenLocked() bool {
	if m.inUse >= m.cfg.Limits.PoolSize {
		return false
	}
	m.inUse++
	return true
}

// returnTokenLocked gives a token back (its holder has no instance to
// hand on): to the first waiter, who then creates an instance, or to the
// pool.
func (m *Mount) returnTokenLocked() {
	if len(m.waiters) > 0 && !m.closed {
		m.serveLocked(0, nil)
		return
	}
	m.inUse--
	m.drainedLocked()
}

// drainedLocked signals Close once the mount is closed and idle.
func (m *Mount) drainedLocked() {
	if m.closed && m.inUse == 0 && m.drained != nil {
		close(m.drained)
		m.drained = nil
	}
}

// serveLocked hands waiter i a token and inst (nil: create one).
func (m *Mount) serveLocked(i int, inst *instance) {
	w := m.waiters[i]
	m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
	for _, o := range m.waiters[:min(i, len(m.waiters))] {
		o.passed++ // waiters ahead of it were passed over
	}
	w.served, w.inst = true, inst
	close(w.ready)
}

// pickWaiterLocked chooses who gets inst.
func (m *Mount) pickWaiterLocked(inst *instance) int {
	if m.waiters[0].passed >= maxPassedOver {
		return 0
	}
	for i, w := range m.waiters[:min(len(m.waiters), affinityWindow)] {
		if m.slotOf(w.affinity) == inst.slot {
			return i
		}
	}
	return 0
}

// pickIdleLocked takes the idle instance of affinity's slot, or the most
// recently used one.
func (m *Mount) pickIdleLocked(affinity uint32) *instance {
	i := len(m.idle) - 1
	slot := m.slotOf(affinity)
	for j, inst := range m.idle {
		if inst.slot == slot {
			i = j
			break
		}
	}
	inst := m.idle[i]
	m.idle = append(m.idle[:i], m.idle[i+1:]...)
	return inst
}

// acquire takes a token and an instance for a request with the given
// affinity, waiting while every token is taken. Every invalidation queued
// for the instance is delivered, or returned for the request to carry
// (HandleRequestArgs.invalidated_keys) when the module reads them there
// and they fit in carry bytes.
func (m *Mount) acquire(ctx context.Context, affinity uint32, carry int) (*instance, []string, error) {
	var inst *instance
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return nil, nil, ErrClosed
	case m.takeTokenLocked():
		if len(m.idle) > 0 {
			inst = m.pickIdleLocked(affinity)
		}
		m.mu.Unlock()
	default:
		w := &waiter{affinity: affinity, ready: make(chan struct{})}
		m.waiters = append(m.waiters, w)
		m.mu.Unlock()
		select {
		case <-w.ready:
		case <-ctx.Done():
			m.mu.Lock()
			if !w.served {
				for i, o := range m.waiters {
					if o == w {
						m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
						break
					}
				}
				m.mu.Unlock()
				return nil, nil, m.waitErr(ctx)
			}
			m.mu.Unlock()
			// Served as we gave up: pass the token on.
			if w.err == nil {
				if w.inst != nil {
					m.release(w.inst, nil)
				} else {
					m.mu.Lock()
					m.returnTokenLocked()
					m.mu.Unlock()
				}
			}
			return nil, nil, m.waitErr(ctx)
		}
		if w.err != nil {
			return nil, nil, w.err
		}
		inst = w.inst
	}
	return m.prepare(ctx, inst, carry)
}

// prepare makes inst (nil: a new one) ready for a call: every invalidation
// queued for it is delivered, or returned when the module reads them in a
// request (minor 1) and they take at most carry bytes there. The caller
// holds a token, which it keeps on success and gives back on failure.
func (m *Mount) prepare(ctx context.Context, inst *instance, carry int) (*instance, []string, error) {
	for {
		if inst == nil {
			var err error
			if inst, err = m.newInstance(ctx); err != nil {
				m.mu.Lock()
				m.returnTokenLocked()
				m.mu.Unlock()
				err = stripHealthy(err)
				var ke *kindError
				if !errors.As(err, &ke) && !errors.Is(err, ErrClosed) {
					// The plugin refused to set up a new instance: to the
					// client the mount is unavailable, not its request bad.
					err = &kindError{sentinel: ErrModuleFailed, code: logical.CodeUnavailable,
						msg: fmt.Sprintf("%v: a new instance failed to set up: %v", ErrModuleFailed, err)}
				}
				return nil, nil, err
			}
		}
		// Deliver what other instances (or the kernel) changed since this
		// one last ran, including during its setup.
		m.mu.Lock()
		keys, all := m.invalidationsLocked(inst, m.invalidationBudget())
		m.mu.Unlock()
		if all {
			m.retire(inst) // a fresh instance has nothing to invalidate
			inst = nil
			continue
		}
		if inst.minor >= 1 && len(keys) > 0 && keysSize(keys) <= carry {
			return inst, keys, nil
		}
		if len(keys) > 0 {
			ictx := context.WithValue(ctx, instanceKey{}, inst)
			if _, err := inst.run(ictx, abi.OpInvalidate, abi.AppendInvalidateKeys(nil, m.cfg.ID, keys), false); err != nil {
				m.retire(inst)
				inst = nil
				if ctx.Err() != nil {
					m.mu.Lock()
					m.returnTokenLocked()
					m.mu.Unlock()
					return nil, nil, stripHealthy(err)
				}
				continue
			}
		}
		return inst, nil, nil
	}
}

// keysSize bounds the encoded size of keys as a repeated string field.
func keysSize(keys []string) int {
	n := 0
	for _, k := range keys {
		n += len(k) + 6 // tag and length
	}
	return n
}

// release returns an instance after a call, with its token: to a waiter,
// or to the idle list, if it is healthy and not too big; closed (and
// replaced) otherwise.
func (m *Mount) release(inst *instance, callErr error) {
	if cap(inst.out) > 64<<10 {
		inst.out = nil // do not keep a large answer's buffer per instance
	}
	if cap(inst.pending) > 64<<10 {
		inst.pending = nil
	}
	keep := isHealthy(callErr) && uint64(inst.mem.Size()) <= uint64(m.cfg.Limits.MemoryPages)*65536*3/4
	if keep {
		m.mu.Lock()
		if !m.closed {
			if len(m.waiters) > 0 {
				m.serveLocked(m.pickWaiterLocked(inst), inst)
			} else {
				m.idle = append(m.idle, inst)
				m.inUse--
			}
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.cleanupInstance(inst)
	}
	m.retire(inst)
	m.mu.Lock()
	m.returnTokenLocked()
	m.mu.Unlock()
	m.replenish()
}

// replenish starts creating an instance in the background when none is
// idle (after one was discarded), so the next request does not pay for
// instantiation. It gives up quietly if every token is taken: those
// callers will find or create instances themselves.
func (m *Mount) replenish() {
	m.mu.Lock()
	if !m.ready || m.closed || len(m.idle) > 0 || !m.takeTokenLocked() {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		inst, err := m.newInstance(context.Background())
		if err != nil {
			m.mu.Lock()
			m.returnTokenLocked()
			m.mu.Unlock()
			m.log.Warn("wasm: could not create a replacement instance", "error", err)
			return
		}
		m.release(inst, nil)
	}()
}

// token takes a token for work outside requests (the first instance,
// warming the pool in tests), without waiting; false if none is free.
func (m *Mount) token() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.closed && m.takeTokenLocked()
}

func (m *Mount) waitErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &kindError{sentinel: ErrDeadline, code: logical.CodeUnavailable, cause: context.DeadlineExceeded,
			msg: fmt.Sprintf("%v while waiting for a free instance (%d busy)", ErrDeadline, m.cfg.Limits.PoolSize)}
	}
	return ctx.Err()
}
