package wasm

import (
	"errors"
	"fmt"

	"github.com/wardproject/ward/sdk/logical"
)

// Errors returned at compile (registration) time. Compile wraps them in a
// *logical.Error with CodeInvalidRequest, so they read as a 400.
var (
	// ErrNotWardModule: the binary is not WebAssembly or exports no ABI marker.
	ErrNotWardModule = errors.New("not a Ward WASM module")
	// ErrABIVersion: the module speaks an ABI major this host does not.
	ErrABIVersion = errors.New("unsupported Ward WASM ABI version")
	// ErrForbiddenImport: the module imports a function the sandbox does
	// not provide (a WASI filesystem or socket function, or an unknown one).
	ErrForbiddenImport = errors.New("module imports a function the Ward sandbox does not provide")
)

// Errors returned while serving. Each comes wrapped with details; test
// with errors.Is.
var (
	// ErrModuleFailed: the instance trapped, exited, ran out of memory or
	// broke the ABI. It was discarded; the next request gets a fresh one.
	// The error also carries logical.CodeUnavailable (a 502).
	ErrModuleFailed = errors.New("wasm module failed")
	// ErrDeadline: the call ran past its deadline and was stopped; the
	// instance was discarded. It also matches context.DeadlineExceeded (a 504).
	ErrDeadline = errors.New("wasm call exceeded its deadline")
	// ErrClosed: the mount was closed.
	ErrClosed = errors.New("wasm mount is closed")
)

// compileError is a registration-time refusal: a 400 carrying a sentinel.
func compileError(sentinel error, format string, args ...any) error {
	return &kindError{sentinel: sentinel, code: logical.CodeInvalidRequest,
		msg: fmt.Sprintf(format, args...)}
}

// kindError is an error that matches a sentinel with errors.Is and a
// *logical.Error (its code) with errors.As, so the kernel's status mapping
// works on it without knowing this package.
type kindError struct {
	sentinel error
	code     logical.Code
	msg      string
	cause    error // optional, matched by errors.Is too (context errors)
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	out := []error{e.sentinel, &logical.Error{Code: e.code, Message: e.msg}}
	if e.cause != nil {
		out = append(out, e.cause)
	}
	return out
}

// errInvalidUTF8 answers a request with a string (its path, a header) that
// is not valid UTF-8: it cannot be encoded for a module (nor for a
// go-plugin process: sdk/plugin answers the same).
var errInvalidUTF8 = logical.InvalidRequest("request cannot be passed to the plugin: its path or another string is not valid UTF-8")
