package jwt

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Factory builds a JWT auth backend for one mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newBackend(conf, options{})
}

// options are the test hooks of newBackend; zero values mean production
// behaviour.
type options struct {
	now        func() time.Time                         // clock for claim checks and the key cache
	httpClient func(caPEM string) (*http.Client, error) // builds the client for JWKS and discovery fetches
}

// backend is one mount of the method. Configuration and roles live in
// storage; the only process state is the cache of fetched signing keys,
// which Invalidate drops.
type backend struct {
	*framework.Backend

	view       logical.Storage
	logger     logical.Logger
	now        func() time.Time
	httpClient func(caPEM string) (*http.Client, error)

	keys keyCache
}

var _ logical.Backend = (*backend)(nil)

func newBackend(conf *logical.BackendConfig, o options) (*backend, error) {
	if conf == nil {
		return nil, errors.New("jwt: missing backend configuration")
	}
	b := &backend{view: conf.StorageView, logger: conf.Logger, now: o.now, httpClient: o.httpClient}
	if b.logger == nil {
		b.logger = nopLogger{}
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.httpClient == nil {
		b.httpClient = newHTTPClient
	}
	b.Backend = &framework.Backend{
		Help:         backendHelp,
		BackendType:  logical.TypeAuth,
		PathsSpecial: &logical.Paths{Unauthenticated: []string{"login", "login/*"}},
		Paths:        []*framework.Path{b.pathConfig(), b.pathRoleList(), b.pathRole(), b.pathLogin()},
		AuthRenew:    b.renew,
		Invalidate:   b.invalidate,
		Clean:        func(context.Context) { b.keys.clear() },
	}
	if err := b.Backend.Initialize(context.Background()); err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	return b, nil
}

// storage returns the request's storage view, falling back to the mount's.
func (b *backend) storage(req *logical.Request) (logical.Storage, error) {
	if req.Storage != nil {
		return req.Storage, nil
	}
	if b.view != nil {
		return b.view, nil
	}
	return nil, errNoStorage
}

// invalidate drops the key cache when the configuration changed behind
// the plugin (another replica, a restore). Roles are never cached.
func (b *backend) invalidate(_ context.Context, key string) {
	if key == configKey {
		b.keys.clear()
	}
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// Sentinel errors. They carry a code because error identity does not
// survive the plugin boundary; none holds request data.
var (
	// errNoStorage is returned by every handler when neither the request
	// nor the mount has a storage view (a host bug).
	errNoStorage = &logical.Error{Code: logical.CodeInternal, Message: "jwt: no storage view"}
	// errLoginRefused is the one answer to every login refused because of
	// the JWT or the role, so a client learns nothing about which check
	// failed. The reason goes to the debug log.
	errLoginRefused = &logical.Error{Code: logical.CodeInvalidRequest, Message: "invalid JWT or role"}
	// errKeysUnavailable is returned by login when the remote key set has
	// never been fetched successfully and cannot be fetched now.
	errKeysUnavailable = &logical.Error{Code: logical.CodeInternal, Message: "jwt: the signing keys could not be fetched; see the server log"}
	// errCorruptRecord is returned when a stored record does not decode.
	errCorruptRecord = &logical.Error{Code: logical.CodeInternal, Message: "jwt: stored record is corrupt"}
)

const backendHelp = `The JWT auth method logs in clients that present a JSON Web Token signed
by a trusted issuer. Keys come from PEM public keys, a JWKS URL or OIDC
discovery; roles bind the token's audience, subject and claims and set the
policies and TTLs of the Ward token issued.`
