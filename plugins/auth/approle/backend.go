package approle

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Factory builds an AppRole auth backend for one mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newBackend(conf, time.Now)
}

// backend is one mount of the method. All state lives in the mount's
// storage; the process keeps only locks and the decoded salt.
type backend struct {
	*framework.Backend

	view   logical.Storage
	logger logical.Logger
	now    func() time.Time // injectable clock; tests make it exact

	// roleLocks serialise writes of one role (by name) with the secret ID
	// writes that depend on it.
	roleLocks stripes[sync.RWMutex]
	// secretLocks serialise read-modify-write cycles on one secret ID
	// (login use counting, destroy, tidy), by storage key.
	secretLocks stripes[sync.Mutex]
	// roleIDMu serialises changes of the role_id index, so that two roles
	// cannot claim one role_id at the same time.
	roleIDMu sync.Mutex
	// tidyMu lets one tidy run at a time.
	tidyMu sync.Mutex

	saltMu sync.Mutex // protects saltGen and the loading of salt
	// saltGen counts invalidations: a load that raced one is not cached.
	saltGen uint64
	salt    atomic.Pointer[[]byte]
}

var _ logical.Backend = (*backend)(nil)

// newBackend is Factory with an injectable clock.
func newBackend(conf *logical.BackendConfig, now func() time.Time) (*backend, error) {
	if conf == nil {
		return nil, errors.New("approle: missing backend configuration")
	}
	b := &backend{view: conf.StorageView, logger: conf.Logger, now: now}
	b.Backend = &framework.Backend{
		Help:        backendHelp,
		BackendType: logical.TypeAuth,
		PathsSpecial: &logical.Paths{
			Unauthenticated: []string{"login", "login/*"},
		},
		Paths:      b.paths(),
		AuthRenew:  b.renew,
		Invalidate: b.invalidate,
	}
	if err := b.Backend.Initialize(context.Background()); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *backend) paths() []*framework.Path {
	ps := []*framework.Path{b.pathLogin(), b.pathTidy()}
	ps = append(ps, b.rolePaths()...)
	return append(ps, b.secretIDPaths()...)
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

// invalidate drops the cached salt when its record changed behind the
// plugin (another replica created it first, or a restore). Nothing else
// is cached.
func (b *backend) invalidate(_ context.Context, key string) {
	if key != saltKey {
		return
	}
	b.saltMu.Lock()
	defer b.saltMu.Unlock()
	b.saltGen++
	b.salt.Store(nil)
}

// hmacKey returns the mount's HMAC key, creating it on first use.
func (b *backend) hmacKey(ctx context.Context, s logical.Storage) ([]byte, error) {
	if p := b.salt.Load(); p != nil {
		return *p, nil
	}
	b.saltMu.Lock()
	defer b.saltMu.Unlock()
	if p := b.salt.Load(); p != nil {
		return *p, nil
	}
	gen := b.saltGen
	ent, err := s.Get(ctx, saltKey)
	if err != nil {
		return nil, storageErr("reading the salt", err)
	}
	var rec saltRecord
	if ent != nil {
		if err := ent.DecodeJSON(&rec); err != nil || len(rec.Key) < 32 {
			return nil, errCorruptRecord
		}
	} else {
		rec.Key = make([]byte, 32)
		if _, err := rand.Read(rec.Key); err != nil {
			return nil, err
		}
		ent, err := logical.StorageEntryJSON(saltKey, rec)
		if err != nil {
			return nil, err
		}
		if err := s.Put(ctx, ent); err != nil {
			return nil, storageErr("writing the salt", err)
		}
	}
	if gen == b.saltGen {
		b.salt.Store(&rec.Key)
	}
	return rec.Key, nil
}

// saltRecord is the stored HMAC key of the mount.
type saltRecord struct {
	Key []byte `json:"key"`
}

// Domains separate the HMACs of role IDs and secret IDs, so one value
// used as both never yields the same storage key.
const (
	domainRoleID   = "role_id"
	domainSecretID = "secret_id"
)

// mac is hex HMAC-SHA256(key, domain || 0 || v).
func mac(key []byte, domain, v string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// newUUID returns a random (version 4) UUID read from crypto/rand.
func newUUID() (string, error) {
	u, err := uuid.NewRandom()
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// stripes is a fixed set of locks that keys hash onto: two keys may share
// a lock, no key ever has two.
type stripes[L any] struct {
	locks [lockStripes]L
}

const lockStripes = 256

func (s *stripes[L]) forKey(key string) *L {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &s.locks[h%lockStripes]
}

// getJSON reads key into out; found is false for a missing key.
func getJSON(ctx context.Context, s logical.Storage, key, what string, out any) (found bool, err error) {
	ent, err := s.Get(ctx, key)
	if err != nil {
		return false, storageErr("reading "+what, err)
	}
	if ent == nil {
		return false, nil
	}
	if err := ent.DecodeJSON(out); err != nil {
		return false, errCorruptRecord
	}
	return true, nil
}

// putJSON stores v under key.
func putJSON(ctx context.Context, s logical.Storage, key, what string, v any) error {
	ent, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, ent); err != nil {
		return storageErr("writing "+what, err)
	}
	return nil
}

// apply runs ops atomically when the storage supports batches, else one
// by one in order: callers order them so that a crash in between leaves
// nothing a login could use wrongly.
func apply(ctx context.Context, s logical.Storage, what string, ops []logical.StorageOp) error {
	if bs, ok := s.(logical.BatchStorage); ok {
		if err := bs.Batch(ctx, ops); err != nil {
			return storageErr(what, err)
		}
		return nil
	}
	for _, op := range ops {
		var err error
		if op.Delete {
			err = s.Delete(ctx, op.Key)
		} else {
			err = s.Put(ctx, &logical.StorageEntry{Key: op.Key, Value: op.Value})
		}
		if err != nil {
			return storageErr(what, err)
		}
	}
	return nil
}

// storageErr hides the storage error's text, which may quote a key that
// holds a secret ID's HMAC, and keeps its code (unavailable stays 503).
func storageErr(what string, err error) error {
	return logical.Errorf(logical.CodeOf(err), "approle: storage error while %s", what)
}

// Storage layout (see doc.go).
const (
	saltKey         = "salt"
	rolePrefix      = "role/"
	roleIDPrefix    = "role_id/"
	secretIDPrefix  = "secret_id/"
	accessorPrefix  = "accessor/"
	maxCredentialSz = 4096 // bytes, for role IDs, secret IDs and role names
)

// Sentinel errors. None of them holds request data.
var (
	// errNoStorage is returned by every handler when neither the request
	// nor the mount has a storage view (a host bug).
	errNoStorage = &logical.Error{Code: logical.CodeInternal, Message: "approle: no storage view"}
	// errCorruptRecord is returned when a stored record does not decode;
	// the decoder's message is dropped.
	errCorruptRecord = &logical.Error{Code: logical.CodeInternal, Message: "approle: stored record is corrupt"}
	// errInvalidCredentials is every login failure, whatever was wrong.
	errInvalidCredentials = logical.InvalidRequest("invalid role ID or secret ID")
)

const backendHelp = `The AppRole auth method lets machines and applications log in with a
role ID and a secret ID issued for a role. Each role sets the constraints on
its secret IDs (uses, TTL, client CIDR blocks) and the token_* parameters of
the tokens its logins receive.`
