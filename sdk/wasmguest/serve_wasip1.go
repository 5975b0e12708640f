//go:build wasip1

package wasmguest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"
	_ "unsafe" // go:linkname

	"github.com/wardproject/ward/sdk/internal/hostlock"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
	"github.com/wardproject/ward/sdk/wasmguest/internal/hostcall"
)

// The module's state: one instance serves one mount, one call at a time
// (the host guarantees it), so no locks.
var (
	opts        *ServeOpts
	mainStarted bool
	backend     logical.Backend
	storage     = &hostStorage{}
	outBuf      []byte
)

// Serve records the plugin the module serves. It returns at once: the host
// drives the module through its exports.
func Serve(o ServeOpts) {
	if o.Factory == nil {
		panic("wasmguest: ServeOpts.Factory is required")
	}
	opts = &o
}

//go:linkname mainMain main.main
func mainMain()

//go:wasmexport ward_abi_v1
func abiVersion() int32 { return abi.Minor }

//go:wasmexport ward_call
func wardCall(op int32, inLen int32) int32 {
	if opts == nil && !mainStarted {
		mainStarted = true
		mainMain()
	}
	if opts == nil {
		hostcall.Log(abi.LogError, "wasmguest.Serve was not called by main or an init function")
		return int32(abi.StatusNotSetUp)
	}
	defer hostcall.Release()
	heldLocks = 0 // the host released the previous call's
	in := hostcall.Input(inLen)
	var st abi.Status
	switch abi.Op(op) {
	case abi.OpInfo:
		outBuf = abi.AppendInfo(outBuf[:0], &abi.Info{Name: opts.Name, Type: opts.Type, Version: opts.Version,
			SDKVersion: SDKVersion, Capabilities: opts.Capabilities, ConcurrentWrites: opts.ConcurrentWrites})
	case abi.OpSetup:
		st = setup(in)
	case abi.OpRequest:
		st = request(in)
	case abi.OpInvalidate:
		st = invalidate(in)
	case abi.OpCleanup:
		st = cleanup()
	default:
		return int32(abi.StatusUnknownOp)
	}
	if st != abi.StatusOK {
		return int32(st)
	}
	st = hostcall.Output(outBuf)
	if cap(outBuf) > 64<<10 {
		outBuf = nil
	}
	return int32(st)
}

// recoverAs turns a panic in plugin code into an internal error, as
// sdk/plugin does: the value (which may hold secret data) is not returned;
// the stack goes to the host's log.
func recoverAs(err *error, what string) {
	if r := recover(); r != nil {
		hostcall.Log(abi.LogError, "plugin panicked during "+what+"\n"+string(debug.Stack()))
		*err = fmt.Errorf("plugin panicked during %s", what)
	}
}

func setup(in []byte) abi.Status {
	a, err := abi.DecodeSetupArgs(in)
	if err != nil {
		return abi.StatusBadMessage
	}
	res := &abi.SetupResult{}
	func() {
		defer recoverAs(&res.Err, "setup")
		ctx := context.Background()
		b, err := opts.Factory(ctx, &logical.BackendConfig{StorageView: storage, Config: a.Config,
			MountPoint: a.MountPoint, MountType: a.MountType, Logger: logger{}})
		if err == nil {
			err = b.Initialize(ctx)
		}
		if err != nil {
			res.Err = err
			return
		}
		if backend != nil {
			backend.Cleanup(ctx)
		}
		backend = b
		keys, all := undelivered, undeliveredAll
		undelivered, undeliveredAll = nil, false
		if all {
			invalidateAll()
		}
		invalidateKeys(keys)
		res.SpecialPaths = b.SpecialPaths()
		if res.SpecialPaths == nil {
			res.SpecialPaths = &logical.Paths{}
		}
		res.Schema = b.Schema()
		res.Type = b.Type()
	}()
	outBuf = abi.AppendSetupResult(outBuf[:0], res)
	return abi.StatusOK
}

func request(in []byte) abi.Status {
	if backend == nil {
		return abi.StatusNotSetUp
	}
	args, err := abi.DecodeRequestArgs(in)
	var reply abi.Reply
	if err != nil {
		// The host counts the keys it put in the request as delivered:
		// apply them whatever else is wrong with the request, or have the
		// instance discarded (a bad message) rather than serve stale.
		keys, kerr := abi.DecodeInvalidatedKeys(in)
		if kerr != nil {
			return abi.StatusBadMessage
		}
		invalidateKeys(keys)
		reply.Err = err
	} else {
		invalidateKeys(args.InvalidatedKeys)
		reply = serve(args)
	}
	outBuf, err = abi.AppendReply(outBuf[:0], &reply)
	if err != nil {
		outBuf, _ = abi.AppendReply(outBuf[:0], &abi.Reply{Err: fmt.Errorf("encode response: %w", err)})
	}
	return abi.StatusOK
}

