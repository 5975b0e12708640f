package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// Mount serves one mount from a pool of instances of a module. Its methods
// have the shape of a go-plugin mount handle (HandleRequest,
// HandleExistenceCheck, SpecialPaths, Schema, InvalidateKey, Close); it is
// safe for concurrent use.
//
// Each instance serves one call at a time. Callers beyond PoolSize wait
// (pool.go: in arrival order, with a bounded preference for the instance
// that served the same object). Write requests run one at a time per mount
// unless the module declares concurrent writes (or Limits.ConcurrentWrites
// is set); whatever one instance writes is invalidated in every other
// instance (delivered before its next call, and when it takes a keyed
// lock), so caches inside instances stay as exact as in one process.
type Mount struct {
	e   *Engine
	mod *Module
	cfg MountConfig
	rc  *runtimeClass
	cm  wazero.CompiledModule
	log *slog.Logger

	http *httpGate

	// writes is the mount's write token (capacity 1), taken by write
	// requests unless concurrentWrites.
	writes chan struct{}
	// concurrentWrites: write requests run in parallel, because the limits
	// say so or because the module declared (Info) that it serialises its
	// read-modify-write cycles with the mount's keyed locks. Set before
	// Mount returns, read-only after.
	concurrentWrites bool
	// locks are the mount's keyed locks (ImportLock, locks.go).
	locks lockTable
	// stop is closed when Close stops calls still running: lock waits end.
	stop chan struct{}

	wg sync.WaitGroup // background instance creation

	mu   sync.Mutex // protects the fields below
	idle []*instance
	all  map[*instance]struct{} // live instances, idle or busy or starting
	// inval is the invalidation log (see wrote): entries from sequence
	// number invalBase on, holding invalBytes bytes of keys.
	inval      []invalEntry
	invalBase  uint64
	invalBytes int
	lastID     uint64        // the last instance id given (ids start at 1)
	inUse      int           // tokens taken (pool.go): calls and creations in progress
	waiters    []*waiter     // callers waiting for a token, in arrival order
	drained    chan struct{} // closed when the mount is closed and inUse is 0
	closed     bool
	ready      bool // the first instance was set up: replacements may be warmed
	setup      *abi.SetupResult
	info       *abi.Info
}

// Mount sets a module up for one mount: it creates the first instance
// (which runs the plugin's factory and initialisation) and returns the
// handle requests go through. An error from the plugin's setup comes back
// as the plugin returned it.
func (e *Engine) Mount(ctx context.Context, mod *Module, cfg MountConfig) (*Mount, error) {
	m, err := e.newMount(ctx, mod, cfg)
	if err != nil {
		return nil, err
	}
	m.token()
	inst, err := m.newInstance(ctx)
	if err != nil {
		m.mu.Lock()
		m.returnTokenLocked()
		m.mu.Unlock()
		m.Close(ctx)
		return nil, stripHealthy(err)
	}
	info, err := m.infoOf(ctx, inst)
	if err != nil {
		m.release(inst, err)
		m.Close(ctx)
		return nil, stripHealthy(err)
	}
	m.mu.Lock()
	m.info, m.ready = info, true
	m.mu.Unlock()
	m.concurrentWrites = cfg.Limits.ConcurrentWrites || info.ConcurrentWrites
	m.release(inst, nil)
	return m, nil
}

func (e *Engine) newMount(ctx context.Context, mod *Module, cfg MountConfig) (*Mount, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rc, err := e.runtime(ctx, cfg.Limits.MemoryPages)
	if err != nil {
		return nil, err
	}
	cm, err := rc.compile(ctx, mod)
	if err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = e.cfg.Logger
	}
	return &Mount{
		e: e, mod: mod, cfg: cfg, rc: rc, cm: cm,
		log:    lg.With("mount", cfg.Path, "plugin", cfg.PluginName),
		http:   newHTTPGate(cfg.HTTP),
		writes: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		all:    map[*instance]struct{}{},
	}, nil
}

