package kernel

import (
	"context"
	"errors"
	"net/http"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/plugin"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/sdk/logical"
)

// errorStatus maps an error to its HTTP status by type and code, never by
// message text.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, ErrSealed), errors.Is(err, barrier.ErrSealed), errors.Is(err, ErrStandby):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNotInitialized), errors.Is(err, ErrAlreadyInitialized),
		errors.Is(err, seal.ErrBadShares), errors.Is(err, seal.ErrInvalidConfig),
		errors.Is(err, seal.ErrInvalidShare), errors.Is(err, seal.ErrDuplicateShare):
		return http.StatusBadRequest
	case errors.Is(err, plugin.ErrUnavailable):
		return http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var le *logical.Error
	if errors.As(err, &le) {
		switch le.Code {
		case logical.CodeInvalidRequest:
			return http.StatusBadRequest
		case logical.CodeNotFound:
			return http.StatusNotFound
		case logical.CodePermissionDenied:
			return http.StatusForbidden
		case logical.CodeUnsupportedOperation:
			return http.StatusMethodNotAllowed
		case logical.CodeUnavailable:
			// Sealed storage was matched above (503); any other
			// unavailability comes from a plugin: 502, so clients do
			// not read it as "sealed".
			return http.StatusBadGateway
		}
	}
	return http.StatusInternalServerError
}