func serve(args *abi.RequestArgs) (reply abi.Reply) {
	defer recoverAs(&reply.Err, "request")
	ctx := context.Background()
	if args.Deadline > 0 {
		ctx = deadlineCtx{Context: ctx, deadline: time.Unix(0, args.Deadline)}
	}
	req := args.Request
	if req == nil {
		req = &logical.Request{}
	}
	req.Storage = storage
	if args.ExistenceCheck {
		ec, ok := backend.(logical.ExistenceChecker)
		if !ok {
			return abi.Reply{NilResponse: true}
		}
		found, exists, err := ec.HandleExistenceCheck(ctx, req)
		if err != nil {
			return abi.Reply{Err: err}
		}
		return abi.Reply{NilResponse: true, CheckFound: found, Exists: exists}
	}
	resp, err := backend.HandleRequest(ctx, req)
	if err != nil {
		return abi.Reply{Err: err}
	}
	if resp == nil {
		return abi.Reply{NilResponse: true}
	}
	return abi.Reply{Response: resp}
}

func invalidate(in []byte) (st abi.Status) {
	inv, err := abi.DecodeInvalidation(in)
	if err != nil {
		return abi.StatusBadMessage // the host discards the instance
	}
	applyInvalidation(inv)
	outBuf = outBuf[:0]
	return abi.StatusOK
}

// applyInvalidation passes what changed behind the instance to the
// backend.
func applyInvalidation(inv abi.Invalidation) {
	if inv.All {
		invalidateAll()
	}
	invalidateKeys(inv.Keys)
}

// The host counts invalidations as delivered once it hands them over, so
// an instance that cannot apply one must not serve again: it would serve
// (and write back) what it cached before the change. The functions below
// end the instance (fatal) rather than go on.

// invalidateKeys passes keys changed behind the instance to the backend.
// Before setup has a backend they wait for it.
func invalidateKeys(keys []string) {
	if len(keys) == 0 {
		return
	}
	if backend == nil {
		undelivered = append(undelivered, keys...)
		return
	}
	defer fatalOnPanic("invalidate")
	ctx := context.Background()
	for _, k := range keys {
		backend.InvalidateKey(ctx, k)
	}
}

// invalidateAll has the backend drop everything it cached from storage
// (the host could not list what changed), or ends the instance when the
// backend cannot (logical.AllInvalidator): a fresh instance caches
// nothing.
func invalidateAll() {
	if backend == nil {
		undelivered, undeliveredAll = nil, true
		return
	}
	defer fatalOnPanic("invalidate")
	ia, ok := backend.(logical.AllInvalidator)
	if !ok || !ia.InvalidateAll(context.Background()) {
		fatal("too much changed behind the instance to list and the backend cannot drop its whole cache (logical.AllInvalidator)")
	}
}

// exitIncoherent is the exit code of an instance that ended itself
// because its state could no longer be trusted (fatal).
const exitIncoherent = 70

// fatal ends the instance (proc_exit): the host discards it, releases its
// locks and fails its call. Nothing of the plugin runs after it, so
// nothing can act on state that is no longer exact.
func fatal(reason string) {
	hostcall.Log(abi.LogError, "wasmguest: "+reason+"; ending the instance")
	os.Exit(exitIncoherent)
}

// fatalOnPanic (deferred) turns a panic into fatal: the stack goes to the
// host's log, the value (which may hold secret data) does not.
func fatalOnPanic(what string) {
	if r := recover(); r != nil {
		hostcall.Log(abi.LogError, "plugin panicked during "+what+"\n"+string(debug.Stack()))
		fatal("plugin panicked during " + what)
	}
}

func cleanup() abi.Status {
	if backend != nil {
		defer func() {
			var err error
			recoverAs(&err, "cleanup")
		}()
		b := backend
		backend = nil
		b.Cleanup(context.Background())
	}
	outBuf = outBuf[:0]
	return abi.StatusOK
}

// deadlineCtx carries the request's deadline without a timer: the host
// stops the call at the deadline, so nothing in the guest needs waking.
// Done is nil (nothing ever closes it); Err reports the deadline once past.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c deadlineCtx) Err() error {
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// hostStorage is the mount's storage view seen from the module: every
// call goes to the host, which confines it to the mount.
type hostStorage struct{}

var _ logical.BatchStorage = (*hostStorage)(nil)

func (*hostStorage) do(c *abi.StorageCall) (*abi.StorageResult, error) {
	res, err := hostcall.Storage(abi.AppendStorageCall(hostcall.Scratch(), c))
	if err != nil {
		return nil, err
	}
	r, err := abi.DecodeStorageResult(res)
	if err != nil {
		return nil, errors.New("storage: malformed answer from the host")
	}
	if r.Err != nil {
		return nil, r.Err
	}
	return r, nil
}

func (s *hostStorage) Get(_ context.Context, key string) (*logical.StorageEntry, error) {
	r, err := s.do(&abi.StorageCall{Op: abi.StorageGet, Key: key})
	if err != nil || !r.Found {
		return nil, err
	}
	return &logical.StorageEntry{Key: key, Value: r.Value}, nil
}

