package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// Mount serves one mount from a pool of instances of a module. Its methods
// have the shape of a go-plugin mount handle (HandleRequest,
// HandleExistenceCheck, SpecialPaths, Schema, InvalidateKey, Close); it is
// safe for concurrent use.
//
// Each instance serves one call at a time. Callers beyond PoolSize wait in
// arrival order. Write requests run one at a time per mount unless
// Limits.ConcurrentWrites is set; whatever one instance writes is
// invalidated in every other instance (delivered before its next call),
// so caches inside instances stay as exact as in one process.
type Mount struct {
	e   *Engine
	mod *Module
	cfg MountConfig
	rc  *runtimeClass
	cm  wazero.CompiledModule
	log *slog.Logger

	http *httpGate

	// slots holds a token per call in flight (capacity PoolSize); blocked
	// senders are served in arrival order.
	slots chan struct{}
	// writes is the mount's write token (capacity 1).
	writes chan struct{}

	wg sync.WaitGroup // background instance creation

	mu     sync.Mutex // protects the fields below
	idle   []*instance
	all    map[*instance]struct{} // live instances, idle or busy or starting
	closed bool
	ready  bool // the first instance was set up: replacements may be warmed
	setup  *abi.SetupResult
	info   *abi.Info
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
	m.slots <- struct{}{}
	inst, err := m.newInstance(ctx)
	if err != nil {
		<-m.slots
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
		slots:  make(chan struct{}, cfg.Limits.PoolSize),
		writes: make(chan struct{}, 1),
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
	m.slots <- struct{}{}
	defer func() { <-m.slots }()
	inst, err := m.instantiate(ctx)
	if err != nil {
		return Info{}, stripHealthy(err)
	}
	defer m.retire(inst)
	i, err := m.infoOf(ctx, inst)
	if err != nil {
		return Info{}, stripHealthy(err)
	}
	return Info{Name: i.Name, Version: i.Version, SDKVersion: i.SDKVersion, Type: i.Type, Capabilities: i.Capabilities}, nil
}

// Info is what the module says about itself.
type Info struct {
	Name, Version, SDKVersion string
	Type                      logical.BackendType
	Capabilities              []string
}

// Info returns the module's self-description (read at mount).
func (m *Mount) Info() Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.info
	return Info{Name: i.Name, Version: i.Version, SDKVersion: i.SDKVersion, Type: i.Type, Capabilities: i.Capabilities}
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

// register adds a starting instance to the mount.
func (m *Mount) register(inst *instance) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
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

// replenish starts creating an instance in the background when none is
// idle (after one was discarded), so the next request does not pay for
// instantiation. It gives up quietly if every slot is taken: those
// callers will find or create instances themselves.
func (m *Mount) replenish() {
	m.mu.Lock()
	need := m.ready && !m.closed && len(m.idle) == 0
	m.mu.Unlock()
	if !need {
		return
	}
	select {
	case m.slots <- struct{}{}:
	default:
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		inst, err := m.newInstance(context.Background())
		if err != nil {
			<-m.slots
			m.log.Warn("wasm: could not create a replacement instance", "error", err)
			return
		}
		m.release(inst, nil)
	}()
}

// wrote queues an invalidation of key for every instance but the writer.
func (m *Mount) wrote(writer *instance, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for inst := range m.all {
		if inst != writer {
			inst.queueInvalidation(key)
		}
	}
}

// maxQueuedInvalidations bounds an idle instance's queue; past it the
// instance is replaced instead (a fresh one has nothing cached).
const maxQueuedInvalidations = 1024

func (inst *instance) queueInvalidation(key string) {
	if inst.invalAll {
		return
	}
	if len(inst.inval) >= maxQueuedInvalidations {
		inst.inval, inst.invalAll = nil, true
		return
	}
	inst.inval = append(inst.inval, key)
}

// InvalidateKey tells the mount's instances that a storage key changed
// behind them (another replica, a restore). Each instance learns it
// before its next call.
func (m *Mount) InvalidateKey(_ context.Context, key string) {
	m.wrote(nil, key)
}

// acquire takes a slot (waiting in arrival order) and an instance, with
// every invalidation queued for it delivered.
func (m *Mount) acquire(ctx context.Context) (*instance, error) {
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, m.waitErr(ctx)
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			<-m.slots
			return nil, ErrClosed
		}
		var inst *instance
		if n := len(m.idle); n > 0 {
			inst, m.idle = m.idle[n-1], m.idle[:n-1]
		}
		m.mu.Unlock()
		if inst == nil {
			var err error
			if inst, err = m.newInstance(ctx); err != nil {
				<-m.slots
				err = stripHealthy(err)
				var ke *kindError
				if !errors.As(err, &ke) && !errors.Is(err, ErrClosed) {
					// The plugin refused to set up a new instance: to the
					// client the mount is unavailable, not its request bad.
					err = &kindError{sentinel: ErrModuleFailed, code: logical.CodeUnavailable,
						msg: fmt.Sprintf("%v: a new instance failed to set up: %v", ErrModuleFailed, err)}
				}
				return nil, err
			}
		}
		// Deliver what other instances (or the kernel) changed since this
		// one last ran, including during its setup.
		m.mu.Lock()
		keys, all := inst.inval, inst.invalAll
		inst.inval, inst.invalAll = nil, false
		m.mu.Unlock()
		if all {
			m.retire(inst) // a fresh instance has nothing to invalidate
			continue
		}
		if len(keys) > 0 {
			ictx := context.WithValue(ctx, instanceKey{}, inst)
			if _, err := inst.run(ictx, abi.OpInvalidate, abi.AppendInvalidateKeys(nil, m.cfg.ID, keys), false); err != nil {
				m.retire(inst)
				if ctx.Err() != nil {
					<-m.slots
					return nil, stripHealthy(err)
				}
				continue
			}
		}
		return inst, nil
	}
}

func (m *Mount) waitErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &kindError{sentinel: ErrDeadline, code: logical.CodeUnavailable, cause: context.DeadlineExceeded,
			msg: fmt.Sprintf("%v while waiting for a free instance (%d busy)", ErrDeadline, cap(m.slots))}
	}
	return ctx.Err()
}

// release returns an instance after a call: to the idle list if it is
// healthy and not too big, closed (and replaced) otherwise.
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
			m.idle = append(m.idle, inst)
			m.mu.Unlock()
			<-m.slots
			return
		}
		m.mu.Unlock()
		m.cleanupInstance(inst)
	}
	m.retire(inst)
	<-m.slots
	m.replenish()
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
	m.mu.Unlock()
	for _, inst := range idle {
		m.cleanupInstance(inst)
		m.retire(inst)
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		// Wait for busy calls: take every slot.
		for range cap(m.slots) {
			m.slots <- struct{}{}
		}
		// Hand the slots back: later callers see the mount closed.
		for range cap(m.slots) {
			<-m.slots
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Stop what is still running: closing a module ends its call.
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
	if err != nil {
		return nil, logical.InvalidRequest("request data cannot be encoded")
	}
	if len(*buf) > m.cfg.Limits.MaxMessageBytes {
		return nil, logical.InvalidRequest("request too large for the plugin")
	}
	if !existence && isWrite(req.Operation) && !m.cfg.Limits.ConcurrentWrites {
		select {
		case m.writes <- struct{}{}:
			defer func() { <-m.writes }()
		case <-ctx.Done():
			return nil, m.waitErr(ctx)
		}
	}
	inst, err := m.acquire(ctx)
	if err != nil {
		return nil, err
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
