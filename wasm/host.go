package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

// errABI marks a guest that broke the ABI (bad pointer, bad message):
// the call is aborted and the instance discarded.
var errABI = errors.New("ABI violation")

// abort stops the call from inside a host function: wazero turns the panic
// into the error Call returns.
func (inst *instance) abort(format string, args ...any) {
	inst.failure = fmt.Errorf("%w: %s", errABI, fmt.Sprintf(format, args...))
	panic(inst.failure)
}

// read returns a view of guest memory (valid until the guest runs again).
func (inst *instance) read(mod api.Module, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		inst.abort("%d bytes at %#x are outside linear memory", n, ptr)
	}
	return b
}

func (inst *instance) write(mod api.Module, ptr uint32, b []byte) {
	if len(b) == 0 {
		return
	}
	if !mod.Memory().Write(ptr, b) {
		inst.abort("%d bytes at %#x are outside linear memory", len(b), ptr)
	}
}

// countCall counts a host call against the per-call limit.
func (inst *instance) countCall() bool {
	inst.hostCalls++
	return inst.hostCalls <= inst.m.cfg.Limits.MaxHostCalls
}

func buildWardModule(rt wazero.Runtime) wazero.HostModuleBuilder {
	b := rt.NewHostModuleBuilder(abi.ImportModule)
	fn := func(name string, f api.GoModuleFunc) {
		sig := wardSignatures[name]
		b.NewFunctionBuilder().WithGoModuleFunction(f, sig[0], sig[1]).Export(name)
	}
	fn(abi.ImportInput, hostInput)
	fn(abi.ImportOutput, hostOutput)
	fn(abi.ImportStorage, hostStorage)
	fn(abi.ImportHTTP, hostHTTP)
	fn(abi.ImportTake, hostTake)
	fn(abi.ImportLog, hostLog)
	fn(abi.ImportLock, hostLock)
	return b
}

// input(ptr): copy the call's input to ptr.
func hostInput(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	inst.write(mod, api.DecodeU32(stack[0]), inst.in)
}

// output(ptr, len) -> status: the call's answer; the host copies it now.
func hostOutput(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if int64(n) > int64(inst.m.cfg.Limits.MaxMessageBytes) {
		stack[0] = uint64(abi.StatusTooLarge)
		return
	}
	inst.out = append(inst.out[:0], inst.read(mod, ptr, n)...)
	inst.outSet = true
	stack[0] = uint64(abi.StatusOK)
}

// take(ptr, len) -> status: copy the pending result of the last storage or
// http call; len must be its length.
func hostTake(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if !inst.hasPend || int(n) != len(inst.pending) {
		stack[0] = uint64(abi.StatusNothingToTake)
		return
	}
	inst.write(mod, ptr, inst.pending)
	inst.pending, inst.hasPend = inst.pending[:0], false
	stack[0] = uint64(abi.StatusOK)
}

// setPending stores a result for take and returns take's length (or a
// negative status) in the i64 result slot.
func (inst *instance) setPending(stack []uint64, res []byte) {
	if len(res) > inst.m.cfg.Limits.MaxMessageBytes {
		stack[0] = negStatus(abi.StatusTooLarge)
		return
	}
	inst.pending, inst.hasPend = res, true
	stack[0] = uint64(int64(len(res)))
}

// negStatus encodes a status as the negative i64 result of storage/http.
func negStatus(st abi.Status) uint64 { return uint64(-int64(st)) }

// log(level, ptr, len)
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	level, ptr, n := int32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	if !inst.countCall() {
		return
	}
	if int(n) > inst.m.cfg.Limits.MaxLogBytes {
		n = uint32(inst.m.cfg.Limits.MaxLogBytes)
	}
	msg := string(inst.read(mod, ptr, n))
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	sl := slog.LevelInfo
	switch level {
	case abi.LogDebug:
		sl = slog.LevelDebug
	case abi.LogWarn:
		sl = slog.LevelWarn
	case abi.LogError:
		sl = slog.LevelError
	}
	inst.logLine(sl, msg)
}

// storage(ptr, len) -> i64: one StorageCall on the mount's view; the
// StorageResult is then taken.
func hostStorage(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if !inst.countCall() {
		stack[0] = negStatus(abi.StatusLimit)
		return
	}
	if int64(n) > int64(inst.m.cfg.Limits.MaxMessageBytes) {
		stack[0] = negStatus(abi.StatusTooLarge)
		return
	}
	call, err := abi.DecodeStorageCall(inst.read(mod, ptr, n))
	if err != nil {
		inst.abort("malformed StorageCall")
	}
	res := inst.m.storage(ctx, inst, call)
	inst.setPending(stack, abi.AppendStorageResult(inst.pending[:0], res))
}

