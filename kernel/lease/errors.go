package lease

import "github.com/wardproject/ward/sdk/logical"

// Sentinel errors of the lease manager. They are *logical.Error values so the
// kernel maps them to HTTP statuses by code; compare with errors.Is. No error
// this package returns contains a lease ID, a token hash or secret data.
var (
	// ErrNotFound is returned by Lookup and Renew for a lease that does not
	// exist (or an ID that cannot be one). Revoke treats a missing lease as
	// already revoked and returns nil.
	ErrNotFound error = &logical.Error{Code: logical.CodeInvalidRequest, Message: "lease not found"}

	// ErrNotRenewable is returned by Renew for a lease registered (or last
	// renewed) with Renewable false.
	ErrNotRenewable error = &logical.Error{Code: logical.CodeInvalidRequest, Message: "lease is not renewable"}

	// ErrExpired is returned by Renew for a lease whose expire time has
	// passed (its revocation may not have run yet).
	ErrExpired error = &logical.Error{Code: logical.CodeInvalidRequest, Message: "lease expired"}

	// ErrRevoking is returned by Renew for a lease whose revocation has
	// started and failed (it is retried, or irrevocable).
	ErrRevoking error = &logical.Error{Code: logical.CodeInvalidRequest, Message: "lease is being revoked"}

	// ErrInvalid is returned (wrapped, with the reason) by Register for a
	// registration it cannot store, and by RevokePrefix and List for a
	// malformed prefix.
	ErrInvalid error = &logical.Error{Code: logical.CodeInvalidRequest, Message: "invalid lease request"}

	// ErrRevokeFailed is returned (wrapped with the engine's error, or with
	// a count) by Revoke and RevokePrefix when the secret engine failed to
	// revoke: the lease is kept, marked pending, and retried with backoff
	// by Run until it succeeds or becomes irrevocable.
	ErrRevokeFailed error = &logical.Error{Code: logical.CodeInternal, Message: "lease revocation failed"}
)
