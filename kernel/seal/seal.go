package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/openbao/openbao/sdk/v2/helper/shamir"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/storage"
)

const (
	// TypeShamir is the only seal type so far.
	TypeShamir = "shamir"

	configPath  = "seal/config"
	rootKeyPath = "seal/root-key"

	keySize       = 32 // unseal key and root key, AES-256
	formatVersion = 0x1
	nonceSize     = 12
)

var (
	// ErrAlreadyInitialized is returned by Initialize when the seal or the
	// barrier has already been initialised.
	ErrAlreadyInitialized = errors.New("seal: already initialized")
	// ErrNotInitialized is returned by Unseal and UnsealWithKey before
	// Initialize.
	ErrNotInitialized = errors.New("seal: not initialized")
	// ErrBadShares is returned by Unseal when the combined shares do not open
	// the root key (the attempt is then reset), and by UnsealWithKey when
	// the key does not.
	ErrBadShares = errors.New("seal: unseal key shares do not open the root key")
	// ErrInvalidConfig is returned by Config.Validate and Initialize for a
	// configuration that cannot be used.
	ErrInvalidConfig = errors.New("seal: invalid config")
	// ErrInvalidShare is returned by Unseal (for a share) and UnsealWithKey
	// (for a key) of the wrong length. The share is not counted.
	ErrInvalidShare = errors.New("seal: invalid unseal key share")
	// ErrDuplicateShare is returned by Unseal for a share already given in
	// the current attempt. It is not counted twice.
	ErrDuplicateShare = errors.New("seal: unseal key share already provided")
	// ErrCorrupt is returned when seal/config or seal/root-key is malformed.
	ErrCorrupt = errors.New("seal: stored seal record is malformed")
)

// Config is the seal configuration stored in seal/config.
type Config struct {
	Type            string `json:"type"`
	SecretShares    int    `json:"secret_shares"`
	SecretThreshold int    `json:"secret_threshold"`
}

// Validate checks c; an empty Type means TypeShamir. It returns an error
// wrapping ErrInvalidConfig with Vault's wording.
func (c Config) Validate() error {
	var msg string
	switch {
	case c.Type != "" && c.Type != TypeShamir:
		msg = fmt.Sprintf("unsupported seal type %q", c.Type)
	case c.SecretShares < 1:
		msg = "shares must be at least one"
	case c.SecretThreshold < 1:
		msg = "threshold must be at least one"
	case c.SecretShares > 255:
		msg = "shares must be less than 256"
	case c.SecretThreshold > c.SecretShares:
		msg = "threshold cannot be larger than shares"
	case c.SecretShares > 1 && c.SecretThreshold == 1:
		msg = "threshold must be greater than one for multiple shares"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
}

func (c Config) withDefaults() Config {
	if c.Type == "" {
		c.Type = TypeShamir
	}
	return c
}

// shareLen is the length of every share: the unseal key itself for 1-of-1,
// otherwise the key plus Shamir's one-byte x coordinate.
func (c Config) shareLen() int {
	if c.SecretShares == 1 {
		return keySize
	}
	return keySize + 1
}

// Progress is the state of unsealing, in the shape of Vault's seal-status
// fields.
type Progress struct {
	Sealed bool `json:"sealed"`
	// Threshold and Shares come from the seal configuration; they are zero
	// until the configuration has been read (by Config, Initialize or
	// Unseal).
	Threshold int `json:"t"`
	Shares    int `json:"n"`
	// Progress counts the shares given so far in the current attempt.
	Progress int `json:"progress"`
	// Nonce identifies the current attempt; "" when none is in progress.
	Nonce string `json:"nonce"`
}

// Shamir is the Shamir seal over one storage backend and barrier.
type Shamir struct {
	phys    storage.Backend
	barrier *barrier.Barrier

	// initMu serialises Initialize.
	initMu sync.Mutex

	mu sync.Mutex // protects the fields below
	// config is the configuration last read or written; nil until then.
	config *Config
	// shares holds copies of the shares given in the current attempt;
	// they are zeroed when the attempt ends.
	shares [][]byte
	nonce  string
}

// Format prints only the type name, for every verb: a Shamir holds key
// shares, and fmt would otherwise print its fields.
func (s *Shamir) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("seal.Shamir{redacted}")) }

