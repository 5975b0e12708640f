package transit

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

// Factory builds a transit backend for one mount. The engine takes no
// mount options.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newBackend(conf, time.Now)
}

// backend is one mount of the engine. Apart from the key cache and locks
// it holds only immutable configuration: every key lives in storage.
type backend struct {
	*framework.Backend

	view   logical.Storage
	logger logical.Logger
	now    func() time.Time // injectable clock; tests make it exact

	// locks serialise the writers of one key name: in this process, and
	// across a WASM mount's instances (sdk/keylock).
	locks keylock.Set
	cache keyCache // parsed keyrings; see cache.go
}

var _ logical.Backend = (*backend)(nil)

// Storage layout of a mount (see doc.go).
const (
	policyPrefix  = "policy/"
	configKeysKey = "config/keys"
)

// newBackend is Factory with an injectable clock.
func newBackend(conf *logical.BackendConfig, now func() time.Time) (*backend, error) {
	if conf == nil {
		return nil, errors.New("transit: missing backend configuration")
	}
	b := &backend{view: conf.StorageView, logger: conf.Logger, now: now}
	b.Backend = &framework.Backend{
		BackendType:       logical.TypeSecret,
		Help:              backendHelp,
		Paths:             b.paths(),
		Invalidate:        b.invalidate,
		InvalidateAllFunc: func(context.Context) { b.cache.Clear() },
		Clean:             func(context.Context) { b.cache.Clear() },
		PeriodicFunc:      b.periodic,
	}
	if err := b.Backend.Initialize(context.Background()); err != nil {
		return nil, fmt.Errorf("transit: %w", err)
	}
	return b, nil
}

// paths lists every route; the data-plane paths come first because the
// framework tries patterns in order.
func (b *backend) paths() []*framework.Path {
	return []*framework.Path{
		b.pathEncrypt(),
		b.pathDecrypt(),
		b.pathRewrap(),
		b.pathSign(),
		b.pathVerify(),
		b.pathHMAC(),
		b.pathDatakey(),
		b.pathListKeys(),
		b.pathKeys(),
		b.pathKeysConfig(),
		b.pathRotate(),
		b.pathTrim(),
		b.pathExport(),
		b.pathBackup(),
		b.pathRestore(),
		b.pathRandom(),
		b.pathHash(),
		b.pathConfigKeys(),
	}
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

// invalidate is the framework's Invalidate: the host calls it after a
// storage key of this mount changed behind the plugin (another WASM
// instance, another replica) once the change is visible to Get.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configKeysKey:
		// Not cached.
	case strings.HasPrefix(key, policyPrefix) && !strings.Contains(key[len(policyPrefix):], "/"):
		b.cache.Remove(key[len(policyPrefix):])
	default:
		b.cache.Clear()
	}
}

// existingKey returns the named key's keyring, or errKeyNotFound.
func (b *backend) existingKey(ctx context.Context, s logical.Storage, name string) (*keyring, error) {
	kr, err := b.getKey(ctx, s, name)
	if err == nil && kr == nil {
		err = errKeyNotFound
	}
	return kr, err
}

