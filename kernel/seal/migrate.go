package seal

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wardproject/ward/kernel/storage"
)

// Migrate adds one share towards a seal migration from `from` (the seal
// storage is sealed with) to `to` (the configured one), as Vault's
// `operator unseal -migrate`. The shares are from's operator keys: unseal
// keys when leaving Shamir, recovery keys when leaving an auto seal. At
// the threshold it opens the root key with from, unseals the barrier
// (which must have from's seal wrapper) and moves storage to `to`:
//
//   - Shamir → auto: the unseal key becomes the recovery key (operators
//     keep their shares, now recovery keys); the root key and recovery key
//     are encrypted by to's HSM, and the keyring and seal-wrapped entries
//     are wrapped by it.
//   - auto → Shamir: the recovery key becomes the unseal key; the root key
//     is encrypted under it; nothing stays wrapped by the HSM.
//   - auto → auto: the recovery key stays; everything moves to the new key.
//
// The new seal records, the rewrapped keyring and entries, and the removal
// of the old records are one atomic batch: a crash leaves storage either
// entirely under the old seal (migrate again) or entirely under the new
// one. If anything fails, the barrier is sealed again and storage is as it
// was. The root key itself does not change, so no data is re-encrypted.
func Migrate(ctx context.Context, from, to *Seal, share []byte) (Progress, error) {
	if from.access == nil && to.access == nil {
		return Progress{}, fmt.Errorf("%w: migrating from shamir to shamir", ErrInvalidConfig)
	}
	from.mu.Lock()
	defer from.mu.Unlock()
	if !from.barrier.Sealed() {
		return from.progressLocked(), fmt.Errorf("%w: seal migration happens while unsealing; the barrier is already unsealed", ErrInvalidConfig)
	}
	key, err := from.addShareLocked(ctx, share)
	if err != nil || key == nil {
		return from.progressLocked(), err
	}
	defer clear(key)
	fromCfg := *from.config
	rootKey, err := from.rootKeyLocked(ctx, key)
	if err != nil {
		return from.progressLocked(), err
	}
	defer clear(rootKey)
	if err := from.unsealBarrier(ctx, rootKey); err != nil {
		return from.progressLocked(), err
	}

	to.initMu.Lock()
	defer to.initMu.Unlock()
	next, err := migrateTo(ctx, to, fromCfg, rootKey, key)
	if err != nil {
		from.barrier.Seal()
		return from.progressLocked(), fmt.Errorf("seal migration to %s: %w", to.Describe(), err)
	}
	to.setConfig(next)
	from.resetLocked()
	return to.Progress(), nil
}

// migrateTo writes storage's move to `to` in one batch (see Migrate).
func migrateTo(ctx context.Context, to *Seal, fromCfg Config, rootKey, key []byte) (Config, error) {
	var next Config
	var ops []storage.Op
	if to.access == nil {
		next = Config{Type: TypeShamir, SecretShares: fromCfg.RecoveryShares, SecretThreshold: fromCfg.RecoveryThreshold}
		record, err := sealRootKey(key, rootKey)
		if err != nil {
			return next, err
		}
		ops = []storage.Op{
			{Kind: storage.OpPut, Key: rootKeyPath, Value: record},
			{Kind: storage.OpDelete, Key: recoveryKeyPath},
		}
	} else {
		next = Config{Type: to.access.Type(), SecretShares: 1, SecretThreshold: 1,
			RecoveryShares: fromCfg.KeyShares(), RecoveryThreshold: fromCfg.KeyThreshold()}
		if err := to.access.Init(ctx); err != nil {
			return next, err
		}
		var err error
		if ops, err = to.autoRecords(ctx, to.access, rootKey, key); err != nil {
			return next, err
		}
	}
	if err := next.Validate(); err != nil {
		return next, err
	}
	cfgJSON, err := json.Marshal(next)
	if err != nil {
		return next, err
	}
	ops = append(ops, storage.Op{Kind: storage.OpPut, Key: configPath, Value: cfgJSON})
	if err := to.barrier.Reseal(ctx, nil, Wrapper(to.access), ops...); err != nil {
		return next, err
	}
	return next, nil
}
