package barrier

import (
	"cmp"
	"context"
	"crypto/cipher"
	"fmt"
	"slices"
	"strings"

	"github.com/wardproject/ward/kernel/storage"
)

// SealWrapper encrypts with a key the server never holds as bytes (an HSM
// key). When the barrier has one, the keyring and every entry under a
// seal-wrapped prefix are encrypted by it before (and in addition to) the
// barrier's own encryption: reading them needs both the root key and the
// HSM. The seal (package seal) implements it; the barrier only calls it.
//
// Implementations must bind the blob to aad, must never put plaintext or
// key material into an error, and must be safe for concurrent use.
type SealWrapper interface {
	SealWrap(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	SealUnwrap(ctx context.Context, blob, aad []byte) ([]byte, error)
}

// sealWrappedSuffix is appended to the additional data of a seal-wrapped
// data record, so that rewriting its version byte breaks authentication.
const sealWrappedSuffix = "\x00seal-wrapped"

func sealWrappedAAD(aad []byte) []byte {
	out := make([]byte, 0, len(aad)+len(sealWrappedSuffix))
	return append(append(out, aad...), sealWrappedSuffix...)
}

// SetSealWrap installs the seal wrapper (nil for none) and the logical key
// prefixes whose entries it wraps. Call it while the barrier is sealed,
// before Initialize or Unseal; to change the wrapper of an unsealed
// barrier, use Reseal, which rewrites what the old wrapper wrapped.
func (b *Barrier) SetSealWrap(w SealWrapper, prefixes ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wrapper = w
	b.wrapPrefixes = append([]string(nil), prefixes...)
}

// SealWrapped reports whether the barrier currently has a seal wrapper.
func (b *Barrier) SealWrapped() bool {
	return b.sealWrapper() != nil
}

func (b *Barrier) sealWrapper() SealWrapper {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wrapper
}

// wrapperFor returns the wrapper if the logical key is seal-wrapped.
func (b *Barrier) wrapperFor(key string) SealWrapper {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wrapperForLocked(key)
}

func (b *Barrier) wrapperForLocked(key string) SealWrapper {
	if b.wrapper == nil || !hasAnyPrefix(key, b.wrapPrefixes) {
		return nil
	}
	return b.wrapper
}

func hasAnyPrefix(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// sealWrapOps seal-wraps the values of the puts in ops that need it, and
// returns the wrapper it used. It returns nil when none needs it.
func (b *Barrier) sealWrapOps(ctx context.Context, ops []storage.Op) ([][]byte, SealWrapper, error) {
	var wrapped [][]byte
	var used SealWrapper
	for i, op := range ops {
		if op.Kind != storage.OpPut {
			continue
		}
		w := b.wrapperFor(op.Key)
		if w == nil {
			continue
		}
		blob, err := w.SealWrap(ctx, op.Value, []byte(op.Key))
		if err != nil {
			return nil, nil, fmt.Errorf("barrier: seal-wrap: %w", err)
		}
		if wrapped == nil {
			wrapped = make([][]byte, len(ops))
		}
		wrapped[i], used = blob, w
	}
	return wrapped, used, nil
}

// sealWrappedLocked encrypts a wrapper's blob for the logical key under the
// active term as a seal-wrapped record. b.mu must be held.
func (b *Barrier) sealWrappedLocked(blob []byte, key string) []byte {
	tk := b.active
	tk.encryptions.Add(1)
	out := sealRecord(tk.aead, tk.term, blob, sealWrappedAAD([]byte(key)))
	out[0] = sealWrappedVersion
	return out
}

// unwrapValue opens the wrapper's blob of a seal-wrapped record.
func unwrapValue(ctx context.Context, w SealWrapper, blob []byte, key string) ([]byte, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, ErrNoSealWrapper)
	}
	pt, err := w.SealUnwrap(ctx, blob, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("barrier: seal-unwrap: %w", err)
	}
	return pt, nil
}

// wrapKeyring turns a keyring record into its physical form: itself
// without a wrapper, else [sealWrappedVersion][wrapper blob of the record].
func (b *Barrier) wrapKeyring(ctx context.Context, w SealWrapper, record []byte) ([]byte, error) {
	if w == nil {
		return record, nil
	}
	blob, err := w.SealWrap(ctx, record, []byte(keyringPath))
	if err != nil {
		return nil, fmt.Errorf("barrier: seal-wrap the keyring: %w", err)
	}
	return append([]byte{sealWrappedVersion}, blob...), nil
}

// unwrapKeyring undoes wrapKeyring with the current wrapper.
func (b *Barrier) unwrapKeyring(ctx context.Context, raw []byte) ([]byte, error) {
	if len(raw) == 0 || raw[0] != sealWrappedVersion {
		return raw, nil
	}
	w := b.sealWrapper()
	if w == nil {
		return nil, fmt.Errorf("read keyring: %w", ErrNoSealWrapper)
	}
	record, err := w.SealUnwrap(ctx, raw[1:], []byte(keyringPath))
	if err != nil {
		return nil, fmt.Errorf("barrier: seal-unwrap the keyring: %w", err)
	}
	return record, nil
}

