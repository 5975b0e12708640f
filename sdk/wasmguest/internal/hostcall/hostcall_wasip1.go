//go:build wasip1

package hostcall

import (
	"unsafe"

	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

//go:wasmimport ward input
func hostInput(ptr unsafe.Pointer)

//go:wasmimport ward output
func hostOutput(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport ward storage
func hostStorage(ptr unsafe.Pointer, n uint32) int64

//go:wasmimport ward http
func hostHTTP(ptr unsafe.Pointer, n uint32) int64

//go:wasmimport ward take
func hostTake(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport ward log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport ward lock
func hostLock(op int32, ptr unsafe.Pointer, n uint32) int64

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// keepMax bounds the scratch buffers kept between calls.
const keepMax = 64 << 10

var (
	inBuf   []byte // the current call's input
	callBuf []byte // an outgoing message to the host
	takeBuf []byte // a result taken from the host
)

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Input copies the current call's input (n bytes) into guest memory. The
// slice is valid until the call returns.
func Input(n int32) []byte {
	inBuf = grow(inBuf, int(n))
	hostInput(ptr(inBuf))
	return inBuf
}

// Output hands the call's result to the host, which copies it at once.
func Output(b []byte) abi.Status { return abi.Status(hostOutput(ptr(b), uint32(len(b)))) }

// Scratch returns the buffer to encode an outgoing message into.
func Scratch() []byte { return callBuf[:0] }

// Release drops scratch buffers that grew large during a call.
func Release() {
	if cap(inBuf) > keepMax {
		inBuf = nil
	}
	if cap(callBuf) > keepMax {
		callBuf = nil
	}
	if cap(takeBuf) > keepMax {
		takeBuf = nil
	}
}

func take(n int64, msg []byte) ([]byte, error) {
	callBuf = msg[:0] // keep the grown buffer for the next call
	if n < 0 {
		return nil, statusErr(abi.Status(-n))
	}
	takeBuf = grow(takeBuf, int(n))
	if st := abi.Status(hostTake(ptr(takeBuf), uint32(n))); st != abi.StatusOK {
		return nil, statusErr(st)
	}
	return takeBuf, nil
}

// Storage sends a StorageCall message (built in Scratch) and returns the
// encoded StorageResult, valid until the next host call.
func Storage(msg []byte) ([]byte, error) {
	return take(hostStorage(ptr(msg), uint32(len(msg))), msg)
}

// HTTP sends an HTTPRequest message and returns the encoded HTTPResponse.
func HTTP(msg []byte) ([]byte, error) {
	return take(hostHTTP(ptr(msg), uint32(len(msg))), msg)
}

// Lock runs a lock operation (abi.LockExclusive, LockShared, LockRelease,
// optionally | LockTry) on key. A grant returns the InvalidateKeysArgs the
// host handed over, nil when none, valid until the next host call.
func Lock(op int32, key string) ([]byte, abi.Status) {
	b := unsafe.Slice(unsafe.StringData(key), len(key))
	n := hostLock(op, ptr(b), uint32(len(b)))
	switch {
	case n < 0:
		return nil, abi.Status(-n)
	case n == 0:
		return nil, abi.StatusOK
	}
	takeBuf = grow(takeBuf, int(n))
	if st := abi.Status(hostTake(ptr(takeBuf), uint32(n))); st != abi.StatusOK {
		return nil, st
	}
	return takeBuf, abi.StatusOK
}

// Log writes one line to the host's log.
func Log(level int32, msg string) {
	b := unsafe.Slice(unsafe.StringData(msg), len(msg))
	hostLog(level, ptr(b), uint32(len(b)))
}

func statusErr(st abi.Status) error {
	switch st {
	case abi.StatusTooLarge:
		return logical.InvalidRequest("message too large for the WASM host")
	case abi.StatusLimit:
		return logical.Errorf(logical.CodeUnavailable, "too many host calls in one request")
	case abi.StatusDenied:
		return logical.ErrPermissionDenied
	}
	return logical.Errorf(logical.CodeInternal, "WASM host call failed with status %d", st)
}