// NewShamir returns the Shamir seal for the barrier b stored in phys.
func NewShamir(phys storage.Backend, b *barrier.Barrier) *Shamir {
	return &Shamir{phys: phys, barrier: b}
}

// Initialize generates a random unseal key and a random root key,
// initialises the barrier with the root key, stores seal/config and
// seal/root-key, and returns the unseal key split into cfg.SecretShares
// shares. With one share, the share is the unseal key itself. It does not
// unseal. The caller owns the returned shares and should zero them once they
// have been handed out.
func (s *Shamir) Initialize(ctx context.Context, cfg Config) (shares [][]byte, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	s.initMu.Lock()
	defer s.initMu.Unlock()
	if existing, err := s.readConfig(ctx); err != nil {
		return nil, err
	} else if existing != nil {
		return nil, ErrAlreadyInitialized
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

	if cfg.SecretShares == 1 {
		shares = [][]byte{slices.Clone(unsealKey)}
	} else if shares, err = shamir.Split(unsealKey, cfg.SecretShares, cfg.SecretThreshold); err != nil {
		return nil, fmt.Errorf("seal: split unseal key: %w", err)
	}
	defer func() {
		if err != nil {
			zeroAll(shares)
			shares = nil
		}
	}()

	record, err := sealRootKey(unsealKey, rootKey)
	if err != nil {
		return nil, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("seal: encode config: %w", err)
	}
	err = s.barrier.Initialize(ctx, rootKey,
		storage.Op{Kind: storage.OpPut, Key: configPath, Value: cfgJSON},
		storage.Op{Kind: storage.OpPut, Key: rootKeyPath, Value: record},
	)
	if errors.Is(err, barrier.ErrAlreadyInitialized) {
		return nil, ErrAlreadyInitialized
	}
	if err != nil {
		return nil, fmt.Errorf("seal: initialize barrier: %w", err)
	}

	s.mu.Lock()
	s.config = &cfg
	s.mu.Unlock()
	return shares, nil
}

// Config returns the stored seal configuration, or (nil, nil) if the seal
// has not been initialised.
func (s *Shamir) Config(ctx context.Context) (*Config, error) {
	cfg, err := s.readConfig(ctx)
	if err != nil || cfg == nil {
		return nil, err
	}
	s.mu.Lock()
	s.config = cfg
	s.mu.Unlock()
	out := *cfg
	return &out, nil
}

// Unseal adds one share to the current unseal attempt, starting an attempt
// if none is in progress. When the threshold is reached it combines the
// shares, decrypts the root key and unseals the barrier; the attempt ends
// either way, and if the shares were wrong Unseal returns ErrBadShares. A
// share already given in this attempt returns ErrDuplicateShare and is not
// counted. Unseal on an unsealed barrier does nothing and reports Sealed
// false.
func (s *Shamir) Unseal(ctx context.Context, share []byte) (Progress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.barrier.Sealed() {
		return s.progressLocked(), nil
	}
	cfg, err := s.configLocked(ctx)
	if err != nil {
		return s.progressLocked(), err
	}
	if len(share) != cfg.shareLen() {
		return s.progressLocked(), ErrInvalidShare
	}
	for _, have := range s.shares {
		if subtle.ConstantTimeCompare(have, share) == 1 {
			return s.progressLocked(), ErrDuplicateShare
		}
	}
	if s.nonce == "" {
		if s.nonce, err = newNonce(); err != nil {
			return s.progressLocked(), err
		}
	}
	s.shares = append(s.shares, slices.Clone(share))
	if len(s.shares) < cfg.SecretThreshold {
		return s.progressLocked(), nil
	}

	key, err := combine(s.shares)
	s.resetLocked()
	if err != nil {
		// Combine fails on shares from different splits that happen to
		// share an x coordinate: wrong shares like any other.
		return s.progressLocked(), ErrBadShares
	}
	defer clear(key)
	err = s.unsealLocked(ctx, key)
	return s.progressLocked(), err
}

// UnsealWithKey unseals with the whole unseal key, bypassing share
// collection; the dev server uses it to auto-unseal. It returns ErrBadShares
// if key does not open the root key. Any attempt in progress is discarded
// on success.
func (s *Shamir) UnsealWithKey(ctx context.Context, key []byte) error {
	if len(key) != keySize {
		return ErrInvalidShare
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.configLocked(ctx); err != nil {
		return err
	}
	if err := s.unsealLocked(ctx, key); err != nil {
		return err
	}
	s.resetLocked()
	return nil
}

// Progress reports the current unseal attempt.
func (s *Shamir) Progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progressLocked()
}

// ResetUnseal discards the shares collected so far.
func (s *Shamir) ResetUnseal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Shamir) progressLocked() Progress {
	p := Progress{Sealed: s.barrier.Sealed(), Progress: len(s.shares), Nonce: s.nonce}
	if s.config != nil {
		p.Threshold, p.Shares = s.config.SecretThreshold, s.config.SecretShares
	}
	return p
}

