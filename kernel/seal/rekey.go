package seal

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"

	"github.com/wardproject/ward/kernel/storage"
)

// PendingRekey is a rekey of the operators' keys whose new key exists only
// in memory: the new shares have been handed out, storage still holds the
// old keys. CommitRekey stores it, Discard forgets it. It is how Vault's
// require_verification is done: the new key is stored only once a
// threshold of its shares has been entered back (Verify), so that a
// response lost on its way to the operators (a crash, a client timeout, an
// audit device refusing the response entry) never leaves storage under
// keys nobody holds. A PendingRekey is not safe for concurrent use; its
// owner locks.
type PendingRekey struct {
	recovery          bool
	shares, threshold int
	// key is the new unseal or recovery key; zeroed by Discard.
	key []byte
}

// Format prints only the type name: a PendingRekey holds a key.
func (p *PendingRekey) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte("seal.PendingRekey{redacted}"))
}

// Shares and Threshold describe the new key's split.
func (p *PendingRekey) Shares() int { return p.shares }

// Threshold: see Shares.
func (p *PendingRekey) Threshold() int { return p.threshold }

// ShareLen is the length of one of the new shares.
func (p *PendingRekey) ShareLen() int { return shareLen(p.shares) }

// Verify checks, in constant time, a key combined from the new shares; a
// mismatch is ErrBadShares.
func (p *PendingRekey) Verify(key []byte) error {
	if p.key == nil || subtle.ConstantTimeCompare(p.key, key) != 1 {
		return ErrBadShares
	}
	return nil
}

// Discard zeroes the new key. It is safe to call more than once and on
// nil.
func (p *PendingRekey) Discard() {
	if p == nil {
		return
	}
	clear(p.key)
	p.key = nil
}

// Rekey replaces the keys behind the barrier; the barrier must be unsealed
// and the caller must have checked a threshold of the current keys
// (VerifyKey). For Shamir it generates a new unseal key, split into shares
// needing threshold of them, and a new root key (the keyring is encrypted
// again); for an auto seal, which has no unseal keys, shares and threshold
// must be 1 and only the root key changes (no shares are returned).
// Storage changes in one atomic batch or not at all. The new shares are
// stored before the caller hands them out: PrepareRekey and CommitRekey
// let the caller have them verified first.
func (s *Seal) Rekey(ctx context.Context, shares, threshold int) ([][]byte, error) {
	if s.access != nil {
		if shares != 1 || threshold != 1 {
			return nil, fmt.Errorf("%w: an auto-unseal seal has no unseal keys: rekey the recovery keys, or use 1 share and threshold 1 to rotate the root key", ErrInvalidConfig)
		}
		return nil, s.RotateRootKey(ctx)
	}
	p, out, err := s.PrepareRekey(ctx, shares, threshold)
	if err != nil {
		return nil, err
	}
	defer p.Discard()
	if err := s.CommitRekey(ctx, p); err != nil {
		zeroAll(out)
		return nil, err
	}
	return out, nil
}

// RekeyRecovery replaces an auto seal's recovery key with a new one split
// into shares needing threshold of them; the caller must have checked a
// threshold of the current recovery keys (VerifyKey). See Rekey about
// verifying the new shares before they are stored.
func (s *Seal) RekeyRecovery(ctx context.Context, shares, threshold int) ([][]byte, error) {
	p, out, err := s.PrepareRekeyRecovery(ctx, shares, threshold)
	if err != nil {
		return nil, err
	}
	defer p.Discard()
	if err := s.CommitRekey(ctx, p); err != nil {
		zeroAll(out)
		return nil, err
	}
	return out, nil
}

// PrepareRekey generates a new unseal key for the Shamir seal, split into
// shares needing threshold of them, without storing anything. The caller
// owns the returned shares and the PendingRekey (CommitRekey or Discard).
func (s *Seal) PrepareRekey(ctx context.Context, shares, threshold int) (*PendingRekey, [][]byte, error) {
	if s.access != nil {
		return nil, nil, fmt.Errorf("%w: an auto-unseal seal has no unseal keys", ErrUnsupported)
	}
	return s.prepare(ctx, false, Config{Type: TypeShamir, SecretShares: shares, SecretThreshold: threshold})
}