func (m *Mount) infoOf(ctx context.Context, inst *instance) (*abi.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Limits.SetupTimeout)
	defer cancel()
	out, err := inst.run(context.WithValue(ctx, instanceKey{}, inst), abi.OpInfo, nil, true)
	if err != nil {
		return nil, err
	}
	info, err := abi.DecodeInfo(out)
	if err != nil {
		return nil, m.failed(ctx, inst, "info", fmt.Errorf("%w: malformed InfoReply", errABI))
	}
	return info, nil
}

// Describe instantiates the module once, without setting a mount up, and
// returns what it says about itself: for registration, to check the name
// and type the operator gives.
func (e *Engine) Describe(ctx context.Context, mod *Module) (Info, error) {
	m, err := e.newMount(ctx, mod, MountConfig{Storage: logical.NewInmemStorage()})
	if err != nil {
		return Info{}, err
	}
	inst, err := m.instantiate(ctx)
	if err != nil {
		return Info{}, stripHealthy(err)
	}
	defer m.retire(inst)
	i, err := m.infoOf(ctx, inst)
	if err != nil {
		return Info{}, stripHealthy(err)
	}
	return infoOf(i), nil
}

// Info is what the module says about itself.
type Info struct {
	Name, Version, SDKVersion string
	Type                      logical.BackendType
	Capabilities              []string
	// ConcurrentWrites: the module serialises its writes with the mount's
	// keyed locks, so its write requests run in parallel (ABI minor 1).
	ConcurrentWrites bool
}

func infoOf(i *abi.Info) Info {
	return Info{Name: i.Name, Version: i.Version, SDKVersion: i.SDKVersion, Type: i.Type,
		Capabilities: i.Capabilities, ConcurrentWrites: i.ConcurrentWrites}
}

// Info returns the module's self-description (read at mount).
func (m *Mount) Info() Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	return infoOf(m.info)
}

// Type is the backend type the plugin's setup reported.
func (m *Mount) Type() logical.BackendType {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setup.Type
}

// SpecialPaths returns the paths the plugin declared at setup.
func (m *Mount) SpecialPaths() *logical.Paths {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setup.SpecialPaths
}

// Schema returns the schema the plugin declared at setup.
func (m *Mount) Schema() *logical.Schema {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setup.Schema
}

func (m *Mount) setSetup(sr *abi.SetupResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.setup == nil {
		m.setup = sr
	}
}

// register adds a starting instance to the mount, in the lowest slot
// (pool.go) no live instance has.
func (m *Mount) register(inst *instance) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var used uint64
	for o := range m.all {
		if o.slot < 64 {
			used |= 1 << o.slot
		}
	}
	inst.slot = len(m.all) % m.cfg.Limits.PoolSize
	for i := range min(m.cfg.Limits.PoolSize, 64) {
		if used&(1<<i) == 0 {
			inst.slot = i
			break
		}
	}
	inst.invalSeq = m.invalNextLocked() // it caches nothing yet
	m.lastID++
	inst.id = m.lastID
	m.all[inst] = struct{}{}
	return nil
}

// retire closes an instance that must not serve again.
func (m *Mount) retire(inst *instance) {
	m.mu.Lock()
	delete(m.all, inst)
	m.mu.Unlock()
	if inst.mod != nil {
		_ = inst.mod.Close(context.Background())
	}
}

// The invalidation log. Every key an instance writes (and every key the
// kernel invalidates) is appended to the mount's log with its writer; an
// instance is told the keys logged since it was last told, but its own,
// before each call and at each keyed-lock grant. The log grows as needed
// and forgets what every live instance has been told whenever it would
// grow, so it stays short while instances keep up; past invalLogKeys
// entries or invalLogBytes bytes of keys it forgets its oldest entries
// instead. An instance that fell behind the log, or whose pending keys
// would not fit in a message, is told "everything": replaced when idle (a
// fresh instance has nothing cached), or sent InvalidateKeysArgs.all at a
// lock grant during a call (rare: that much written during one call).
const (
	invalLogKeys  = 16384
	invalLogBytes = 1 << 20
)

type invalEntry struct {
	key    string
	writer uint64 // the writer's id (not a pointer: the log must not keep a retired instance's memory alive); 0 for the kernel
	// all: a change that cannot be named by a key a module can decode (a
	// key that is not UTF-8): everything must go.
	all bool
}

// invalNextLocked is the sequence number of the log's next entry.
func (m *Mount) invalNextLocked() uint64 { return m.invalBase + uint64(len(m.inval)) }

