// Package abi is Ward's WASM plugin ABI, version 1, as both sides of the
// boundary need it: export and import names, operation codes, status codes,
// limits, and a reflection-free codec for the protocol's protobuf messages.
//
// The messages are those of sdk/proto/ward/plugin/v1 (the go-plugin
// transport uses the same ones); this package reads and writes their wire
// format with protowire only, because protobuf-go's reflection is slow and
// large inside a WASM guest. Tests check that every message it writes is
// read back identically by protobuf-go and the reverse.
//
// It must never import the kernel or protobuf-go's reflection packages:
// guests link it. docs/wasm-abi.md is the normative description.
package abi

// Major and Minor are the ABI version this package speaks. A module declares
// its major by exporting MarkerPrefix+major (a function returning its
// minor); hosts refuse majors they do not know. Minors only add.
const (
	Major = 1
	Minor = 1
)

// Export names.
const (
	// MarkerPrefix + "1" is the ABI v1 marker: func() i32 returning the minor.
	MarkerPrefix = "ward_abi_v"
	Marker       = "ward_abi_v1"
	// Initialize is the reactor's initialiser (Go's -buildmode=c-shared);
	// the host calls it once, before anything else, when it is exported.
	Initialize = "_initialize"
	// Call runs one operation: func(op i32, in_len i32) -> i32 status.
	Call = "ward_call"
)

// ImportModule is the module name of every host function.
const ImportModule = "ward"

// Host function names in ImportModule (signatures in docs/wasm-abi.md).
const (
	ImportInput   = "input"   // (ptr i32)
	ImportOutput  = "output"  // (ptr i32, len i32) -> i32 status
	ImportStorage = "storage" // (ptr i32, len i32) -> i64 result length or negative status
	ImportHTTP    = "http"    // (ptr i32, len i32) -> i64 result length or negative status
	ImportTake    = "take"    // (ptr i32, len i32) -> i32 status
	ImportLog     = "log"     // (level i32, ptr i32, len i32)
	// ImportLock (minor 1) takes or releases the mount's lock of a key:
	// (op i32, ptr i32, len i32) -> i64, the length of the
	// InvalidateKeysArgs to take (0: none) or a negative status.
	ImportLock = "lock"
)

// Lock operations of ImportLock; LockTry may be or-ed into LockExclusive
// and LockShared to fail with StatusBusy instead of waiting.
const (
	LockExclusive int32 = 1
	LockShared    int32 = 2
	LockRelease   int32 = 3
	LockTry       int32 = 0x100
)

// MaxLockKey bounds a lock key; MaxHeldLocks bounds the keys one call
// holds at once.
const (
	MaxLockKey   = 4096
	MaxHeldLocks = 64
)

// Op selects what ward_call does. Each op reads one message and answers
// one message.
type Op int32

const (
	OpInfo       Op = 1 // -> InfoReply
	OpSetup      Op = 2 // SetupRequest -> SetupReply
	OpRequest    Op = 3 // HandleRequestArgs -> HandleRequestReply
	OpInvalidate Op = 4 // InvalidateKeysArgs -> Empty
	OpCleanup    Op = 5 // MountRef -> Empty
)

// Status is what ward_call and the host functions return besides data.
type Status int32

const (
	StatusOK Status = 0
	// StatusUnknownOp: the guest does not implement the op.
	StatusUnknownOp Status = 1
	// StatusBadMessage: a message could not be decoded.
	StatusBadMessage Status = 2
	// StatusNotSetUp: a request arrived before a successful setup.
	StatusNotSetUp Status = 3
	// StatusNoOutput: the guest returned without calling output.
	StatusNoOutput Status = 4
	// StatusTooLarge: a message exceeds the host's limit.
	StatusTooLarge Status = 5
	// StatusLimit: the call made more host calls than allowed.
	StatusLimit Status = 6
	// StatusOutOfBounds: a pointer and length do not fit in linear memory.
	StatusOutOfBounds Status = 7
	// StatusNothingToTake: take without a pending result, or with another length.
	StatusNothingToTake Status = 8
	// StatusDenied: the host function is not granted to this mount.
	StatusDenied Status = 9
	// StatusBusy: a LockTry found the key held by another instance.
	StatusBusy Status = 10
	// StatusHeld: the call already holds the key (taking it again would
	// deadlock), or releases a key it does not hold.
	StatusHeld Status = 11
)

// Log levels of ImportLog.
const (
	LogDebug int32 = 0
	LogInfo  int32 = 1
	LogWarn  int32 = 2
	LogError int32 = 3
)

// DefaultMaxMessage is the default bound on any message crossing the
// boundary in either direction (request, response, storage value, HTTP body).
const DefaultMaxMessage = 4 << 20
