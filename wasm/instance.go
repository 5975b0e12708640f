package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// instance is one instantiated module serving one mount. Exactly one
// goroutine uses it at a time (the one that took it from the pool); the
// per-call fields below belong to that goroutine.
type instance struct {
	m    *Mount
	mod  api.Module
	call api.Function
	mem  api.Memory

	stack [2]uint64

	// Per-call state, reset by run.
	in        []byte
	out       []byte
	outSet    bool
	pending   []byte // a result waiting to be taken
	hasPend   bool
	hostCalls int
	logBytes  int
	logCapped bool
	failure   error // why a host function aborted the call

	// deadline (unix ns) of the current call, read by the WASI sleep and tick.
	deadline atomic.Int64
	// kill stops the current call at its next tick (Mount.Close).
	kill atomic.Bool

	stdout, stderr lineLogger

	// invalSeq is the position in the mount's invalidation log (Mount.inval)
	// up to which the instance has been told. Protected by Mount.mu.
	invalSeq uint64

	// held lists the keyed locks the current call holds (locks.go); only
	// the goroutine running the call touches it.
	held []heldLock

	// slot is the instance's place in the pool (pool.go) and id its
	// number in the mount (never reused), fixed at creation.
	slot int
	id   uint64
	// minor is the ABI minor the module declared (its marker's result).
	minor int32
}

type instanceKey struct{}

// instanceOf returns the instance a host function runs for.
func instanceOf(ctx context.Context) *instance {
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	if inst == nil {
		panic(errors.New("wasm: host function called outside a Ward call"))
	}
	return inst
}

// newInstance instantiates the module and sets the mount up in it.
func (m *Mount) newInstance(ctx context.Context) (*instance, error) {
	inst, err := m.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Limits.SetupTimeout)
	defer cancel()
	out, err := inst.run(context.WithValue(ctx, instanceKey{}, inst), abi.OpSetup, abi.AppendSetupArgs(nil, &abi.SetupArgs{
		MountID: m.cfg.ID, MountPoint: m.cfg.Path, MountType: m.cfg.PluginName, Config: m.cfg.Config}), true)
	if err == nil {
		var sr *abi.SetupResult
		if sr, err = abi.DecodeSetupResult(out); err != nil {
			err = m.failed(ctx, inst, "setup", fmt.Errorf("%w: malformed SetupReply", errABI))
		} else if sr.Err != nil {
			err = sr.Err
		} else {
			m.setSetup(sr)
		}
	}
	if err != nil {
		m.retire(inst)
		return nil, err
	}
	return inst, nil
}

// instantiate creates an instance, runs its initialiser and checks its ABI
// minor. The instance is registered with the mount first, so it receives
// every invalidation from then on.
func (m *Mount) instantiate(ctx context.Context) (*instance, error) {
	inst := &instance{m: m}
	inst.stdout = lineLogger{inst: inst, stream: "stdout"}
	inst.stderr = lineLogger{inst: inst, stream: "stderr"}
	if err := m.register(inst); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.retire(inst)
		}
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Limits.SetupTimeout)
	defer cancel()
	inst.deadline.Store(time.Now().Add(m.cfg.Limits.SetupTimeout).UnixNano())
	ctx = context.WithValue(ctx, instanceKey{}, inst)

	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: any number per runtime
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(inst.sleep).
		WithRandSource(rand.Reader).
		WithStdout(&inst.stdout).
		WithStderr(&inst.stderr)
	mod, err := m.rc.rt.InstantiateModule(ctx, m.cm, cfg)
	if err != nil {
		return nil, m.failed(ctx, inst, "instantiate", err)
	}
	inst.mod = mod
	inst.mem = mod.Memory()
	inst.call = mod.ExportedFunction(abi.Call)
	defer m.locks.releaseAll(inst) // in case _initialize or the marker took one
	if init := mod.ExportedFunction(abi.Initialize); init != nil {
		if _, err := init.Call(ctx); err != nil {
			return nil, m.failed(ctx, inst, "initialize", err)
		}
	}
	res, err := mod.ExportedFunction(abi.Marker).Call(ctx)
	if err != nil {
		return nil, m.failed(ctx, inst, "read the ABI version", err)
	}
	if minor := int32(res[0]); minor > abi.Minor || minor < 0 {
		return nil, compileError(ErrABIVersion, "%v: the module needs Ward WASM ABI v%d.%d; this server speaks v%d.%d",
			ErrABIVersion, abi.Major, minor, abi.Major, abi.Minor)
	}
	inst.minor = int32(res[0])
	ok = true
	return inst, nil
}