// wrote logs a write of key by writer (nil: a change behind the mount).
func (m *Mount) wrote(writer *instance, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := invalEntry{key: key}
	if writer != nil {
		e.writer = writer.id
	}
	if !utf8.ValidString(key) {
		e = invalEntry{all: true}
	}
	if len(m.inval) == cap(m.inval) || len(m.inval) >= invalLogKeys || m.invalBytes+len(e.key) > invalLogBytes {
		m.trimLocked(len(e.key))
	}
	m.inval = append(m.inval, e)
	m.invalBytes += len(e.key)
}

// trimLocked forgets the entries every live instance has been told, then
// the oldest ones until one more entry of n bytes fits the log's bounds.
func (m *Mount) trimLocked(n int) {
	told := m.invalNextLocked()
	for inst := range m.all {
		told = min(told, inst.invalSeq)
	}
	drop, bytes := 0, m.invalBytes
	for drop < len(m.inval) && (m.invalBase+uint64(drop) < told || len(m.inval)-drop >= invalLogKeys || bytes+n > invalLogBytes) {
		bytes -= len(m.inval[drop].key)
		drop++
	}
	clear(m.inval[:drop]) // let the keys go now
	m.inval = m.inval[drop:]
	m.invalBase += uint64(drop)
	m.invalBytes = bytes
}

// invalidationBudget bounds the keys (as sized by keysSize) one
// InvalidateKeysArgs may carry.
func (m *Mount) invalidationBudget() int {
	return m.cfg.Limits.MaxMessageBytes - len(m.cfg.ID) - 16
}

// invalidationsLocked returns the keys inst has not been told of yet
// (each once), or all when it fell behind the log, a change cannot be
// named, or the keys would take more than limit bytes (keysSize); and
// marks them told.
func (m *Mount) invalidationsLocked(inst *instance, limit int) (keys []string, all bool) {
	from, next := inst.invalSeq, m.invalNextLocked()
	inst.invalSeq = next
	if from < m.invalBase {
		return nil, true
	}
	pending := m.inval[from-m.invalBase:]
	size, n := 0, 0
	for _, e := range pending {
		switch {
		case e.all:
			return nil, true
		case e.writer != inst.id:
			size += len(e.key) + 6
			n++
		}
	}
	if size > limit {
		return nil, true
	}
	if n == 0 {
		return nil, false
	}
	keys = make([]string, 0, n)
	var seen map[string]struct{}
	if n > 16 {
		seen = make(map[string]struct{}, n)
	}
	for _, e := range pending {
		if e.writer == inst.id {
			continue
		}
		if seen != nil {
			if _, dup := seen[e.key]; dup {
				continue
			}
			seen[e.key] = struct{}{}
		} else if slices.Contains(keys, e.key) {
			continue
		}
		keys = append(keys, e.key)
	}
	return keys, false
}

// InvalidateKey tells the mount's instances that a storage key changed
// behind them (another replica, a restore). Each instance learns it
// before its next call.
func (m *Mount) InvalidateKey(_ context.Context, key string) {
	m.wrote(nil, key)
}

// cleanupInstance runs the plugin's Cleanup in an instance being closed.
func (m *Mount) cleanupInstance(inst *instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = inst.run(context.WithValue(ctx, instanceKey{}, inst), abi.OpCleanup, abi.AppendMountRef(nil, m.cfg.ID), false)
}

// Close tears the mount down: the plugin's Cleanup runs in every idle
// instance now and in busy ones as they finish; later calls fail with
// ErrClosed. It waits for background work and busy calls up to ctx.
func (m *Mount) Close(ctx context.Context) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	idle := m.idle
	m.idle = nil
	for _, w := range m.waiters {
		w.served, w.err = true, ErrClosed
		close(w.ready)
	}
	m.waiters = nil
	drained := make(chan struct{})
	if m.inUse == 0 {
		close(drained)
	} else {
		m.drained = drained
	}
	m.mu.Unlock()
	for _, inst := range idle {
		m.cleanupInstance(inst)
		m.retire(inst)
	}
	done := make(chan struct{})
	go func() {
		<-drained // busy calls and instance creations returned their tokens
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Stop what is still running: closing a module ends its call.
		close(m.stop) // and lock waits
		m.mu.Lock()
		var busy []*instance
		for inst := range m.all {
			busy = append(busy, inst)
		}
		m.mu.Unlock()
		for _, inst := range busy {
			inst.kill.Store(true) // the call stops at its next tick
			if m.e.cfg.Runaway == RunawayCloseOnDone && inst.mod != nil {
				_ = inst.mod.Close(context.Background()) // stops it at its next back-edge
			}
		}
	}
}

