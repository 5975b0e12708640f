package barrier

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

const (
	keyringPath = "barrier/keyring"
	dataPrefix  = "data/"

	// KeySize is the length in bytes of the root key and of every term key
	// (AES-256).
	KeySize = 32

	formatVersion = 0x1
	// sealWrappedVersion marks a record whose plaintext is a blob made by
	// the seal wrapper (an HSM): a data record under a seal-wrapped prefix,
	// or the keyring when a wrapper is set. See sealwrap.go.
	sealWrappedVersion = 0x2
	nonceSize          = 12
	tagSize            = 16
	headerSize         = 1 + 4 + nonceSize
	// rootTerm is the term field of the keyring record, which is encrypted
	// with the root key rather than a keyring key.
	rootTerm = 0
)

var (
	// ErrSealed is returned by every data operation, by Rotate and by every
	// View method while the barrier is sealed. It is a *logical.Error with
	// CodeUnavailable, so it keeps its meaning across a plugin boundary.
	ErrSealed error = &logical.Error{Code: logical.CodeUnavailable, Message: "barrier is sealed"}
	// ErrNotInitialized is returned by Unseal when storage holds no keyring.
	ErrNotInitialized = errors.New("barrier: not initialized")
	// ErrAlreadyInitialized is returned by Initialize when storage already
	// holds a keyring.
	ErrAlreadyInitialized = errors.New("barrier: already initialized")
	// ErrBadKey is returned by Unseal when the root key does not open the
	// keyring (or, while unsealed, is not the root key in use).
	ErrBadKey = errors.New("barrier: root key does not open the keyring")
	// ErrInvalidRootKey is returned by Initialize and Unseal for a root key
	// that is not KeySize bytes long.
	ErrInvalidRootKey = errors.New("barrier: root key must be 32 bytes")
	// ErrCorrupt is returned by Get (and Unseal, for the keyring) when a
	// stored record is malformed, names a term the keyring does not hold, or
	// fails authentication, e.g. because it was moved to another key.
	ErrCorrupt = errors.New("barrier: stored record cannot be decrypted")
	// ErrTermsExhausted is returned by Rotate when the term counter would
	// overflow.
	ErrTermsExhausted = errors.New("barrier: no key terms left")
	// ErrReservedKey is returned by Initialize and Reseal when an extra op
	// touches a physical key the barrier owns.
	ErrReservedKey = errors.New("barrier: physical key reserved by the barrier")
	// ErrNoSealWrapper is returned when a record is seal-wrapped but the
	// barrier has no seal wrapper (the seal that wrapped it is not
	// configured). It wraps ErrCorrupt for data records.
	ErrNoSealWrapper = errors.New("barrier: record is seal-wrapped but no seal wrapper is configured")
)

// termKey is one keyring key.
type termKey struct {
	term      uint32
	key       []byte // zeroed by Seal
	installed time.Time
	aead      cipher.AEAD
	// encryptions counts Seal calls made with this key since unseal.
	encryptions atomic.Uint64
}

// Barrier encrypts everything written to physical storage. See the package
// documentation for the key layout and ciphertext format.
type Barrier struct {
	phys storage.Backend
	now  func() time.Time

	// keyringMu serialises the operations that read or write the persisted
	// keyring (Initialize, Unseal, Rotate) so they never interleave. It is
	// held across their storage I/O; mu never is.
	keyringMu sync.Mutex

	// writeMu is held shared by every data write (Put, Delete, Batch and
	// their View forms) across its storage I/O, and exclusively by
	// Reencrypt and Reseal while they read and rewrite records, so that a
	// rewrite never overwrites a newer value.
	writeMu sync.RWMutex

	// reencryptMu serialises Reencrypt runs.
	reencryptMu sync.Mutex

	mu sync.RWMutex // protects the fields below
	// rootKey is the barrier's own copy of the root key; nil while sealed.
	rootKey  []byte
	rootAEAD cipher.AEAD
	terms    map[uint32]*termKey
	// active is the term new writes use; nil while sealed.
	active *termKey
	// wrapper, when set, seal-wraps the keyring and every entry whose
	// logical key starts with one of wrapPrefixes.
	wrapper      SealWrapper
	wrapPrefixes []string
}

// Format prints only the type name, for every verb: a Barrier holds keys,
// and fmt would otherwise print its fields.
func (b *Barrier) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("barrier.Barrier{redacted}")) }

// New returns a sealed Barrier over phys.
func New(phys storage.Backend) *Barrier {
	return &Barrier{phys: phys, now: time.Now}
}