// storage serves one call against the mount's view, after checking keys.
// Values are copied out of guest memory before they reach the view.
func (m *Mount) storage(ctx context.Context, inst *instance, c *abi.StorageCall) *abi.StorageResult {
	st := m.cfg.Storage
	switch c.Op {
	case abi.StorageGet:
		if err := checkKey(c.Key, false); err != nil {
			return &abi.StorageResult{Err: err}
		}
		e, err := st.Get(ctx, c.Key)
		if err != nil {
			return &abi.StorageResult{Err: err}
		}
		if e == nil {
			return &abi.StorageResult{}
		}
		return &abi.StorageResult{Found: true, Value: e.Value}
	case abi.StorageList:
		if err := checkKey(c.Key, true); err != nil {
			return &abi.StorageResult{Err: err}
		}
		keys, err := st.List(ctx, c.Key)
		return &abi.StorageResult{Keys: keys, Err: err}
	case abi.StoragePut:
		if err := checkKey(c.Key, false); err != nil {
			return &abi.StorageResult{Err: err}
		}
		err := st.Put(ctx, &logical.StorageEntry{Key: c.Key, Value: append([]byte(nil), c.Value...)})
		m.wrote(inst, c.Key)
		return &abi.StorageResult{Err: err}
	case abi.StorageDelete:
		if err := checkKey(c.Key, false); err != nil {
			return &abi.StorageResult{Err: err}
		}
		err := st.Delete(ctx, c.Key)
		m.wrote(inst, c.Key)
		return &abi.StorageResult{Err: err}
	case abi.StorageBatch:
		bs, ok := st.(logical.BatchStorage)
		if !ok {
			return &abi.StorageResult{Err: logical.Errorf(logical.CodeUnsupportedOperation, "storage: this host cannot apply batches atomically")}
		}
		ops := make([]logical.StorageOp, len(c.Ops))
		for i, op := range c.Ops {
			if err := checkKey(op.Key, false); err != nil {
				return &abi.StorageResult{Err: err}
			}
			ops[i] = logical.StorageOp{Key: op.Key, Value: append([]byte(nil), op.Value...), Delete: op.Delete}
		}
		err := bs.Batch(ctx, ops)
		for _, op := range ops {
			m.wrote(inst, op.Key)
		}
		return &abi.StorageResult{Err: err}
	}
	return &abi.StorageResult{Err: logical.InvalidRequest("unknown storage operation")}
}

// maxKeyBytes bounds a storage key.
const maxKeyBytes = 4096

// checkKey refuses keys that could name something outside the mount's
// view, whatever the view does with them: absolute keys, "." or ".."
// segments, NUL bytes. The view confines keys too; this is the sandbox's
// own line. prefix allows the empty key (List of the root).
func checkKey(key string, prefix bool) error {
	switch {
	case key == "" && !prefix:
		return logical.InvalidRequest("storage: empty key")
	case len(key) > maxKeyBytes:
		return logical.InvalidRequest("storage: key longer than %d bytes", maxKeyBytes)
	case strings.HasPrefix(key, "/"):
		return errKeyEscape
	case strings.IndexByte(key, 0) >= 0:
		return errKeyEscape
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == ".." || seg == "." {
			return errKeyEscape
		}
	}
	return nil
}

var errKeyEscape = logical.Errorf(logical.CodePermissionDenied, "storage: key refused: keys are relative to the mount and may not hold \".\" or \"..\" segments or NUL bytes")

// http(ptr, len) -> i64: one outbound HTTPRequest; the HTTPResponse is then
// taken. Refused unless the mount grants the host.
func hostHTTP(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if !inst.countCall() {
		stack[0] = negStatus(abi.StatusLimit)
		return
	}
	if int64(n) > int64(inst.m.cfg.Limits.MaxMessageBytes) {
		stack[0] = negStatus(abi.StatusTooLarge)
		return
	}
	req, err := abi.DecodeHTTPRequest(inst.read(mod, ptr, n))
	if err != nil {
		inst.abort("malformed HTTPRequest")
	}
	res := inst.m.http.do(ctx, req, inst.m.cfg.Limits.MaxMessageBytes)
	inst.setPending(stack, abi.AppendHTTPResponse(inst.pending[:0], res))
}

// errStopped marks a call stopped by tick (deadline passed or context done).
var errStopped = errors.New("call stopped")

// tick() -> i32: called by instrumented code when its fuel runs out (see
// instrument.go). It stops the call if its deadline has passed or its
// context is done, and otherwise returns the refill. Being Go code, it is
// also where the goroutine can be preempted.
func hostTick(ctx context.Context, _ api.Module, stack []uint64) {
	inst := instanceOf(ctx)
	if ctx.Err() != nil || time.Now().UnixNano() >= inst.deadline.Load() || inst.kill.Load() {
		inst.failure = errStopped
		panic(errStopped)
	}
	stack[0] = fuelRefill
}

// overrideInertWASI replaces the WASI path functions Go guests link with
// ones that always fail as they must without a preopened directory, so
// their inertness does not depend on the WASI implementation's
// configuration.
func overrideInertWASI(b wazero.HostModuleBuilder) {
	const errnoBadf = 8
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	fail := api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoBadf })
	b.NewFunctionBuilder().WithGoModuleFunction(fail,
		[]api.ValueType{i32, i32, i32, i32, i32, i64, i64, i32, i32}, []api.ValueType{i32}).Export("path_open")
	b.NewFunctionBuilder().WithGoModuleFunction(fail,
		[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).Export("path_filestat_get")
	b.NewFunctionBuilder().WithGoModuleFunction(fail,
		[]api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}).Export("path_readlink")
}