// Reseal rewrites the keyring for a new root key (nil keeps the current
// one) and a new seal wrapper (nil for none), rewrites every entry under a
// seal-wrapped prefix for the new wrapper, and commits all of it together
// with extra (the seal's own records) in one atomic batch. Nothing changes
// if any step fails. The barrier must be unsealed; writers wait while
// Reseal runs. It is how a rekey changes the root key and how a seal
// migration moves the keyring and the seal-wrapped entries from one seal
// to another without a window where storage is half migrated.
func (b *Barrier) Reseal(ctx context.Context, newRootKey []byte, w SealWrapper, extra ...storage.Op) error {
	if newRootKey != nil && len(newRootKey) != KeySize {
		return ErrInvalidRootKey
	}
	for _, op := range extra {
		if strings.HasPrefix(op.Key, "barrier/") || strings.HasPrefix(op.Key, dataPrefix) {
			return ErrReservedKey
		}
	}
	var newRootAEAD cipher.AEAD
	if newRootKey != nil {
		var err error
		if newRootAEAD, err = newAEAD(newRootKey); err != nil {
			return err
		}
	}
	b.keyringMu.Lock()
	defer b.keyringMu.Unlock()
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	// The keyring is encoded in the same critical section as the sealed
	// check: Seal zeroes the term keys, and a keyring encoded after it
	// would hold empty keys.
	b.mu.RLock()
	if b.active == nil {
		b.mu.RUnlock()
		return ErrSealed
	}
	oldWrapper, prefixes := b.wrapper, b.wrapPrefixes
	keys := make([]*termKey, 0, len(b.terms))
	for _, tk := range b.terms {
		keys = append(keys, tk)
	}
	rootAEAD := b.rootAEAD
	if newRootAEAD != nil {
		rootAEAD = newRootAEAD
	}
	sortTerms(keys)
	record := sealKeyring(rootAEAD, b.active.term, keys)
	b.mu.RUnlock()
	record, err := b.wrapKeyring(ctx, w, record)
	if err != nil {
		return err
	}
	ops := []storage.Op{{Kind: storage.OpPut, Key: keyringPath, Value: record}}

	// Every entry under a seal-wrapped prefix, opened with the old
	// wrapper and sealed again for the new one.
	for _, prefix := range prefixes {
		rewrap := func(pkey string) error {
			raw, err := b.phys.Get(ctx, pkey)
			if err != nil || raw == nil {
				return err
			}
			key := pkey[len(dataPrefix):]
			version, pt, _, err := b.open(raw, pkey)
			if err != nil {
				return fmt.Errorf("reseal %s: %w", prefix, err)
			}
			if version == sealWrappedVersion {
				if pt, err = unwrapValue(ctx, oldWrapper, pt, key); err != nil {
					return err
				}
			}
			defer clear(pt)
			value, wrappedValue := pt, false
			if w != nil {
				// An HSM call: the barrier may be sealed meanwhile.
				if value, err = w.SealWrap(ctx, pt, []byte(key)); err != nil {
					return fmt.Errorf("barrier: seal-wrap: %w", err)
				}
				wrappedValue = true
			}
			rec, err := b.sealUnlessSealed(value, key, wrappedValue)
			if err != nil {
				return err
			}
			ops = append(ops, storage.Op{Kind: storage.OpPut, Key: pkey, Value: rec})
			return nil
		}
		// The prefix may name a single key as well as a folder.
		if err := rewrap(dataPrefix + prefix); err != nil {
			return err
		}
		if err := b.walk(ctx, dataPrefix+prefix, rewrap); err != nil {
			return err
		}
	}
	ops = append(ops, extra...)
	if err := b.phys.Batch(ctx, ops); err != nil {
		return fmt.Errorf("barrier: write keyring: %w", err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	b.wrapper = w
	if b.active == nil {
		// Sealed meanwhile: storage has the new records, which the next
		// Unseal reads; keep no key material.
		return nil
	}
	if newRootKey != nil {
		clear(b.rootKey)
		b.rootKey = append([]byte(nil), newRootKey...)
		b.rootAEAD = rootAEAD
	}
	return nil
}

// sealUnlessSealed encrypts value for the logical key under the active
// term (as a seal-wrapped record if wrapped), or returns ErrSealed.
func (b *Barrier) sealUnlessSealed(value []byte, key string, wrapped bool) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.active == nil {
		return nil, ErrSealed
	}
	if wrapped {
		return b.sealWrappedLocked(value, key), nil
	}
	return b.sealLocked(value, []byte(key)), nil
}

func sortTerms(keys []*termKey) {
	slices.SortFunc(keys, func(x, y *termKey) int { return cmp.Compare(x.term, y.term) })
}

// walk calls fn with every physical key under pprefix, depth first. A
// folder's own key (one ending in "/") is passed too, since it may exist.
func (b *Barrier) walk(ctx context.Context, pprefix string, fn func(pkey string) error) error {
	children, err := b.phys.List(ctx, pprefix)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := pprefix + c
		if err := fn(k); err != nil {
			return err
		}
		if strings.HasSuffix(c, "/") {
			if err := b.walk(ctx, k, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
