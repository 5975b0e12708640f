package token

import "errors"

// Sentinel errors of the token store. None of them, nor any error this
// package returns, contains a token or an accessor.
var (
	// ErrNotRenewable is returned by Store.Renew for an expiring token
	// created with renewable=false.
	ErrNotRenewable = errors.New("token: lease is not renewable")

	// ErrNotFound is returned by Store.Renew when the token no longer exists
	// or is no longer valid (expired, revoked, or a parent was revoked).
	ErrNotFound = errors.New("token: token not found")

	// ErrTokenExists is returned by Store.Create when the requested ID is
	// already in use.
	ErrTokenExists = errors.New("token: cannot create a token with a duplicate ID")

	// ErrParentInvalid is returned by Store.Create when Entry.Parent does
	// not name a valid token (or it was revoked while the child was being
	// created; the child is then revoked too).
	ErrParentInvalid = errors.New("token: parent token lookup failed: no parent found")

	// ErrRoleNotFound is returned (wrapped, with the role's name) by
	// Store.Renew for a token created through a role that has since been
	// deleted: as in Vault, such a token can no longer be renewed.
	ErrRoleNotFound = errors.New("token: the token's role no longer exists")

	// ErrInvalidEntry is returned (wrapped, with the reason) by Store.Create
	// for an entry it cannot store: unsupported type, negative values.
	ErrInvalidEntry = errors.New("token: invalid token entry")
)