// SetClock sets the time source of key install times (KeyStatus), so
// that they agree with the kernel's injectable clock. Call it before use.
func (b *Barrier) SetClock(now func() time.Time) {
	b.now = now
}

// Initialized reports whether storage holds a keyring.
func (b *Barrier) Initialized(ctx context.Context) (bool, error) {
	raw, err := b.phys.Get(ctx, keyringPath)
	if err != nil {
		return false, fmt.Errorf("barrier: read keyring: %w", err)
	}
	return raw != nil, nil
}

// Initialize creates the keyring with term 1 (a random key) and stores it
// encrypted with rootKey. It does not unseal. The extra ops, if any, are
// written in the same atomic batch as the keyring: the seal uses them to
// store its own records so that initialisation happens entirely or not at
// all. They must not touch the barrier's physical keys.
func (b *Barrier) Initialize(ctx context.Context, rootKey []byte, extra ...storage.Op) error {
	if len(rootKey) != KeySize {
		return ErrInvalidRootKey
	}
	for _, op := range extra {
		if op.Key == keyringPath || strings.HasPrefix(op.Key, "barrier/") || strings.HasPrefix(op.Key, dataPrefix) {
			return ErrReservedKey
		}
	}
	b.keyringMu.Lock()
	defer b.keyringMu.Unlock()
	if ok, err := b.Initialized(ctx); err != nil {
		return err
	} else if ok {
		return ErrAlreadyInitialized
	}

	rootAEAD, err := newAEAD(rootKey)
	if err != nil {
		return err
	}
	first := &termKey{term: 1, key: make([]byte, KeySize), installed: b.now()}
	defer clear(first.key)
	if _, err := rand.Read(first.key); err != nil {
		return fmt.Errorf("barrier: generate key: %w", err)
	}
	record, err := b.wrapKeyring(ctx, b.sealWrapper(), sealKeyring(rootAEAD, first.term, []*termKey{first}))
	if err != nil {
		return err
	}
	ops := append([]storage.Op{{Kind: storage.OpPut, Key: keyringPath, Value: record}}, extra...)
	if err := b.phys.Batch(ctx, ops); err != nil {
		return fmt.Errorf("barrier: write keyring: %w", err)
	}
	return nil
}

// Unseal decrypts the keyring with rootKey and makes the barrier usable. It
// returns ErrBadKey if rootKey does not open the keyring. Unsealing an
// unsealed barrier with the root key in use is a no-op; with any other key it
// returns ErrBadKey. Unseal keeps its own copy of rootKey.
func (b *Barrier) Unseal(ctx context.Context, rootKey []byte) error {
	if len(rootKey) != KeySize {
		return ErrInvalidRootKey
	}
	b.keyringMu.Lock()
	defer b.keyringMu.Unlock()

	b.mu.RLock()
	unsealed := b.active != nil
	same := unsealed && subtle.ConstantTimeCompare(b.rootKey, rootKey) == 1
	b.mu.RUnlock()
	if unsealed {
		if !same {
			return ErrBadKey
		}
		return nil
	}
	return b.loadKeyring(ctx, rootKey)
}

// Reload reads the keyring again with the root key the barrier holds: a
// standby does it before it becomes active, since the active node may have
// rotated the keyring meanwhile. ErrBadKey means the root key itself was
// changed (a rekey): the caller must seal and be unsealed again.
func (b *Barrier) Reload(ctx context.Context) error {
	b.keyringMu.Lock()
	defer b.keyringMu.Unlock()
	b.mu.RLock()
	rootKey := slices.Clone(b.rootKey)
	b.mu.RUnlock()
	if rootKey == nil {
		return ErrSealed
	}
	defer clear(rootKey)
	return b.loadKeyring(ctx, rootKey)
}

