package logical

import (
	"context"
	"time"
)

// Operation is what a request asks a backend to do. The HTTP layer derives
// it from the method: GET read, POST/PUT create or update, PATCH patch,
// DELETE delete, LIST (or GET ?list=true) list.
type Operation string

const (
	ReadOperation   Operation = "read"
	CreateOperation Operation = "create"
	UpdateOperation Operation = "update"
	PatchOperation  Operation = "patch"
	DeleteOperation Operation = "delete"
	ListOperation   Operation = "list"
	HelpOperation   Operation = "help"
	RenewOperation  Operation = "renew"
	RevokeOperation Operation = "revoke"
	// RollbackOperation is the host's periodic call to every mount (about
	// once a minute; Vault's name), with an empty path. framework.Backend
	// runs its PeriodicFunc on it. Clients cannot send it.
	RollbackOperation Operation = "rollback"
)

// Request is one call into a backend. Path is relative to the mount.
type Request struct {
	ID        string
	Operation Operation
	Path      string
	Data      map[string]any

	// MountPoint is where the backend is mounted, with a trailing slash
	// ("secret/"); MountType and MountAccessor identify the mount.
	MountPoint    string
	MountType     string
	MountAccessor string

	// Headers holds only the request headers the mount lets through.
	Headers map[string][]string

	// RemoteAddr is the client's address as the listener saw it.
	RemoteAddr string

	// Unauthenticated is true when the path was reached without a token
	// (one of the backend's unauthenticated special paths).
	Unauthenticated bool

	// Auth is set on a RenewOperation sent to an auth method: the auth
	// data of the token being renewed, as the method returned it at login
	// (IssueTime filled in by the kernel). Path is then the login path that
	// created the token.
	Auth *Auth

	// Secret is set on a RenewOperation or RevokeOperation the kernel's
	// lease manager sends to a secret engine: the lease's secret as the
	// engine returned it (InternalData included), with LeaseID and
	// IssueTime filled in. Path is then the path that created it.
	Secret *Secret

	// Storage is the mount's private storage view. The host sets it; it is
	// never serialised.
	Storage Storage `json:"-"`
}

// Response is what a backend answers. A nil *Response with a nil error
// means "nothing here": the HTTP layer turns it into 204 for writes and 404
// for reads and lists.
type Response struct {
	Data     map[string]any
	Secret   *Secret
	Auth     *Auth
	Warnings []string

	// StatusCode, when non-zero, overrides the HTTP status while keeping the
	// body (KV v2 answers 404 with metadata for a deleted version, as Vault does).
	StatusCode int
}

// AddWarning appends a warning shown to the client in the envelope.
func (r *Response) AddWarning(w string) { r.Warnings = append(r.Warnings, w) }

// Secret asks the kernel to put a lease on the response's data. The
// kernel revokes the lease when its TTL (or MaxTTL from issue) runs out or
// its creator's token is revoked, by sending the engine a RevokeOperation
// with the Secret; a renewal sends a RenewOperation, which answers the
// Secret to apply (its TTL) or refuses with an error.
type Secret struct {
	TTL       time.Duration
	MaxTTL    time.Duration
	Renewable bool
	// InternalData is kept with the lease, never shown to clients, and
	// given back on renewal and revocation (e.g. the database user name).
	InternalData map[string]any
	// LeaseID and IssueTime are set by the kernel on renew and revoke
	// requests; ignored in responses.
	LeaseID   string
	IssueTime time.Time
}