// isWrite says which operations take the mount's write token.
func isWrite(op logical.Operation) bool {
	switch op {
	case logical.ReadOperation, logical.ListOperation, logical.HelpOperation:
		return false
	}
	return true
}

// callContext bounds a request by the mount's call timeout.
func (m *Mount) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := time.Now().Add(m.cfg.Limits.CallTimeout)
	if cur, ok := ctx.Deadline(); ok && cur.Before(d) {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, d)
}

// exchange runs one request (or existence check) on an instance.
func (m *Mount) exchange(ctx context.Context, req *logical.Request, existence bool) (*abi.Reply, error) {
	ctx, cancel := m.callContext(ctx)
	defer cancel()
	deadline, _ := ctx.Deadline()
	buf := getBuf()
	defer putBuf(buf)
	var err error
	*buf, err = abi.AppendRequestArgs((*buf)[:0], &abi.RequestArgs{MountID: m.cfg.ID, Request: req,
		Deadline: deadline.UnixNano(), ExistenceCheck: existence})
	if errors.Is(err, abi.ErrInvalidUTF8) {
		// Checked before any instance is taken: a module cannot decode
		// such a request (protobuf strings are UTF-8).
		return nil, errInvalidUTF8
	}
	if err != nil {
		return nil, logical.InvalidRequest("request data cannot be encoded")
	}
	if len(*buf) > m.cfg.Limits.MaxMessageBytes {
		return nil, logical.InvalidRequest("request too large for the plugin")
	}
	if !existence && isWrite(req.Operation) && !m.concurrentWrites {
		select {
		case m.writes <- struct{}{}:
			defer func() { <-m.writes }()
		case <-ctx.Done():
			return nil, m.waitErr(ctx)
		}
	}
	inst, inval, err := m.acquire(ctx, affinityOf(req.Path), m.cfg.Limits.MaxMessageBytes-len(*buf))
	if err != nil {
		return nil, err
	}
	if len(inval) > 0 {
		*buf = abi.AppendInvalidatedKeys(*buf, inval)
	}
	out, err := inst.run(context.WithValue(ctx, instanceKey{}, inst), abi.OpRequest, *buf, true)
	var rep *abi.Reply
	if err == nil {
		// Decode before the instance goes back: out is its buffer.
		if rep, err = abi.DecodeReply(out); err != nil {
			err = m.failed(ctx, inst, "request", fmt.Errorf("%w: malformed HandleRequestReply", errABI))
		}
	}
	m.release(inst, err)
	if err != nil {
		return nil, stripHealthy(err)
	}
	return rep, nil
}

// HandleRequest serves one request in an instance of the mount.
func (m *Mount) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	rep, err := m.exchange(ctx, req, false)
	if err != nil {
		return nil, err
	}
	if rep.Err != nil {
		return nil, rep.Err
	}
	if rep.NilResponse || rep.Response == nil {
		return nil, nil
	}
	return rep.Response, nil
}

// HandleExistenceCheck implements logical.ExistenceChecker for the mount.
func (m *Mount) HandleExistenceCheck(ctx context.Context, req *logical.Request) (found, exists bool, err error) {
	rep, err := m.exchange(ctx, req, true)
	if err != nil {
		return false, false, err
	}
	if rep.Err != nil {
		return false, false, rep.Err
	}
	return rep.CheckFound, rep.Exists, nil
}

// Stats describes a mount's pool (for metrics and tests).
type Stats struct {
	Instances int // live: idle, busy or starting
	Idle      int
}

// Stats returns the pool's current state.
func (m *Mount) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Instances: len(m.all), Idle: len(m.idle)}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufPool.Put(b)
	}
}