func (s *Shamir) resetLocked() {
	zeroAll(s.shares)
	s.shares, s.nonce = nil, ""
}

// configLocked returns the cached configuration, reading it if needed.
func (s *Shamir) configLocked(ctx context.Context) (*Config, error) {
	if s.config != nil {
		return s.config, nil
	}
	cfg, err := s.readConfig(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, ErrNotInitialized
	}
	s.config = cfg
	return cfg, nil
}

// unsealLocked decrypts the root key with unsealKey and unseals the barrier.
func (s *Shamir) unsealLocked(ctx context.Context, unsealKey []byte) error {
	record, err := s.phys.Get(ctx, rootKeyPath)
	if err != nil {
		return fmt.Errorf("seal: read root key: %w", err)
	}
	if record == nil {
		return ErrNotInitialized
	}
	rootKey, err := openRootKey(unsealKey, record)
	if err != nil {
		return err
	}
	defer clear(rootKey)
	if err := s.barrier.Unseal(ctx, rootKey); err != nil {
		return fmt.Errorf("seal: unseal barrier: %w", err)
	}
	return nil
}

func (s *Shamir) readConfig(ctx context.Context) (*Config, error) {
	raw, err := s.phys.Get(ctx, configPath)
	if err != nil {
		return nil, fmt.Errorf("seal: read config: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%w: seal/config: %w", ErrCorrupt, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: seal/config: %w", ErrCorrupt, err)
	}
	cfg = cfg.withDefaults()
	return &cfg, nil
}

// combine recovers the unseal key from shares. A single share is the unseal
// key itself (the 1-of-1 configuration).
func combine(shares [][]byte) ([]byte, error) {
	if len(shares) == 1 {
		return slices.Clone(shares[0]), nil
	}
	return shamir.Combine(shares)
}

// sealRootKey encrypts rootKey under unsealKey in the seal/root-key format.
func sealRootKey(unsealKey, rootKey []byte) ([]byte, error) {
	aead, err := newAEAD(unsealKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(rootKey)+aead.Overhead())
	out[0] = formatVersion
	nonce := out[1:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: generate nonce: %w", err)
	}
	return aead.Seal(out, nonce, rootKey, []byte(rootKeyPath)), nil
}

// openRootKey decrypts a seal/root-key record. A record that does not
// authenticate under unsealKey yields ErrBadShares.
func openRootKey(unsealKey, record []byte) ([]byte, error) {
	aead, err := newAEAD(unsealKey)
	if err != nil {
		return nil, err
	}
	if len(record) < 1+nonceSize+aead.Overhead() || record[0] != formatVersion {
		return nil, fmt.Errorf("%w: seal/root-key", ErrCorrupt)
	}
	rootKey, err := aead.Open(nil, record[1:1+nonceSize], record[1+nonceSize:], []byte(rootKeyPath))
	if err != nil {
		return nil, ErrBadShares
	}
	if len(rootKey) != keySize {
		clear(rootKey)
		return nil, fmt.Errorf("%w: seal/root-key", ErrCorrupt)
	}
	return rootKey, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}

func randomKey() ([]byte, error) {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

// newNonce returns a random RFC 4122 version 4 UUID naming an unseal attempt.
func newNonce() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("seal: generate nonce: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func zeroAll(bs [][]byte) {
	for _, b := range bs {
		clear(b)
	}
}