// Auth is returned by an auth method's login; the kernel mints a token from
// it. The token gets Policies (plus "default" unless NoDefaultPolicy), a
// display name "<mount>-<DisplayName>", and a TTL of TTL (or the mount's
// default) capped by MaxTTL, ExplicitMaxTTL, the mount's and the system's
// maximum. A periodic token (Period > 0) is renewed to Period each time.
//
// On renewal the kernel sends the token's Auth back in Request.Auth; the
// method answers with the Auth to apply (it may change TTL and MaxTTL) or
// refuses with an error, for example when the user was deleted.
type Auth struct {
	DisplayName     string
	Policies        []string
	NoDefaultPolicy bool
	Metadata        map[string]string
	TTL             time.Duration
	MaxTTL          time.Duration
	Period          time.Duration
	ExplicitMaxTTL  time.Duration
	Renewable       bool
	NumUses         int
	// BoundCIDRs limits the client addresses that may use the token.
	BoundCIDRs []string
	// Alias names the identity in the auth method (the user name, the
	// role ID, the JWT's user claim).
	Alias *Alias
	// InternalData is kept with the token, never shown to clients, and
	// given back on renewal.
	InternalData map[string]any
	// IssueTime is when the token was created; set by the kernel on
	// renewal requests, ignored in login responses.
	IssueTime time.Time
}

// Alias is an identity as an auth method knows it.
type Alias struct {
	Name     string
	Metadata map[string]string
}

// ListResponse builds the standard response to a list operation.
func ListResponse(keys []string) *Response {
	if len(keys) == 0 {
		return nil
	}
	return &Response{Data: map[string]any{"keys": keys}}
}

// Backend is implemented by every secret engine and auth method.
type Backend interface {
	// HandleRequest serves one request. Errors should be *Error values (or
	// wrap one) so the kernel can pick the right status code.
	HandleRequest(ctx context.Context, req *Request) (*Response, error)
	// SpecialPaths declares paths with special handling by the kernel.
	SpecialPaths() *Paths
	// Schema describes the backend's paths for help and OpenAPI.
	Schema() *Schema
	// Type says whether this is a secret engine or an auth method.
	Type() BackendType
	// Initialize runs once after the backend is set up on a mount.
	Initialize(ctx context.Context) error
	// InvalidateKey tells the backend a storage key changed behind it.
	InvalidateKey(ctx context.Context, key string)
	// Cleanup runs when the mount is disabled or the plugin stops.
	Cleanup(ctx context.Context)
}

// ExistenceChecker is an optional interface of Backend. Before authorizing
// a write, the kernel asks whether its target exists: policies grant
// "create" and "update" separately. found is false when the path has no
// existence check (the write is then an update).
type ExistenceChecker interface {
	HandleExistenceCheck(ctx context.Context, req *Request) (found, exists bool, err error)
}

// AllInvalidator is an optional interface of Backend: a backend that can
// drop everything it caches from storage at once. A WASM host (ABI v1.1)
// asks for it when more changed behind an instance than it can list; a
// backend without it has its instance replaced instead (a fresh instance
// caches nothing), which fails the request running at the time.
type AllInvalidator interface {
	// InvalidateAll drops everything cached from storage, as if
	// InvalidateKey had been called for every key. It reports false when
	// the backend cannot (then the caller must discard the backend).
	InvalidateAll(ctx context.Context) bool
}

// Factory builds a backend for one mount.
type Factory func(ctx context.Context, conf *BackendConfig) (Backend, error)

// BackendConfig is what a backend learns about its mount at setup.
type BackendConfig struct {
	// StorageView is the mount's private storage, the same as Request.Storage.
	StorageView Storage
	// Config holds the mount options (for example "version" for KV).
	Config     map[string]string
	MountPoint string
	MountType  string
	// Logger writes to the host's log, tagged with the mount.
	Logger Logger
}

// Logger is the minimal logging contract a backend can rely on. Never pass
// secret material to it.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// BackendType distinguishes secret engines from auth methods.
type BackendType string

const (
	TypeSecret BackendType = "secret"
	TypeAuth   BackendType = "auth"
)

// Paths lists paths with special handling. Entries ending in "*" are prefixes.
type Paths struct {
	// Root paths need a sudo-capable token.
	Root []string
	// Unauthenticated paths are reachable without a token (login).
	Unauthenticated []string
}