// PrepareRekeyRecovery generates a new recovery key for an auto seal,
// split into shares needing threshold of them, without storing anything.
func (s *Seal) PrepareRekeyRecovery(ctx context.Context, shares, threshold int) (*PendingRekey, [][]byte, error) {
	if s.access == nil {
		return nil, nil, fmt.Errorf("%w: the Shamir seal has no recovery keys", ErrUnsupported)
	}
	return s.prepare(ctx, true, Config{Type: s.access.Type(), SecretShares: 1, SecretThreshold: 1,
		RecoveryShares: shares, RecoveryThreshold: threshold})
}

func (s *Seal) prepare(ctx context.Context, recovery bool, next Config) (*PendingRekey, [][]byte, error) {
	if err := next.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg, err := s.Config(ctx); err != nil {
		return nil, nil, err
	} else if cfg == nil {
		return nil, nil, ErrNotInitialized
	}
	key, err := randomKey()
	if err != nil {
		return nil, nil, err
	}
	p := &PendingRekey{recovery: recovery, shares: next.KeyShares(), threshold: next.KeyThreshold(), key: key}
	out, err := split(key, p.shares, p.threshold)
	if err != nil {
		p.Discard()
		return nil, nil, err
	}
	return p, out, nil
}

// CommitRekey stores the new key of p, in one atomic batch: for Shamir a
// new root key encrypted under the new unseal key, with the keyring
// encrypted again under it; for an auto seal the new recovery key
// encrypted by the HSM. The old keys stop working at once. p is left as
// it was (the caller discards it).
func (s *Seal) CommitRekey(ctx context.Context, p *PendingRekey) error {
	if p == nil || p.key == nil {
		return fmt.Errorf("%w: no pending rekey", ErrInvalidConfig)
	}
	if p.recovery != (s.access != nil) {
		return fmt.Errorf("%w: the pending rekey is for another seal type", ErrUnsupported)
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	cfg, err := s.Config(ctx)
	if err != nil {
		return err
	}
	if cfg == nil {
		return ErrNotInitialized
	}
	if p.recovery {
		return s.commitRecoveryLocked(ctx, *cfg, p)
	}
	next := Config{Type: TypeShamir, SecretShares: p.shares, SecretThreshold: p.threshold}
	if err := next.Validate(); err != nil {
		return err
	}
	rootKey, err := randomKey()
	if err != nil {
		return err
	}
	defer clear(rootKey)
	record, err := sealRootKey(p.key, rootKey)
	if err != nil {
		return err
	}
	cfgJSON, _ := json.Marshal(next)
	err = s.barrier.Reseal(ctx, rootKey, nil,
		storage.Op{Kind: storage.OpPut, Key: configPath, Value: cfgJSON},
		storage.Op{Kind: storage.OpPut, Key: rootKeyPath, Value: record})
	if err != nil {
		return fmt.Errorf("seal: rekey: %w", err)
	}
	s.setConfig(next)
	return nil
}

func (s *Seal) commitRecoveryLocked(ctx context.Context, cfg Config, p *PendingRekey) error {
	next := cfg
	next.RecoveryShares, next.RecoveryThreshold = p.shares, p.threshold
	if err := next.Validate(); err != nil {
		return err
	}
	rec, err := s.access.Encrypt(ctx, p.key, []byte(recoveryKeyPath))
	if err != nil {
		return fmt.Errorf("seal: encrypt the recovery key: %w", err)
	}
	cfgJSON, _ := json.Marshal(next)
	err = s.phys.Batch(ctx, []storage.Op{
		{Kind: storage.OpPut, Key: configPath, Value: cfgJSON},
		{Kind: storage.OpPut, Key: recoveryKeyPath, Value: rec},
	})
	if err != nil {
		return fmt.Errorf("seal: rekey recovery keys: %w", err)
	}
	s.setConfig(next)
	return nil
}

// RotateRootKey gives an auto seal a new root key, encrypted by the HSM;
// the keyring is encrypted again. No operator keys are involved.
func (s *Seal) RotateRootKey(ctx context.Context) error {
	if s.access == nil {
		return fmt.Errorf("%w: the Shamir seal's root key can only change with a rekey (its unseal key is not kept)", ErrUnsupported)
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if cfg, err := s.Config(ctx); err != nil {
		return err
	} else if cfg == nil {
		return ErrNotInitialized
	}
	rootKey, err := randomKey()
	if err != nil {
		return err
	}
	defer clear(rootKey)
	ops, err := s.autoRecords(ctx, s.access, rootKey, nil)
	if err != nil {
		return err
	}
	if err := s.barrier.Reseal(ctx, rootKey, Wrapper(s.access), ops...); err != nil {
		return fmt.Errorf("seal: rotate the root key: %w", err)
	}
	return nil
}
