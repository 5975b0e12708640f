package userpass

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/keylock"
	"github.com/wardproject/ward/sdk/logical"
)

// Factory builds a userpass backend for one mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newBackend(conf, bcrypt.DefaultCost)
}

// backend is one mount of the method. All data lives in the mount's
// storage; the process holds only locks and the dummy hash.
type backend struct {
	*framework.Backend

	view   logical.Storage
	logger logical.Logger

	// cost is the bcrypt cost of new hashes; tests lower it for speed.
	cost int
	// dummyHash is compared against when a login names an unknown user, so
	// that it costs the same bcrypt work as a known one. Built once, at
	// initialisation, so that no login pays for building it.
	dummyHash func() []byte
	// compare checks a password against a hash; tests count its calls.
	compare func(hash, password []byte) error

	// locks serialise read-modify-write cycles on one user (by name), so
	// concurrent updates of different fields of one user (say a password
	// and a policy change) cannot lose one another. In a WASM module they
	// are the mount's host locks, which serialise the cycle across
	// instances too (wasmguest.ServeOpts.ConcurrentWrites). Logins do not
	// lock: they read one whole record, which every write replaces whole.
	locks keylock.Set
}

var _ logical.Backend = (*backend)(nil)

// newBackend is Factory with an explicit bcrypt cost.
func newBackend(conf *logical.BackendConfig, cost int) (*backend, error) {
	if conf == nil {
		return nil, errors.New("userpass: missing backend configuration")
	}
	b := &backend{
		view:    conf.StorageView,
		logger:  conf.Logger,
		cost:    cost,
		compare: bcrypt.CompareHashAndPassword,
	}
	b.dummyHash = sync.OnceValue(func() []byte {
		// A random password nobody knows; the result of the comparison is
		// never used, only its cost.
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), b.cost)
		if err != nil {
			// Unreachable with a valid cost: the password is short.
			b.warn("userpass: cannot build the dummy hash")
			return nil
		}
		return h
	})
	b.Backend = &framework.Backend{
		Help:        backendHelp,
		BackendType: logical.TypeAuth,
		PathsSpecial: &logical.Paths{
			Unauthenticated: []string{"login", "login/*"},
		},
		Paths:     b.paths(),
		AuthRenew: b.renew,
		InitializeFunc: func(context.Context) error {
			b.dummyHash()
			return nil
		},
	}
	if err := b.Backend.Initialize(context.Background()); err != nil {
		return nil, fmt.Errorf("userpass: %w", err)
	}
	return b, nil
}

const backendHelp = `The userpass auth method logs users in with a username and a password.

Users are managed at users/<username>; a login at login/<username> with the
password returns a token carrying the user's token_* settings.`

// errNoStorage is returned by every handler when neither the request nor
// the mount has a storage view: a host bug, hence internal.
var errNoStorage = &logical.Error{Code: logical.CodeInternal, Message: "userpass: no storage view"}

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

// warn logs a message that must not contain secret material.
func (b *backend) warn(msg string, args ...any) {
	if b.logger != nil {
		b.logger.Warn(msg, args...)
	}
}

// userEntry is the record at user/<username>.
type userEntry struct {
	// PasswordHash is the bcrypt hash of the password.
	PasswordHash []byte `json:"password_hash"`

	framework.TokenParams

	// Legacy records which deprecated aliases of token_* fields the user
	// was last written with, so that reads echo them as Vault does.
	Legacy legacyFields `json:"legacy,omitzero"`
}

type legacyFields struct {
	Policies   bool `json:"policies,omitempty"`
	BoundCIDRs bool `json:"bound_cidrs,omitempty"`
	TTL        bool `json:"ttl,omitempty"`
	MaxTTL     bool `json:"max_ttl,omitempty"`
}

const userPrefix = "user/"

// getUser reads a user; (nil, nil) when it does not exist.
func getUser(ctx context.Context, s logical.Storage, name string) (*userEntry, error) {
	e, err := s.Get(ctx, userPrefix+name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, nil
	}
	var u userEntry
	if err := e.DecodeJSON(&u); err != nil {
		// The decoder's message can quote stored bytes (the hash): leave it out.
		return nil, logical.Errorf(logical.CodeInternal, "userpass: corrupt record for user %q", name)
	}
	return &u, nil
}

// putUser writes a whole user record.
func putUser(ctx context.Context, s logical.Storage, name string, u *userEntry) error {
	e, err := logical.StorageEntryJSON(userPrefix+name, u)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

// usernameFrom returns the lowercased username captured from the path.
func usernameFrom(d *framework.FieldData) (string, error) {
	name := strings.ToLower(strings.TrimSpace(d.Get("username").(string)))
	if name == "" || strings.Contains(name, "/") {
		return "", logical.InvalidRequest("missing or invalid username")
	}
	return name, nil
}

// maxPasswordBytes is the most bcrypt reads; it ignores any further bytes.
const maxPasswordBytes = 72

// hashPassword validates and hashes a new password.
func (b *backend) hashPassword(password string) ([]byte, error) {
	if password == "" {
		return nil, logical.InvalidRequest("missing password")
	}
	if len(password) > maxPasswordBytes {
		return nil, logical.InvalidRequest("password is longer than %d bytes, the most bcrypt supports", maxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), b.cost)
	if err != nil {
		return nil, fmt.Errorf("userpass: hashing the password failed")
	}
	return h, nil
}
