package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/keylock"
	"github.com/wardproject/ward/sdk/logical"
)

// Factory builds a KV backend for one mount. conf.Config["version"] selects
// the engine: "" or "1" for KV v1, "2" for KV v2; anything else is an error.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newBackend(conf, time.Now)
}

// backend is one mount of the engine. Apart from locks and the v2 metadata
// cache it holds only immutable configuration: all data lives in the
// mount's storage.
type backend struct {
	*framework.Backend

	version int // 1 or 2
	view    logical.Storage
	logger  logical.Logger
	now     func() time.Time // injectable clock; tests make it exact

	// locks serialise read-modify-write cycles on one key: in this
	// process, and across a WASM mount's instances (sdk/keylock).
	locks keylock.Set
	cache metaCache // v2 only; see cache.go
}

var _ logical.Backend = (*backend)(nil)

// newBackend is Factory with an injectable clock.
func newBackend(conf *logical.BackendConfig, now func() time.Time) (*backend, error) {
	if conf == nil {
		return nil, errors.New("kv: missing backend configuration")
	}
	version, err := parseMountVersion(conf.Config["version"])
	if err != nil {
		return nil, err
	}
	b := &backend{version: version, view: conf.StorageView, logger: conf.Logger, now: now}
	fb := &framework.Backend{BackendType: logical.TypeSecret}
	if version == 1 {
		fb.Help = v1Help
		fb.Paths = b.v1Paths()
		fb.InvalidateAllFunc = func(context.Context) {} // v1 caches nothing
	} else {
		fb.Help = v2Help
		fb.Paths = b.v2Paths()
		fb.Invalidate = b.invalidate
		fb.InvalidateAllFunc = func(context.Context) { b.cache.clear() }
	}
	b.Backend = fb
	if err := fb.Initialize(context.Background()); err != nil {
		return nil, fmt.Errorf("kv: %w", err)
	}
	return b, nil
}

func parseMountVersion(v string) (int, error) {
	switch strings.TrimSpace(v) {
	case "", "1":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, logical.InvalidRequest("kv: unsupported mount option version %q: want \"1\" or \"2\"", v)
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

// clock returns the current time in UTC.
func (b *backend) clock() time.Time { return b.now().UTC() }

// warn logs a message that must not contain secret material.
func (b *backend) warn(msg string, args ...any) {
	if b.logger != nil {
		b.logger.Warn(msg, args...)
	}
}

// lockStripes is the number of in-process lock stripes (keylock's); the
// metadata cache has one shard per stripe.
const lockStripes = keylock.Stripes

// stripeOf maps a key to its lock stripe, which is also its cache shard.
func stripeOf(key string) int { return keylock.StripeOf(key) }

// invalidate is the v2 framework.Backend.Invalidate: the host calls it
// (through InvalidateKey) after a storage key of this mount changed behind
// the plugin, for example on another replica, once the change is visible
// to Get. It drops what the cache may hold for the key; a key it cannot
// attribute to one cached record clears the whole cache.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configKey:
		b.cache.removeConfig()
	case strings.HasPrefix(key, versionPrefix):
		// Version records are never cached.
	case strings.HasPrefix(key, metaPrefix) && validateKey(key[len(metaPrefix):]) == nil:
		b.cache.remove(key[len(metaPrefix):])
	default:
		b.cache.clear()
	}
}

// Sentinel errors. They carry a code because error identity does not survive
// the plugin boundary; none of them holds request data.
var (
	// errNoStorage is returned by every handler when neither the request
	// nor the mount has a storage view (a host bug).
	errNoStorage = &logical.Error{Code: logical.CodeInternal, Message: "kv: no storage view"}
	// errMissingPath is returned by handlers that need a key when the
	// request names none.
	errMissingPath = &logical.Error{Code: logical.CodeInvalidRequest, Message: "missing path"}
	// errInvalidPath is returned for a path with empty, "." or ".." segments.
	errInvalidPath = &logical.Error{Code: logical.CodeInvalidRequest,
		Message: `invalid path: segments must be non-empty and must not be "." or ".."`}
	// errNoData is returned by v2 data writes and patches without a "data" object.
	errNoData = &logical.Error{Code: logical.CodeInvalidRequest, Message: "no data provided"}
	// errMissingDataFields is returned by v1 writes with an empty body.
	errMissingDataFields = &logical.Error{Code: logical.CodeInvalidRequest, Message: "missing data fields"}
	// errCASMismatch is returned by v2 data writes and patches whose
	// options.cas differs from the current version.
	errCASMismatch = &logical.Error{Code: logical.CodeInvalidRequest,
		Message: "check-and-set parameter did not match the current version"}
	// errCASRequired is returned by v2 data writes and patches without
	// options.cas when the mount or the key requires it.
	errCASRequired = &logical.Error{Code: logical.CodeInvalidRequest,
		Message: "check-and-set parameter required for this call"}
	// errCASParse is returned when options.cas is not an integer.
	errCASParse = &logical.Error{Code: logical.CodeInvalidRequest, Message: "error parsing check-and-set parameter"}
	// errMetadataCASMismatch is returned by metadata writes and patches
	// whose metadata_cas differs from current_metadata_version.
	errMetadataCASMismatch = &logical.Error{Code: logical.CodeInvalidRequest,
		Message: "metadata check-and-set parameter did not match the current metadata version"}
	// errMetadataCASRequired is returned by metadata writes and patches
	// without metadata_cas when the mount or the key requires it.
	errMetadataCASRequired = &logical.Error{Code: logical.CodeInvalidRequest,
		Message: "metadata check-and-set parameter required for this call"}
	// errNoVersions is returned by delete/, undelete/ and destroy/ without versions.
	errNoVersions = &logical.Error{Code: logical.CodeInvalidRequest, Message: "no version number provided"}
	// errInvalidVersion is returned for a version that is not a non-negative integer.
	errInvalidVersion = &logical.Error{Code: logical.CodeInvalidRequest, Message: "invalid version: must be a non-negative integer"}
	// errCorruptRecord is returned when a stored record does not decode. The
	// decoder's message is dropped: it can quote stored (secret) bytes.
	errCorruptRecord = &logical.Error{Code: logical.CodeInternal, Message: "kv: stored record is corrupt"}
)

const (
	v1Help = `The KV secrets engine (version 1) stores arbitrary JSON objects at
arbitrary paths, without versions. Writing a path replaces its object.`

	v2Help = `The KV secrets engine (version 2) stores versioned JSON objects.
Each write creates a new version; old versions can be read, soft-deleted,
undeleted and destroyed. Writes may use check-and-set, and each key carries
metadata (settings and custom_metadata) of its own.`
)
