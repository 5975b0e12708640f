package wasm

import (
	"context"
	"sync"

	"github.com/tetratelabs/wazero/api"

	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// A mount's instances are replicas of one plugin process, each with its
// own memory: a plugin's in-process locks (KV's per-key locks, transit's
// per-name locks) only exclude requests inside one instance. The lock
// import (abi.ImportLock, ABI minor 1) gives them the mount's locks
// instead, so that read-modify-write cycles on one key are serialised
// across the pool and writes to different keys run in parallel.
//
// Rules, each with its reason:
//
//   - Scope: one table per mount. Keys are the plugin's own strings; a
//     module can only ever wait for, or hold up, its own mount's calls.
//   - Lifetime: a lock belongs to the call that took it. When the call
//     ends, whatever way (answer, error, trap, deadline, exit), the host
//     releases everything it still holds, so a dead or discarded
//     instance never holds a lock.
//   - Waiting honours the call's deadline and the mount's closing: a call
//     that could not get its lock in time is stopped like any call past
//     its deadline (its instance is discarded), never left blocked.
//   - Order: waiters are served first come, first served; a shared
//     request waits behind a queued exclusive one (no writer starvation),
//     except that a call already holding the key shared may take it
//     shared again (it would otherwise wait for itself).
//   - A call that asks for a key it already holds exclusively, or
//     exclusively for a key it holds shared, gets StatusHeld instead of
//     deadlocking itself; releasing a key it does not hold too.
//   - Coherence: the grant hands the instance every invalidation queued
//     for it (InvalidateKeysArgs, taken like a storage result). Writers
//     of a key hold its lock across their storage writes, which queue
//     their invalidations before the write returns, so whoever takes the
//     lock next has learnt of every change made under it before it reads:
//     caches inside instances stay exact under concurrent writes.
//     When more changed than the log keeps or a message holds, the grant
//     says so (InvalidateKeysArgs.all) and the instance drops everything
//     it cached (or ends itself if it cannot).
//   - Bounds: keys up to abi.MaxLockKey bytes, at most abi.MaxHeldLocks
//     keys held per call; every lock call counts as a host call but the
//     release of a held key (a call out of host calls must still be able
//     to give its locks back: its plugin would otherwise be left holding
//     an in-process mutex over a lock the host thinks it still holds).
//
// A Go guest is single-threaded, so a call blocked here blocks every
// goroutine of its instance. sdk/keylock therefore waits here only while
// its instance holds no other lock (then the instance cannot be part of a
// cycle), and otherwise polls with LockTry, sleeping between tries.

// lockTable is one mount's keyed locks.
type lockTable struct {
	mu      sync.Mutex // protects the fields below
	entries map[string]*lockEntry
}

// lockEntry is one key's lock: an exclusive holder or shared holders, and
// the calls waiting for it. An entry exists only while held or awaited.
type lockEntry struct {
	writer  *instance
	readers map[*instance]int // shared holders: times each took it
	queue   []*lockWaiter
}

type lockWaiter struct {
	inst    *instance
	shared  bool
	granted bool          // set under lockTable.mu
	ready   chan struct{} // closed when granted
}

// heldLock is one key an instance's current call holds.
type heldLock struct {
	key    string
	shared bool
}

func (e *lockEntry) free() bool { return e.writer == nil && len(e.readers) == 0 }

func (e *lockEntry) idle() bool { return e.free() && len(e.queue) == 0 }

func (e *lockEntry) grantLocked(inst *instance, shared bool) {
	if shared {
		if e.readers == nil {
			e.readers = map[*instance]int{}
		}
		e.readers[inst]++
		return
	}
	e.writer = inst
}

// wakeLocked grants the lock to the waiters at the head of the queue that
// can have it now.
func (e *lockEntry) wakeLocked() {
	for len(e.queue) > 0 {
		w := e.queue[0]
		if w.shared && e.writer == nil || !w.shared && e.free() {
			e.grantLocked(w.inst, w.shared)
			w.granted = true
			close(w.ready)
			e.queue[0] = nil
			e.queue = e.queue[1:]
			continue
		}
		return
	}
}

// acquire takes key for inst's current call, waiting unless try. It
// returns a status for the guest; a wait cut short by the call's deadline
// or the mount's closing stops the call (panics, as tick does).
func (t *lockTable) acquire(ctx context.Context, m *Mount, inst *instance, key string, shared, try bool) abi.Status {
	t.mu.Lock()
	if t.entries == nil {
		t.entries = map[string]*lockEntry{}
	}
	e := t.entries[key]
	if e == nil {
		e = &lockEntry{}
		t.entries[key] = e
	}
	switch n := e.readers[inst]; {
	case e.writer == inst, n > 0 && !shared:
		t.mu.Unlock()
		return abi.StatusHeld
	case n > 0: // shared again: granted whatever waits
		e.readers[inst]++
		t.mu.Unlock()
		return abi.StatusOK
	}
	if len(inst.held) >= abi.MaxHeldLocks {
		if e.idle() {
			delete(t.entries, key)
		}
		t.mu.Unlock()
		return abi.StatusLimit
	}
	if len(e.queue) == 0 && (shared && e.writer == nil || !shared && e.free()) {
		e.grantLocked(inst, shared)
		t.mu.Unlock()
		inst.held = append(inst.held, heldLock{key: key, shared: shared})
		return abi.StatusOK
	}
	if try {
		t.mu.Unlock()
		return abi.StatusBusy
	}
	w := &lockWaiter{inst: inst, shared: shared, ready: make(chan struct{})}
	e.queue = append(e.queue, w)
	t.mu.Unlock()

	select {
	case <-w.ready:
		inst.held = append(inst.held, heldLock{key: key, shared: shared})
		return abi.StatusOK
	case <-ctx.Done():
	case <-m.stop:
		inst.kill.Store(true)
	}
	t.mu.Lock()
	if w.granted { // granted as we gave up: give it back
		t.releaseLocked(key, e, inst, shared)
	} else {
		for i, q := range e.queue {
			if q == w {
				e.queue = append(e.queue[:i], e.queue[i+1:]...)
				break
			}
		}
		e.wakeLocked() // shared waiters behind it may go now
		if e.idle() {
			delete(t.entries, key)
		}
	}
	t.mu.Unlock()
	inst.failure = errStopped
	panic(errStopped)
}

// releaseLocked gives up one hold of key by inst.
func (t *lockTable) releaseLocked(key string, e *lockEntry, inst *instance, shared bool) {
	if shared {
		if e.readers[inst]--; e.readers[inst] <= 0 {
			delete(e.readers, inst)
		}
	} else {
		e.writer = nil
	}
	e.wakeLocked()
	if e.idle() {
		delete(t.entries, key)
	}
}

// release gives up inst's hold of key (one shared hold, or the exclusive
// one); StatusHeld if it holds none.
func (t *lockTable) release(inst *instance, key string) abi.Status {
	t.mu.Lock()
	e := t.entries[key]
	var shared bool
	switch {
	case e == nil:
		t.mu.Unlock()
		return abi.StatusHeld
	case e.writer == inst:
	case e.readers[inst] > 0:
		shared = true
	default:
		t.mu.Unlock()
		return abi.StatusHeld
	}
	last := !shared || e.readers[inst] == 1
	t.releaseLocked(key, e, inst, shared)
	t.mu.Unlock()
	if last {
		for i, h := range inst.held {
			if h.key == key {
				inst.held = append(inst.held[:i], inst.held[i+1:]...)
				break
			}
		}
	}
	return abi.StatusOK
}

// releaseAll gives up every lock inst's call still holds (at the call's
// end, whatever ended it).
func (t *lockTable) releaseAll(inst *instance) {
	if len(inst.held) == 0 {
		return
	}
	t.mu.Lock()
	for _, h := range inst.held {
		e := t.entries[h.key]
		if e == nil {
			continue
		}
		if h.shared {
			delete(e.readers, inst)
		} else if e.writer == inst {
			e.writer = nil
		}
		e.wakeLocked()
		if e.idle() {
			delete(t.entries, h.key)
		}
	}
	t.mu.Unlock()
	clear(inst.held)
	inst.held = inst.held[:0]
}

// size returns the number of keys held or awaited (for tests).
func (t *lockTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// waiting returns the number of calls waiting for key (for tests).
func (t *lockTable) waiting(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[key]; e != nil {
		return len(e.queue)
	}
	return 0
}

// lock(op, ptr, len) -> i64: take or release the mount's lock of a key.
// A grant returns the length of the InvalidateKeysArgs pending for the
// instance (taken like a storage result), 0 when there is none.
func hostLock(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	op, ptr, n := int32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	if op != abi.LockRelease && !inst.countCall() {
		stack[0] = negStatus(abi.StatusLimit)
		return
	}
	if n > abi.MaxLockKey {
		if op == abi.LockRelease {
			inst.countCall() // never a held key
		}
		stack[0] = negStatus(abi.StatusTooLarge)
		return
	}
	key := string(inst.read(mod, ptr, n))
	m := inst.m
	var st abi.Status
	switch op &^ abi.LockTry {
	case abi.LockExclusive, abi.LockShared:
		st = m.locks.acquire(ctx, m, inst, key, op&^abi.LockTry == abi.LockShared, op&abi.LockTry != 0)
	case abi.LockRelease:
		if op&abi.LockTry != 0 {
			st = abi.StatusBadMessage
			break
		}
		st = m.locks.release(inst, key)
		if st != abi.StatusOK && !inst.countCall() {
			st = abi.StatusLimit // a release of nothing counts: no free spinning
		}
		stack[0] = negStatus(st)
		return
	default:
		st = abi.StatusBadMessage
	}
	if st != abi.StatusOK {
		stack[0] = negStatus(st)
		return
	}
	// Granted: hand over what changed behind the instance so far, or, when
	// that is more than the log kept or a message holds, say so.
	m.mu.Lock()
	keys, all := m.invalidationsLocked(inst, m.invalidationBudget())
	m.mu.Unlock()
	var msg []byte
	switch {
	case all:
		msg = abi.AppendInvalidateAll(inst.pending[:0], m.cfg.ID)
	case len(keys) == 0:
		stack[0] = 0
		return
	default:
		msg = abi.AppendInvalidateKeys(inst.pending[:0], m.cfg.ID, keys)
	}
	inst.setPending(stack, msg)
}