// loadKeyring reads and decrypts the keyring with rootKey and installs it
// (and a copy of rootKey), zeroing the keys it replaces. The caller holds
// keyringMu.
func (b *Barrier) loadKeyring(ctx context.Context, rootKey []byte) error {
	raw, err := b.phys.Get(ctx, keyringPath)
	if err != nil {
		return fmt.Errorf("barrier: read keyring: %w", err)
	}
	if raw == nil {
		return ErrNotInitialized
	}
	if raw, err = b.unwrapKeyring(ctx, raw); err != nil {
		return err
	}
	rootAEAD, err := newAEAD(rootKey)
	if err != nil {
		return err
	}
	version, plaintext, err := openRecord(raw, bytesOf(keyringPath), func(term uint32) cipher.AEAD {
		if term != rootTerm {
			return nil
		}
		return rootAEAD
	})
	if errors.Is(err, errAuth) {
		return ErrBadKey
	}
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	if version != formatVersion {
		clear(plaintext)
		return fmt.Errorf("%w: keyring record version %d", ErrCorrupt, version)
	}
	active, terms, err := decodeKeyring(plaintext)
	clear(plaintext)
	if err != nil {
		return err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, tk := range b.terms {
		clear(tk.key)
		tk.key, tk.aead = nil, nil
	}
	clear(b.rootKey)
	b.rootKey = slices.Clone(rootKey)
	b.rootAEAD = rootAEAD
	b.terms = terms
	b.active = terms[active]
	return nil
}

// Seal zeroes every key the barrier holds and drops its AEADs. Afterwards
// every data operation returns ErrSealed until the next Unseal.
func (b *Barrier) Seal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, tk := range b.terms {
		clear(tk.key)
		tk.key, tk.aead = nil, nil
	}
	clear(b.rootKey)
	b.rootKey, b.rootAEAD, b.terms, b.active = nil, nil, nil, nil
}

// Sealed reports whether the barrier is sealed.
func (b *Barrier) Sealed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.active == nil
}

// Rotate adds a new term with a fresh random key, persists the keyring and
// makes the new term active. Entries written under older terms stay
// readable. If the keyring cannot be written, nothing changes. If the barrier
// is sealed while the keyring is being written, Rotate returns ErrSealed; the
// new term may still have been persisted and is then active after the next
// unseal.
func (b *Barrier) Rotate(ctx context.Context) (uint32, error) {
	b.keyringMu.Lock()
	defer b.keyringMu.Unlock()

	next := &termKey{key: make([]byte, KeySize), installed: b.now()}
	if _, err := rand.Read(next.key); err != nil {
		return 0, fmt.Errorf("barrier: generate key: %w", err)
	}
	record, err := b.nextKeyring(next)
	if err != nil {
		clear(next.key)
		return 0, err
	}
	if record, err = b.wrapKeyring(ctx, b.sealWrapper(), record); err != nil {
		clear(next.key)
		return 0, err
	}
	if err := b.phys.Put(ctx, keyringPath, record); err != nil {
		clear(next.key)
		return 0, fmt.Errorf("barrier: write keyring: %w", err)
	}
	if next.aead, err = newAEAD(next.key); err != nil {
		clear(next.key)
		return 0, err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == nil {
		clear(next.key)
		return 0, ErrSealed
	}
	b.terms[next.term] = next
	b.active = next
	return next.term, nil
}

// nextKeyring numbers next and returns the keyring record that adds it.
func (b *Barrier) nextKeyring(next *termKey) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return nil, ErrSealed
	}
	if b.active.term == math.MaxUint32 {
		return nil, ErrTermsExhausted
	}
	next.term = b.active.term + 1 // the active term is always the newest
	keys := make([]*termKey, 0, len(b.terms)+1)
	for _, tk := range b.terms {
		keys = append(keys, tk)
	}
	keys = append(keys, next)
	slices.SortFunc(keys, func(x, y *termKey) int { return cmp.Compare(x.term, y.term) })
	return sealKeyring(b.rootAEAD, next.term, keys), nil
}

// KeyStatus describes the active term: its number, when it was installed, and
// how many encryptions it has performed since this process unsealed. It
// returns zero values while sealed.
func (b *Barrier) KeyStatus() (term uint32, installed time.Time, encryptions uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return 0, time.Time{}, 0
	}
	return b.active.term, b.active.installed, b.active.encryptions.Load()
}

// Get returns the plaintext stored under the logical key, or (nil, nil) if
// there is none.
func (b *Barrier) Get(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("barrier: %w", storage.ErrInvalidKey)
	}
	return b.get(ctx, dataPrefix+key)
}

// Put encrypts value under the active term and stores it under the logical
// key.
func (b *Barrier) Put(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("barrier: %w", storage.ErrInvalidKey)
	}
	return b.put(ctx, dataPrefix+key, value)
}

// Delete removes the logical key; deleting a missing key is not an error.
func (b *Barrier) Delete(ctx context.Context, key string) error {
	if key == "" {
		return fmt.Errorf("barrier: %w", storage.ErrInvalidKey)
	}
	return b.delete(ctx, dataPrefix+key)
}

