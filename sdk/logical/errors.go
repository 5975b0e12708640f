package logical

import (
	"errors"
	"fmt"
)

// Code classifies an error so it survives a plugin boundary (error identity
// does not cross RPC) and maps to one HTTP status.
type Code int32

const (
	CodeInternal             Code = 0 // 500
	CodeInvalidRequest       Code = 1 // 400
	CodeNotFound             Code = 2 // 404: no such path or object
	CodePermissionDenied     Code = 3 // 403
	CodeUnsupportedOperation Code = 4 // 405
	CodeUnavailable          Code = 5 // 503 (sealed) or 502 (plugin down), decided by the kernel
)

// Error is an error with a wire code. Message must never hold secret material.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for the common cases; compare with errors.Is.
var (
	ErrPermissionDenied     = &Error{Code: CodePermissionDenied, Message: "permission denied"}
	ErrUnsupportedOperation = &Error{Code: CodeUnsupportedOperation, Message: "unsupported operation"}
	ErrUnsupportedPath      = &Error{Code: CodeNotFound, Message: "unsupported path"}
)

// Is makes errors.Is(err, ErrPermissionDenied) match any *Error with the
// same code and message, including one rebuilt after crossing RPC.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == e.Message
}

// CodeOf returns the code of err: the code of the first *Error in its chain,
// CodeInternal otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// InvalidRequest is shorthand for a 400-class error.
func InvalidRequest(format string, args ...any) error {
	return Errorf(CodeInvalidRequest, format, args...)
}