func (s *hostStorage) Put(_ context.Context, e *logical.StorageEntry) error {
	_, err := s.do(&abi.StorageCall{Op: abi.StoragePut, Key: e.Key, Value: e.Value})
	return err
}

func (s *hostStorage) Delete(_ context.Context, key string) error {
	_, err := s.do(&abi.StorageCall{Op: abi.StorageDelete, Key: key})
	return err
}

func (s *hostStorage) List(_ context.Context, prefix string) ([]string, error) {
	r, err := s.do(&abi.StorageCall{Op: abi.StorageList, Key: prefix})
	if err != nil {
		return nil, err
	}
	return r.Keys, nil
}

// Batch implements logical.BatchStorage: one host call, one atomic commit.
func (s *hostStorage) Batch(_ context.Context, ops []logical.StorageOp) error {
	_, err := s.do(&abi.StorageCall{Op: abi.StorageBatch, Ops: ops})
	return err
}

// logger sends log lines to the host, which tags them with the mount.
type logger struct{}

func (l logger) log(level int32, msg string, args []any) {
	if len(args) == 0 {
		hostcall.Log(level, msg)
		return
	}
	var sb strings.Builder
	sb.WriteString(msg)
	for i := 0; i < len(args); i += 2 {
		if i+1 < len(args) {
			fmt.Fprintf(&sb, " %v=%v", args[i], args[i+1])
		} else {
			fmt.Fprintf(&sb, " %v", args[i])
		}
	}
	hostcall.Log(level, sb.String())
}

func (l logger) Debug(msg string, args ...any) { l.log(abi.LogDebug, msg, args) }
func (l logger) Info(msg string, args ...any)  { l.log(abi.LogInfo, msg, args) }
func (l logger) Warn(msg string, args ...any)  { l.log(abi.LogWarn, msg, args) }
func (l logger) Error(msg string, args ...any) { l.log(abi.LogError, msg, args) }

func init() { hostlock.Host = hostLocks{} }

// heldLocks counts the host locks the current call holds (reset at each
// call: the host releases a call's locks when it ends).
var heldLocks int

// hostLocks gives sdk/keylock the mount's keyed locks (ImportLock).
type hostLocks struct{}

// hostLockKey names key's lock in the host, within the host's bound
// (abi.MaxLockKey): short keys as themselves, longer ones by their SHA-256
// digest; a one-byte tag keeps the two kinds of names apart.
func hostLockKey(key string) string {
	if len(key) < abi.MaxLockKey {
		return "k" + key
	}
	sum := sha256.Sum256([]byte(key))
	return "h" + string(sum[:])
}

func (hostLocks) Lock(key string, shared bool) {
	key = hostLockKey(key)
	op := abi.LockExclusive
	if shared {
		op = abi.LockShared
	}
	if heldLocks == 0 {
		// Holding nothing, this instance cannot be part of a wait cycle:
		// wait in the host (which stops the call at its deadline).
		inv, st := hostcall.Lock(op, key)
		if st != abi.StatusOK {
			lockFailed(st)
		}
		heldLocks++
		deliverInvalidations(inv)
		return
	}
	// Holding another lock, a blocked host call would also stop this
	// instance's other goroutines, one of which may be what the holder of
	// key waits for: poll instead, letting them run in between.
	for d := 20 * time.Microsecond; ; d = min(2*d, time.Millisecond) {
		inv, st := hostcall.Lock(op|abi.LockTry, key)
		switch st {
		case abi.StatusOK:
			heldLocks++
			deliverInvalidations(inv)
			return
		case abi.StatusBusy:
			time.Sleep(d)
		default:
			lockFailed(st)
		}
	}
}

func (hostLocks) Unlock(key string) {
	key = hostLockKey(key)
	if _, st := hostcall.Lock(abi.LockRelease, key); st != abi.StatusOK {
		lockFailed(st)
	}
	heldLocks--
}

// lockFailed ends the instance after a lock call failed. A panic would
// unwind through plugin code (and may be recovered there) with the lock
// state of the instance and the host out of step, and keylock's
// in-process stripe held or released out of turn: the next request on
// the instance could deadlock or write without the mount's lock.
func lockFailed(st abi.Status) {
	var why string
	switch st {
	case abi.StatusHeld:
		why = "a key locked twice by one request, or unlocked without being locked"
	case abi.StatusLimit:
		why = "too many keys locked at once, or too many host calls"
	default:
		why = fmt.Sprintf("the host refused the lock (status %d)", st)
	}
	fatal("keylock: " + why)
}

// deliverInvalidations tells the backend what other instances changed,
// as the invalidate op does between calls.
// During setup (no backend yet) they wait for the new backend.
func deliverInvalidations(msg []byte) {
	if len(msg) == 0 {
		return
	}
	inv, err := abi.DecodeInvalidation(msg)
	if err != nil {
		fatal("keylock: malformed invalidations from the host")
	}
	applyInvalidation(inv)
}

// undelivered holds invalidations handed over during setup;
// undeliveredAll says everything cached is to be dropped.
var (
	undelivered    []string
	undeliveredAll bool
)
