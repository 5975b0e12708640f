package audit

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of DeviceConfig.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
)

// DeviceConfig is the part of a device's configuration every device type
// shares: redaction, the chain and its checkpoints.
type DeviceConfig struct {
	// HMACKey is the device's redaction key (NewKey; kept in the barrier).
	// Required, at least 16 bytes.
	HMACKey []byte
	// LogRaw turns redaction off: tokens, accessors and every secret the
	// requests and responses carry are written in clear text. Anyone who
	// can read the log (or the remote sink) then holds working tokens and
	// every secret read or written. For debugging only.
	LogRaw bool
	// RawAccessors writes token accessors in clear text (hmac_accessor =
	// false). An accessor cannot read secrets but can look up, renew and
	// revoke its token.
	RawAccessors bool

	// SigningKey signs the device's checkpoints (NewSigningKey; kept in the
	// barrier). Required.
	SigningKey ed25519.PrivateKey
	// Chain persists the chain state across restarts; nil means the chain
	// continues from the file's last line when there is one and starts
	// again at seq 1 otherwise.
	Chain ChainStore
	// CheckpointEvery is the number of entries after which a checkpoint is
	// written (default 1000); CheckpointInterval the time after which one
	// is written if any entry was logged since the last (default 10s,
	// minimum 10ms).
	CheckpointEvery    int
	CheckpointInterval time.Duration

	// Now is the clock for checkpoint times; nil means time.Now.
	Now func() time.Time
	// Logger receives the device's notices (chain resumed from the file,
	// reconnections, write failures); nil discards them.
	Logger *slog.Logger
}

// withDefaults is the one place DeviceConfig is validated and defaulted.
func (c DeviceConfig) withDefaults() (DeviceConfig, error) {
	if len(c.HMACKey) < 16 {
		return c, fmt.Errorf("%w: HMAC key must have at least 16 bytes", ErrInvalidConfig)
	}
	if len(c.SigningKey) != ed25519.PrivateKeySize {
		return c, fmt.Errorf("%w: signing key must be an Ed25519 private key", ErrInvalidConfig)
	}
	if c.CheckpointEvery < 0 || c.CheckpointInterval < 0 {
		return c, fmt.Errorf("%w: negative checkpoint interval", ErrInvalidConfig)
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	// The interval is recorded in whole milliseconds (interval_ms) and
	// the verifier applies it: the device must use exactly that value.
	c.CheckpointInterval = c.CheckpointInterval.Truncate(time.Millisecond)
	if c.CheckpointInterval < 10*time.Millisecond {
		return c, fmt.Errorf("%w: checkpoint interval below 10ms", ErrInvalidConfig)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c *DeviceConfig) newChain() *chain {
	return &chain{
		every:    uint64(c.CheckpointEvery),
		interval: c.CheckpointInterval,
		key:      c.SigningKey,
		now:      c.Now,
	}
}

// tickEvery is how often a device checks whether a time checkpoint is due.
func (c *DeviceConfig) tickEvery() time.Duration {
	return max(c.CheckpointInterval/4, 5*time.Millisecond)
}