// getKey returns the named key's keyring, or nil when it does not exist.
func (b *backend) getKey(ctx context.Context, s logical.Storage, name string) (*keyring, error) {
	kr, hit, token := b.cache.Lookup(name)
	if hit {
		return kr, nil
	}
	e, err := s.Get(ctx, policyPrefix+name)
	if err != nil {
		return nil, fmt.Errorf("transit: storage get: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	kr, err = parseStored(e.Value)
	if err != nil {
		b.warn("stored key does not parse", "key", name, "reason", err.Error())
		return nil, errCorruptKey
	}
	b.cache.Populate(name, token, kr)
	return kr, nil
}

// parseStored decodes a stored record into a keyring.
func parseStored(val []byte) (*keyring, error) {
	rec, err := decodeRecord(val)
	if err != nil {
		return nil, err
	}
	return newKeyring(rec, nil)
}

// putKeyLocked stores rec as its name's record and publishes its keyring
// (reusing prev's parsed versions). The caller holds the name's lock.
func (b *backend) putKeyLocked(ctx context.Context, s logical.Storage, rec *policyRecord, prev *keyring) (*keyring, error) {
	kr, err := newKeyring(rec, prev)
	if err != nil {
		return nil, internalErr("transit: built an invalid key: %v", err)
	}
	val, err := encodeRecord(rec)
	if err != nil {
		return nil, internalErr("transit: encode key")
	}
	token := b.cache.Token(rec.Name)
	if err := s.Put(ctx, &logical.StorageEntry{Key: policyPrefix + rec.Name, Value: val}); err != nil {
		b.cache.Remove(rec.Name) // the put may have landed
		return nil, fmt.Errorf("transit: storage put: %w", err)
	}
	b.cache.Store(rec.Name, token, kr)
	return kr, nil
}

// periodic is the host's periodic call (about once a minute): rotate
// every key whose auto_rotate_period has passed.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	s, err := b.storage(req)
	if err != nil {
		return err
	}
	names, err := s.List(ctx, policyPrefix)
	if err != nil {
		return fmt.Errorf("transit: storage list: %w", err)
	}
	var errs []error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		kr, err := b.getKey(ctx, s, name)
		if err == nil && kr != nil {
			_, err = b.usableKey(ctx, s, kr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// usableKey returns the named key for an operation that produces new
// output (encrypt, rewrap, datakey, sign, hmac): when the key's
// auto_rotate_period has passed since its newest version was created, it
// rotates the key first. The host's periodic call rotates due keys too
// (periodic); rotating on use as well means no output is ever made with a
// key past its period, whatever the call's timing. The name's lock, which
// in WASM is the mount's, and the re-read under it mean two instances
// never rotate one key twice.
func (b *backend) usableKey(ctx context.Context, s logical.Storage, kr *keyring) (*keyring, error) {
	now := b.clock()
	if !kr.rotationDue(now) {
		return kr, nil
	}
	name := kr.rec.Name
	b.locks.Lock(name)
	defer b.locks.Unlock(name)
	cur, err := b.getKey(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cur == nil { // deleted meanwhile: use the snapshot, as a request ordered before the delete
		return kr, nil
	}
	if !cur.rotationDue(now) {
		return cur, nil
	}
	rec, err := rotated(cur.rec, cur.typ, now)
	if err != nil {
		return nil, internalErr("transit: %v", err)
	}
	nkr, err := b.putKeyLocked(ctx, s, rec, cur)
	if err != nil {
		return nil, err
	}
	b.info("key rotated automatically", "key", name, "version", rec.LatestVersion)
	return nkr, nil
}

// warn and info log messages that must not contain secret material.
func (b *backend) warn(msg string, args ...any) {
	if b.logger != nil {
		b.logger.Warn(msg, args...)
	}
}

func (b *backend) info(msg string, args ...any) {
	if b.logger != nil {
		b.logger.Info(msg, args...)
	}
}

// Sentinel errors. They carry a code because error identity does not
// survive the plugin boundary; none holds request data or key material.
var (
	// errNoStorage is returned by every handler when neither the request
	// nor the mount has a storage view (a host bug).
	errNoStorage = &logical.Error{Code: logical.CodeInternal, Message: "transit: no storage view"}
	// errCorruptKey is returned when a stored key record does not parse.
	// The reason goes to the log (it names fields, never material).
	errCorruptKey = &logical.Error{Code: logical.CodeInternal, Message: "transit: stored key is corrupt"}
	// errKeyNotFound is returned by encrypt, decrypt, rewrap, datakey and
	// hmac for a missing key (Vault's wording and status, 400).
	errKeyNotFound = &logical.Error{Code: logical.CodeInvalidRequest, Message: "encryption key not found"}
)

const backendHelp = `The transit secrets engine handles cryptography on data in transit:
encryption, decryption, signing, verification, HMACs, data keys, random
bytes and hashes, with named keys that never leave the engine unless they
are marked exportable. It follows the HTTP API of Vault's transit engine.`