// List returns the immediate children of the logical prefix, with the
// semantics of storage.Backend.List.
func (b *Barrier) List(ctx context.Context, prefix string) ([]string, error) {
	return b.list(ctx, dataPrefix+prefix)
}

// Batch encrypts the puts and applies all ops atomically. Keys are logical.
func (b *Barrier) Batch(ctx context.Context, ops []storage.Op) error {
	if err := storage.CheckOps(ops); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	for {
		wrapped, wrapper, err := b.sealWrapOps(ctx, ops)
		if err != nil {
			return err
		}
		b.writeMu.RLock()
		phys, err := b.encryptOps(ops, wrapped, wrapper)
		if err == errWrapperChanged {
			b.writeMu.RUnlock() // Reseal changed the wrapper: wrap again
			continue
		}
		if err == nil {
			err = b.phys.Batch(ctx, phys)
		}
		b.writeMu.RUnlock()
		return err
	}
}

// errWrapperChanged: the seal wrapper changed (Reseal) after the values
// were wrapped; they must be wrapped again.
var errWrapperChanged = errors.New("barrier: seal wrapper changed")

// encryptOps encrypts the puts of ops; wrapped, if not nil, holds for each
// op the value seal-wrapped by wrapper to store instead (nil for ops not
// wrapped). It returns errWrapperChanged if an op's wrapping no longer
// matches the barrier's wrapper, in either direction: a value wrapped by
// an old wrapper, or a value left unwrapped that must now be wrapped.
func (b *Barrier) encryptOps(ops []storage.Op, wrapped [][]byte, wrapper SealWrapper) ([]storage.Op, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return nil, ErrSealed
	}
	for i, op := range ops {
		if op.Kind != storage.OpPut {
			continue
		}
		var used SealWrapper
		if wrapped != nil && wrapped[i] != nil {
			used = wrapper
		}
		if b.wrapperForLocked(op.Key) != used {
			return nil, errWrapperChanged
		}
	}
	phys := make([]storage.Op, len(ops))
	for i, op := range ops {
		phys[i] = storage.Op{Kind: op.Kind, Key: dataPrefix + op.Key}
		if op.Kind != storage.OpPut {
			continue
		}
		if wrapped != nil && wrapped[i] != nil {
			phys[i].Value = b.sealWrappedLocked(wrapped[i], op.Key)
		} else {
			phys[i].Value = b.sealLocked(op.Value, bytesOf(op.Key))
		}
	}
	return phys, nil
}

// get, put, delete and list take physical keys under dataPrefix, so that a
// View builds each physical key with a single concatenation.

func (b *Barrier) get(ctx context.Context, pkey string) ([]byte, error) {
	if b.Sealed() {
		return nil, ErrSealed
	}
	raw, err := b.phys.Get(ctx, pkey)
	if err != nil {
		return nil, err
	}
	version, pt, w, err := b.open(raw, pkey)
	if err != nil || pt == nil {
		return nil, err
	}
	if version == sealWrappedVersion {
		// The wrapper (an HSM) is called without holding mu.
		return unwrapValue(ctx, w, pt, pkey[len(dataPrefix):])
	}
	return pt, nil
}

// open decrypts the physical record raw of pkey in place. It also returns
// the seal wrapper, for a seal-wrapped record.
func (b *Barrier) open(raw []byte, pkey string) (byte, []byte, SealWrapper, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return 0, nil, nil, ErrSealed
	}
	if raw == nil {
		return 0, nil, nil, nil
	}
	// raw is ours alone (Backend never shares slices), so decrypt in place.
	version, pt, err := openRecord(raw, bytesOf(pkey[len(dataPrefix):]), b.aeadLocked)
	if err != nil {
		return 0, nil, nil, err
	}
	return version, pt, b.wrapper, nil
}

func (b *Barrier) put(ctx context.Context, pkey string, value []byte) error {
	key := pkey[len(dataPrefix):]
	for {
		// Wrapping calls the HSM, so it happens before any lock is taken;
		// if Reseal changed the wrapper meanwhile, wrap again.
		w := b.wrapperFor(key)
		var wrapped []byte
		if w != nil {
			var err error
			if wrapped, err = w.SealWrap(ctx, value, []byte(key)); err != nil {
				return fmt.Errorf("barrier: seal-wrap: %w", err)
			}
		}
		b.writeMu.RLock()
		b.mu.RLock()
		if b.active == nil {
			b.mu.RUnlock()
			b.writeMu.RUnlock()
			return ErrSealed
		}
		if w != nil || b.wrapper != nil {
			if cur := b.wrapperForLocked(key); cur != w {
				b.mu.RUnlock()
				b.writeMu.RUnlock()
				continue
			}
		}
		var record []byte
		if wrapped != nil {
			record = b.sealWrappedLocked(wrapped, key)
		} else {
			record = b.sealLocked(value, bytesOf(key))
		}
		b.mu.RUnlock()
		err := b.phys.Put(ctx, pkey, record)
		b.writeMu.RUnlock()
		return err
	}
}