// sleep is WASI's nanosleep (poll_oneoff on a clock): real, but never past
// the call's deadline, so a sleeping guest is stopped on time.
func (inst *instance) sleep(ns int64) {
	d := time.Duration(ns)
	if left := time.Until(time.Unix(0, inst.deadline.Load())); left < d {
		d = left
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// run performs one ward_call. ctx must carry the instance (instanceKey)
// and the call's deadline. On error the instance must not serve again,
// except for errors that are *logical.Error values the guest reported
// through a status (the instance is then healthy: see healthyErr).
func (inst *instance) run(ctx context.Context, op abi.Op, input []byte, needOutput bool) ([]byte, error) {
	if len(input) > inst.m.cfg.Limits.MaxMessageBytes {
		return nil, healthy(logical.InvalidRequest("request too large for the plugin (%d bytes, limit %d)", len(input), inst.m.cfg.Limits.MaxMessageBytes))
	}
	inst.in, inst.out, inst.outSet = input, inst.out[:0], false
	inst.pending, inst.hasPend = inst.pending[:0], false
	inst.hostCalls, inst.logBytes, inst.logCapped, inst.failure = 0, 0, false, nil
	if d, ok := ctx.Deadline(); ok {
		inst.deadline.Store(d.UnixNano())
	}
	inst.stack[0], inst.stack[1] = uint64(op), uint64(len(input))
	err := inst.call.CallWithStack(ctx, inst.stack[:])
	inst.m.locks.releaseAll(inst) // locks never outlive their call
	inst.in = nil
	inst.stdout.flush()
	inst.stderr.flush()
	if err != nil {
		return nil, inst.m.failed(ctx, inst, opName(op), err)
	}
	switch st := abi.Status(uint32(inst.stack[0])); st {
	case abi.StatusOK:
	case abi.StatusTooLarge:
		return nil, healthy(&kindError{sentinel: ErrModuleFailed, code: logical.CodeUnavailable,
			msg: fmt.Sprintf("%v: the module's answer exceeds the %d-byte message limit", ErrModuleFailed, inst.m.cfg.Limits.MaxMessageBytes)})
	default:
		return nil, inst.m.failed(ctx, inst, opName(op), fmt.Errorf("the module answered with status %d", st))
	}
	if needOutput && !inst.outSet {
		return nil, inst.m.failed(ctx, inst, opName(op), errors.New("the module returned without an answer"))
	}
	return inst.out, nil
}

// healthyError marks an error after which the instance may keep serving.
type healthyError struct{ error }

func (h healthyError) Unwrap() error { return h.error }

func healthy(err error) error { return healthyError{err} }

// isHealthy reports whether the instance survives err.
func isHealthy(err error) bool {
	var h healthyError
	return err == nil || errors.As(err, &h)
}

// stripHealthy returns err without its healthy marker.
func stripHealthy(err error) error {
	if h, ok := err.(healthyError); ok {
		return h.error
	}
	return err
}

func opName(op abi.Op) string {
	switch op {
	case abi.OpInfo:
		return "info"
	case abi.OpSetup:
		return "setup"
	case abi.OpRequest:
		return "request"
	case abi.OpInvalidate:
		return "invalidate"
	case abi.OpCleanup:
		return "cleanup"
	}
	return fmt.Sprintf("op %d", op)
}

// failed classifies the failure of a call; the caller discards the
// instance. The error says what happened without quoting guest data.
func (m *Mount) failed(ctx context.Context, inst *instance, during string, err error) error {
	cause := ctx.Err()
	if cause == nil && inst != nil && inst.failure == errStopped {
		cause = context.DeadlineExceeded // tick saw the deadline before the context's timer fired
		if inst.kill.Load() {
			cause = ErrClosed
		}
	}
	if cause != nil {
		if errors.Is(cause, context.DeadlineExceeded) {
			m.log.Warn("wasm call stopped at its deadline; instance discarded", "during", during)
			return &kindError{sentinel: ErrDeadline, code: logical.CodeUnavailable, cause: context.DeadlineExceeded,
				msg: fmt.Sprintf("%v (%s, %s)", ErrDeadline, during, m.cfg.Limits.CallTimeout)}
		}
		return &kindError{sentinel: ErrModuleFailed, code: logical.CodeUnavailable, cause: cause,
			msg: fmt.Sprintf("%v: %s: the request was canceled", ErrModuleFailed, during)}
	}
	if inst != nil && inst.failure != nil {
		err = inst.failure
	}
	reason := "trapped"
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit):
		reason = fmt.Sprintf("exited with code %d", exit.ExitCode())
	case errors.Is(err, errABI):
		reason = err.Error()
	default:
		reason = "trapped: " + firstLine(err.Error())
	}
	if inst != nil && inst.mem != nil && uint64(inst.mem.Size()) >= uint64(m.cfg.Limits.MemoryPages)*65536*15/16 {
		reason += fmt.Sprintf(" (memory limit of %d MiB reached)", m.cfg.Limits.MemoryPages/16)
	}
	m.log.Error("wasm module failed; instance discarded", "during", during, "reason", reason, "error", err)
	return &kindError{sentinel: ErrModuleFailed, code: logical.CodeUnavailable,
		msg: fmt.Sprintf("%v during %s: %s", ErrModuleFailed, during, reason)}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimPrefix(s, "wasm error: ")
}

// lineLogger sends a module's stdout or stderr to the log, line by line,
// within the call's log budget.
type lineLogger struct {
	inst   *instance
	stream string
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := strings.IndexByte(string(p), '\n')
		if i < 0 {
			if len(l.buf) < 4096 {
				l.buf = append(l.buf, p[:min(len(p), 4096-len(l.buf))]...)
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLogger) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

func (l *lineLogger) emit() {
	l.inst.logLine(slog.LevelWarn, string(l.buf), "stream", l.stream)
	l.buf = l.buf[:0]
}

// logLine logs within the call's budget; past it, one note and silence.
func (inst *instance) logLine(level slog.Level, msg string, args ...any) {
	limit := inst.m.cfg.Limits.MaxLogBytes
	if inst.logBytes+len(msg) > limit {
		if !inst.logCapped {
			inst.logCapped = true
			inst.m.log.Warn("wasm module log output capped for this call", "limit_bytes", limit)
		}
		return
	}
	inst.logBytes += len(msg)
	inst.m.log.Log(context.Background(), level, msg, args...)
}
