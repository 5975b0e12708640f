package seal

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wardproject/ward/kernel/storage"
)

// Rekey replaces the keys behind the barrier; the barrier must be unsealed
// and the caller must have checked a threshold of the current keys
// (VerifyKey). For Shamir it generates a new unseal key, split into shares
// needing threshold of them, and a new root key (the keyring is encrypted
// again); for an auto seal, which has no unseal keys, shares and threshold
// must be 1 and only the root key changes (no shares are returned).
// Storage changes in one atomic batch or not at all.
func (s *Seal) Rekey(ctx context.Context, shares, threshold int) ([][]byte, error) {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	cfg, err := s.Config(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, ErrNotInitialized
	}
	if s.access != nil {
		if shares != 1 || threshold != 1 {
			return nil, fmt.Errorf("%w: an auto-unseal seal has no unseal keys: rekey the recovery keys, or use 1 share and threshold 1 to rotate the root key", ErrInvalidConfig)
		}
		return nil, s.rotateRootKeyLocked(ctx)
	}
	next := Config{Type: TypeShamir, SecretShares: shares, SecretThreshold: threshold}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	unsealKey, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(unsealKey)
	rootKey, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(rootKey)
	out, err := split(unsealKey, shares, threshold)
	if err != nil {
		return nil, err
	}
	record, err := sealRootKey(unsealKey, rootKey)
	if err != nil {
		zeroAll(out)
		return nil, err
	}
	cfgJSON, _ := json.Marshal(next)
	err = s.barrier.Reseal(ctx, rootKey, nil,
		storage.Op{Kind: storage.OpPut, Key: configPath, Value: cfgJSON},
		storage.Op{Kind: storage.OpPut, Key: rootKeyPath, Value: record})
	if err != nil {
		zeroAll(out)
		return nil, fmt.Errorf("seal: rekey: %w", err)
	}
	s.setConfig(next)
	return out, nil
}

// RotateRootKey gives an auto seal a new root key, encrypted by the HSM;
// the keyring is encrypted again. No operator keys are involved.
func (s *Seal) RotateRootKey(ctx context.Context) error {
	if s.access == nil {
		return fmt.Errorf("%w: the Shamir seal's root key can only change with a rekey (its unseal key is not kept)", ErrUnsupported)
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	return s.rotateRootKeyLocked(ctx)
}

func (s *Seal) rotateRootKeyLocked(ctx context.Context) error {
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

// RekeyRecovery replaces an auto seal's recovery key with a new one split
// into shares needing threshold of them; the caller must have checked a
// threshold of the current recovery keys (VerifyKey).
func (s *Seal) RekeyRecovery(ctx context.Context, shares, threshold int) ([][]byte, error) {
	if s.access == nil {
		return nil, fmt.Errorf("%w: the Shamir seal has no recovery keys", ErrUnsupported)
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	cfg, err := s.Config(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, ErrNotInitialized
	}
	next := *cfg
	next.RecoveryShares, next.RecoveryThreshold = shares, threshold
	if err := next.Validate(); err != nil {
		return nil, err
	}
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	out, err := split(key, shares, threshold)
	if err != nil {
		return nil, err
	}
	rec, err := s.access.Encrypt(ctx, key, []byte(recoveryKeyPath))
	if err != nil {
		zeroAll(out)
		return nil, fmt.Errorf("seal: encrypt the recovery key: %w", err)
	}
	cfgJSON, _ := json.Marshal(next)
	err = s.phys.Batch(ctx, []storage.Op{
		{Kind: storage.OpPut, Key: configPath, Value: cfgJSON},
		{Kind: storage.OpPut, Key: recoveryKeyPath, Value: rec},
	})
	if err != nil {
		zeroAll(out)
		return nil, fmt.Errorf("seal: rekey recovery keys: %w", err)
	}
	s.setConfig(next)
	return out, nil
}