func (b *Barrier) delete(ctx context.Context, pkey string) error {
	if b.Sealed() {
		return ErrSealed
	}
	b.writeMu.RLock()
	defer b.writeMu.RUnlock()
	return b.phys.Delete(ctx, pkey)
}

func (b *Barrier) list(ctx context.Context, pprefix string) ([]string, error) {
	if b.Sealed() {
		return nil, ErrSealed
	}
	return b.phys.List(ctx, pprefix)
}

// sealLocked encrypts plaintext under the active term. b.mu must be held
// (shared is enough) and the barrier unsealed.
func (b *Barrier) sealLocked(plaintext, aad []byte) []byte {
	tk := b.active
	tk.encryptions.Add(1)
	return sealRecord(tk.aead, tk.term, plaintext, aad)
}

// aeadLocked returns the AEAD for term, or nil. b.mu must be held.
func (b *Barrier) aeadLocked(term uint32) cipher.AEAD {
	if tk := b.terms[term]; tk != nil {
		return tk.aead
	}
	return nil
}

// errAuth marks a GCM authentication failure inside openRecord.
var errAuth = errors.New("message authentication failed")

// sealRecord returns [version][term][nonce][sealed plaintext] in a single
// allocation.
func sealRecord(aead cipher.AEAD, term uint32, plaintext, aad []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = formatVersion
	binary.BigEndian.PutUint32(out[1:5], term)
	nonce := out[5:headerSize]
	// crypto/rand.Read never returns an error; it crashes the program if the
	// system's random source fails, so a nonce is never left zero.
	_, _ = rand.Read(nonce)
	return aead.Seal(out, nonce, plaintext, aad)
}

// openRecord authenticates and decrypts a record in place, returning its
// version and the plaintext (which shares raw's memory). aeadFor maps a term
// to its AEAD or nil. A failed authentication wraps errAuth as well as
// ErrCorrupt. A seal-wrapped record (sealWrappedVersion) is authenticated
// with sealWrappedAAD(aad), so changing a record's version byte makes it
// fail authentication; its plaintext is the wrapper's blob.
func openRecord(raw, aad []byte, aeadFor func(uint32) cipher.AEAD) (byte, []byte, error) {
	if len(raw) < headerSize+tagSize || (raw[0] != formatVersion && raw[0] != sealWrappedVersion) {
		return 0, nil, ErrCorrupt
	}
	version := raw[0]
	if version == sealWrappedVersion {
		aad = sealWrappedAAD(aad)
	}
	term := binary.BigEndian.Uint32(raw[1:5])
	aead := aeadFor(term)
	if aead == nil {
		return 0, nil, fmt.Errorf("%w: unknown key term %d", ErrCorrupt, term)
	}
	ct := raw[headerSize:]
	pt, err := aead.Open(ct[:0], raw[5:headerSize], ct, aad)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrCorrupt, errAuth)
	}
	return version, pt, nil
}

// newAEAD returns AES-256-GCM keyed with key. The AEAD keeps its own expanded
// key schedule; see the package documentation on zeroing.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, ErrInvalidRootKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	return aead, nil
}

// bytesOf returns the bytes of s without copying them, for use as GCM
// additional data: an AEAD only reads its additional data, so the string is
// never modified. This keeps Get and Put to one allocation for the value.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// DataKey is the physical key of logical entry key.
func DataKey(key string) string { return dataPrefix + key }

// Encrypt returns the physical record Put would store for key, without
// storing it: what an active node hands a joining node to prove it holds
// the keys (kernel/join.go). Keys under seal-wrapped prefixes are refused.
func (b *Barrier) Encrypt(key string, value []byte) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("barrier: %w", storage.ErrInvalidKey)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return nil, ErrSealed
	}
	if b.wrapperForLocked(key) != nil {
		return nil, errors.New("barrier: Encrypt of a seal-wrapped key")
	}
	return b.sealLocked(value, bytesOf(key)), nil
}
