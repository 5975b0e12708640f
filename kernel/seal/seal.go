package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/storage"
)

const (
	// TypeShamir is the seal type of the Shamir seal.
	TypeShamir = "shamir"
	// TypePKCS11 is the seal type of the PKCS#11 (HSM) auto-unseal seal.
	TypePKCS11 = "pkcs11"

	configPath      = "seal/config"
	rootKeyPath     = "seal/root-key"
	recoveryKeyPath = "seal/recovery-key"

	keySize       = 32 // unseal, recovery and root keys, AES-256
	formatVersion = 0x1
	nonceSize     = 12
)

var (
	// ErrAlreadyInitialized is returned by Initialize when the seal or the
	// barrier has already been initialised.
	ErrAlreadyInitialized = errors.New("seal: already initialized")
	// ErrNotInitialized is returned by Unseal, UnsealWithKey and AutoUnseal
	// before Initialize.
	ErrNotInitialized = errors.New("seal: not initialized")
	// ErrBadShares is returned by Unseal when the combined shares do not open
	// the root key (the attempt is then reset), by UnsealWithKey when the
	// key does not, and by VerifyKey for a wrong key.
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
	// ErrCorrupt is returned when seal/config, seal/root-key or
	// seal/recovery-key is malformed.
	ErrCorrupt = errors.New("seal: stored seal record is malformed")
	// ErrUnsupported is returned for an operation the seal type does not
	// have (AutoUnseal on a Shamir seal, UnsealWithKey on an auto seal).
	ErrUnsupported = errors.New("seal: operation not supported by this seal type")
	// ErrWrongSeal is returned when storage was sealed by another seal
	// than the one configured (another type, or another HSM key).
	ErrWrongSeal = errors.New("seal: wrong seal for this storage")

	// ErrSealUnavailable is wrapped by an Access when its HSM cannot be
	// used: library, token, slot or session trouble.
	ErrSealUnavailable = errors.New("seal: HSM unavailable")
	// ErrSealLogin is wrapped by an Access when the HSM refuses the PIN.
	ErrSealLogin = errors.New("seal: HSM login failed")
	// ErrSealKeyNotFound is wrapped by an Access when its key does not
	// exist on the HSM.
	ErrSealKeyNotFound = errors.New("seal: HSM key not found")
	// ErrSealDecrypt is wrapped by an Access when its key does not open a
	// blob (another key, or a tampered record).
	ErrSealDecrypt = errors.New("seal: HSM key does not decrypt the stored value")
)

// Config is the seal configuration stored in seal/config. An auto seal
// (Type other than "shamir") has one stored share (SecretShares and
// SecretThreshold are 1) and recovery keys.
type Config struct {
	Type              string `json:"type"`
	SecretShares      int    `json:"secret_shares"`
	SecretThreshold   int    `json:"secret_threshold"`
	RecoveryShares    int    `json:"recovery_shares,omitempty"`
	RecoveryThreshold int    `json:"recovery_threshold,omitempty"`
}

// Validate checks c; an empty Type means TypeShamir. It returns an error
// wrapping ErrInvalidConfig with Vault's wording.
func (c Config) Validate() error {
	var msg string
	switch c.Type {
	case "", TypeShamir:
		if c.RecoveryShares != 0 || c.RecoveryThreshold != 0 {
			msg = "recovery keys need an auto-unseal seal; the Shamir seal uses unseal keys"
		} else {
			msg = validateShares("", c.SecretShares, c.SecretThreshold)
		}
	case TypePKCS11:
		switch {
		case c.SecretShares != 1 || c.SecretThreshold != 1:
			msg = "an auto-unseal seal stores one key: secret shares and threshold must be 1"
		default:
			msg = validateShares("recovery ", c.RecoveryShares, c.RecoveryThreshold)
		}
	default:
		msg = fmt.Sprintf("unsupported seal type %q", c.Type)
	}
	if msg == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
}

// validateShares checks a shares/threshold pair with Vault's wording.
func validateShares(what string, shares, threshold int) string {
	switch {
	case shares < 1:
		return what + "shares must be at least one"
	case threshold < 1:
		return what + "threshold must be at least one"
	case shares > 255:
		return what + "shares must be less than 256"
	case threshold > shares:
		return what + "threshold cannot be larger than shares"
	case shares > 1 && threshold == 1:
		return what + "threshold must be greater than one for multiple shares"
	}
	return ""
}

func (c Config) withDefaults() Config {
	if c.Type == "" {
		c.Type = TypeShamir
	}
	return c
}

// auto reports whether the configuration is an auto seal's.
func (c Config) auto() bool { return c.Type != "" && c.Type != TypeShamir }

// KeyShares and KeyThreshold are those of the keys operators hold: unseal
// keys for Shamir, recovery keys for an auto seal.
func (c Config) KeyShares() int {
	if c.auto() {
		return c.RecoveryShares
	}
	return c.SecretShares
}

// KeyThreshold: see KeyShares.
func (c Config) KeyThreshold() int {
	if c.auto() {
		return c.RecoveryThreshold
	}
	return c.SecretThreshold
}

// Progress is the state of unsealing, in the shape of Vault's seal-status
// fields.
type Progress struct {
	Sealed bool `json:"sealed"`
	// Threshold and Shares come from the seal configuration (the recovery
	// keys' for an auto seal); they are zero until the configuration has
	// been read (by Config, Initialize or Unseal).
	Threshold int `json:"t"`
	Shares    int `json:"n"`
	// Progress counts the shares given so far in the current attempt.
	Progress int `json:"progress"`
	// Nonce identifies the current attempt; "" when none is in progress.
	Nonce string `json:"nonce"`
}

// Seal is the seal over one storage backend and barrier: the Shamir seal,
// or an auto-unseal seal when it has an Access.
type Seal struct {
	phys    storage.Backend
	barrier *barrier.Barrier
	// access is the auto seal's key; nil for the Shamir seal.
	access Access

	// initMu serialises the operations that write seal records:
	// Initialize, the rekeys and migrations.
	initMu sync.Mutex

	mu sync.Mutex // protects the fields below
	// config is the configuration last read or written; nil until then.
	config *Config
	// unseal is the current unseal attempt; nil when none is in progress.
	unseal *Collector
}

// Shamir is the former name of Seal.
type Shamir = Seal

// Format prints only the type name, for every verb: a Seal holds key
// shares, and fmt would otherwise print its fields.
func (s *Seal) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("seal.Seal{redacted}")) }

// NewShamir returns the Shamir seal for the barrier b stored in phys.
func NewShamir(phys storage.Backend, b *barrier.Barrier) *Seal {
	return &Seal{phys: phys, barrier: b}
}

// NewAuto returns the auto-unseal seal using a's key for the barrier b
// stored in phys.
func NewAuto(phys storage.Backend, b *barrier.Barrier, a Access) *Seal {
	return &Seal{phys: phys, barrier: b, access: a}
}

// Type is the seal's type: "shamir" or the Access's type.
func (s *Seal) Type() string {
	if s.access == nil {
		return TypeShamir
	}
	return s.access.Type()
}

// Access returns the auto seal's key, nil for the Shamir seal.
func (s *Seal) Access() Access { return s.access }

// RecoveryKeys reports whether operators hold recovery keys (an auto
// seal) rather than unseal keys.
func (s *Seal) RecoveryKeys() bool { return s.access != nil }

// Initialize generates a random root key, initialises the barrier with it
// and stores the seal records, all in one atomic batch, and returns the
// keys for operators. For Shamir, a random unseal key encrypts the root key
// and is split into cfg.SecretShares shares (with one share, the share is
// the unseal key itself). For an auto seal, the Access encrypts the root
// key, and a random recovery key, split into cfg.RecoveryShares shares, is
// stored encrypted by the Access too. It does not unseal. The caller owns
// the returned shares and should zero them once handed out.
func (s *Seal) Initialize(ctx context.Context, cfg Config) (shares [][]byte, err error) {
	if s.access != nil {
		cfg.Type = s.access.Type()
		if cfg.SecretShares == 0 && cfg.SecretThreshold == 0 {
			cfg.SecretShares, cfg.SecretThreshold = 1, 1
		}
	}
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
	if ok, err := s.barrier.Initialized(ctx); err != nil {
		return nil, err
	} else if ok {
		return nil, ErrAlreadyInitialized
	}

	// key is the key operators get shares of: the unseal key or the
	// recovery key.
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	rootKey, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(rootKey)

	if shares, err = split(key, cfg.KeyShares(), cfg.KeyThreshold()); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			zeroAll(shares)
			shares = nil
		}
	}()

	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("seal: encode config: %w", err)
	}
	ops := []storage.Op{{Kind: storage.OpPut, Key: configPath, Value: cfgJSON}}
	if s.access == nil {
		record, err := sealRootKey(key, rootKey)
		if err != nil {
			return nil, err
		}
		ops = append(ops, storage.Op{Kind: storage.OpPut, Key: rootKeyPath, Value: record})
	} else {
		if err := s.access.Init(ctx); err != nil {
			return nil, err
		}
		recs, err := s.autoRecords(ctx, s.access, rootKey, key)
		if err != nil {
			return nil, err
		}
		ops = append(ops, recs...)
	}
	err = s.barrier.Initialize(ctx, rootKey, ops...)
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

// autoRecords returns the ops storing rootKey and recoveryKey encrypted by
// a (nil recoveryKey: no recovery key record).
func (s *Seal) autoRecords(ctx context.Context, a Access, rootKey, recoveryKey []byte) ([]storage.Op, error) {
	rootRec, err := a.Encrypt(ctx, rootKey, []byte(rootKeyPath))
	if err != nil {
		return nil, fmt.Errorf("seal: encrypt the root key: %w", err)
	}
	ops := []storage.Op{{Kind: storage.OpPut, Key: rootKeyPath, Value: rootRec}}
	if recoveryKey != nil {
		recRec, err := a.Encrypt(ctx, recoveryKey, []byte(recoveryKeyPath))
		if err != nil {
			return nil, fmt.Errorf("seal: encrypt the recovery key: %w", err)
		}
		ops = append(ops, storage.Op{Kind: storage.OpPut, Key: recoveryKeyPath, Value: recRec})
	}
	return ops, nil
}

// Config returns the stored seal configuration, or (nil, nil) if the seal
// has not been initialised.
func (s *Seal) Config(ctx context.Context) (*Config, error) {
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

// CheckStorage reports whether storage was sealed by this seal: it returns
// ErrWrongSeal, naming what storage holds, if seal/config has another type
// or (for an auto seal) the stored root key was encrypted with another
// key. It returns nil before initialisation.
func (s *Seal) CheckStorage(ctx context.Context) error {
	kind, err := StoredSeal(ctx, s.phys, s.access)
	if err != nil || kind == "" {
		return err
	}
	if want := s.Describe(); kind != want {
		hint := ""
		if s.access == nil {
			hint = fmt.Sprintf(`; to migrate to Shamir, keep its seal %q stanza with disabled = "true" and unseal with migrate`, strings.Fields(kind)[0])
		}
		return fmt.Errorf("%w: it is sealed by %s, the configuration has %s%s", ErrWrongSeal, kind, want, hint)
	}
	return nil
}

// Describe names the seal as StoredSeal does: "shamir", or
// `<type> key "<key id>"`.
func (s *Seal) Describe() string {
	if s.access == nil {
		return TypeShamir
	}
	return fmt.Sprintf("%s key %q", s.access.Type(), s.access.KeyID())
}

// StoredSeal names the seal that sealed the storage: "shamir", or
// `<type> key "<key id>"` for an auto seal (the key id is read from the
// root key record by a, which may be any Access of that type); "" before
// initialisation.
func StoredSeal(ctx context.Context, phys storage.Backend, a Access) (string, error) {
	s := &Seal{phys: phys}
	cfg, err := s.readConfig(ctx)
	if err != nil || cfg == nil {
		return "", err
	}
	if !cfg.auto() {
		return TypeShamir, nil
	}
	if a == nil || a.Type() != cfg.Type {
		return cfg.Type, nil
	}
	rec, err := phys.Get(ctx, rootKeyPath)
	if err != nil {
		return "", fmt.Errorf("seal: read root key: %w", err)
	}
	if rec == nil {
		return "", fmt.Errorf("%w: seal/root-key is missing", ErrCorrupt)
	}
	id, err := a.BlobKeyID(rec)
	if err != nil {
		return "", fmt.Errorf("%w: seal/root-key: %w", ErrCorrupt, err)
	}
	return fmt.Sprintf("%s key %q", cfg.Type, id), nil
}

// Unseal adds one share to the current unseal attempt, starting an attempt
// if none is in progress: an unseal key share for Shamir, a recovery key
// share for an auto seal (used after sys/seal, or when the HSM came back).
// When the threshold is reached it combines the shares, opens the root key
// and unseals the barrier; the attempt ends either way, and if the shares
// were wrong Unseal returns ErrBadShares. A share already given in this
// attempt returns ErrDuplicateShare and is not counted. Unseal on an
// unsealed barrier does nothing and reports Sealed false.
func (s *Seal) Unseal(ctx context.Context, share []byte) (Progress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.barrier.Sealed() {
		return s.progressLocked(), nil
	}
	key, err := s.addShareLocked(ctx, share)
	if err != nil || key == nil {
		return s.progressLocked(), err
	}
	defer clear(key)
	rootKey, err := s.rootKeyLocked(ctx, key)
	if err != nil {
		return s.progressLocked(), err
	}
	defer clear(rootKey)
	err = s.unsealBarrier(ctx, rootKey)
	return s.progressLocked(), err
}

// addShareLocked adds a share to the unseal attempt; at the threshold it
// ends the attempt and returns the combined key.
func (s *Seal) addShareLocked(ctx context.Context, share []byte) ([]byte, error) {
	cfg, err := s.configLocked(ctx)
	if err != nil {
		return nil, err
	}
	if len(share) != shareLen(cfg.KeyShares()) {
		return nil, ErrInvalidShare
	}
	if s.unseal == nil {
		if s.unseal, err = NewCollector(cfg.KeyThreshold(), shareLen(cfg.KeyShares())); err != nil {
			return nil, err
		}
	}
	key, err := s.unseal.Add(share)
	if err != nil || key != nil {
		if !errors.Is(err, ErrInvalidShare) && !errors.Is(err, ErrDuplicateShare) {
			s.resetLocked()
		}
	}
	return key, err
}

// rootKeyLocked opens the root key with the key operators combined: the
// unseal key for Shamir; for an auto seal, the recovery key is checked and
// the root key decrypted by the Access.
func (s *Seal) rootKeyLocked(ctx context.Context, key []byte) ([]byte, error) {
	if s.access != nil {
		if err := s.verifyRecoveryKey(ctx, key); err != nil {
			return nil, err
		}
		return s.autoRootKey(ctx)
	}
	record, err := s.phys.Get(ctx, rootKeyPath)
	if err != nil {
		return nil, fmt.Errorf("seal: read root key: %w", err)
	}
	if record == nil {
		return nil, ErrNotInitialized
	}
	return openRootKey(key, record)
}

// UnsealWithKey unseals a Shamir seal with the whole unseal key, bypassing
// share collection; the dev server uses it to auto-unseal. It returns
// ErrBadShares if key does not open the root key. Any attempt in progress
// is discarded on success.
func (s *Seal) UnsealWithKey(ctx context.Context, key []byte) error {
	if s.access != nil {
		return ErrUnsupported
	}
	if len(key) != keySize {
		return ErrInvalidShare
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.configLocked(ctx); err != nil {
		return err
	}
	rootKey, err := s.rootKeyLocked(ctx, key)
	if err != nil {
		return err
	}
	defer clear(rootKey)
	if err := s.unsealBarrier(ctx, rootKey); err != nil {
		return err
	}
	s.resetLocked()
	return nil
}

// AutoUnseal unseals an auto seal with its Access: the root key record is
// decrypted by the HSM and opens the barrier. It changes nothing in
// storage. Errors name the cause (ErrSealLogin, ErrSealKeyNotFound,
// ErrSealDecrypt, ErrSealUnavailable from the Access).
func (s *Seal) AutoUnseal(ctx context.Context) error {
	if s.access == nil {
		return ErrUnsupported
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.barrier.Sealed() {
		return nil
	}
	if _, err := s.configLocked(ctx); err != nil {
		return err
	}
	rootKey, err := s.autoRootKey(ctx)
	if err != nil {
		return err
	}
	defer clear(rootKey)
	if err := s.unsealBarrier(ctx, rootKey); err != nil {
		return err
	}
	s.resetLocked()
	return nil
}

// autoRootKey decrypts seal/root-key with the Access.
func (s *Seal) autoRootKey(ctx context.Context) ([]byte, error) {
	record, err := s.phys.Get(ctx, rootKeyPath)
	if err != nil {
		return nil, fmt.Errorf("seal: read root key: %w", err)
	}
	if record == nil {
		return nil, ErrNotInitialized
	}
	rootKey, err := s.access.Decrypt(ctx, record, []byte(rootKeyPath))
	if err != nil {
		return nil, fmt.Errorf("seal: decrypt the root key: %w", err)
	}
	if len(rootKey) != keySize {
		clear(rootKey)
		return nil, fmt.Errorf("%w: seal/root-key", ErrCorrupt)
	}
	return rootKey, nil
}

// verifyRecoveryKey checks key against the stored recovery key in
// constant time; a mismatch is ErrBadShares.
func (s *Seal) verifyRecoveryKey(ctx context.Context, key []byte) error {
	stored, err := s.recoveryKey(ctx)
	if err != nil {
		return err
	}
	defer clear(stored)
	if subtle.ConstantTimeCompare(stored, key) != 1 {
		return ErrBadShares
	}
	return nil
}

// recoveryKey decrypts seal/recovery-key with the Access.
func (s *Seal) recoveryKey(ctx context.Context) ([]byte, error) {
	rec, err := s.phys.Get(ctx, recoveryKeyPath)
	if err != nil {
		return nil, fmt.Errorf("seal: read recovery key: %w", err)
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: seal/recovery-key is missing", ErrCorrupt)
	}
	key, err := s.access.Decrypt(ctx, rec, []byte(recoveryKeyPath))
	if err != nil {
		return nil, fmt.Errorf("seal: decrypt the recovery key: %w", err)
	}
	if len(key) != keySize {
		clear(key)
		return nil, fmt.Errorf("%w: seal/recovery-key", ErrCorrupt)
	}
	return key, nil
}

// VerifyKey checks a key combined from operators' shares: the unseal key
// for Shamir (it must open the stored root key), the recovery key for an
// auto seal. It returns ErrBadShares for a wrong key.
func (s *Seal) VerifyKey(ctx context.Context, key []byte) error {
	if len(key) != keySize {
		return ErrBadShares
	}
	if s.access != nil {
		return s.verifyRecoveryKey(ctx, key)
	}
	record, err := s.phys.Get(ctx, rootKeyPath)
	if err != nil {
		return fmt.Errorf("seal: read root key: %w", err)
	}
	if record == nil {
		return ErrNotInitialized
	}
	rootKey, err := openRootKey(key, record)
	clear(rootKey)
	return err
}

// KeyShareLen is the length of one of the operators' key shares.
func (s *Seal) KeyShareLen(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := s.configLocked(ctx)
	if err != nil {
		return 0, err
	}
	return shareLen(cfg.KeyShares()), nil
}

// Progress reports the current unseal attempt.
func (s *Seal) Progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progressLocked()
}

// ResetUnseal discards the shares collected so far.
func (s *Seal) ResetUnseal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Seal) progressLocked() Progress {
	p := Progress{Sealed: s.barrier.Sealed()}
	if s.unseal != nil {
		p.Progress, p.Nonce = s.unseal.Progress(), s.unseal.Nonce()
	}
	if s.config != nil {
		p.Threshold, p.Shares = s.config.KeyThreshold(), s.config.KeyShares()
	}
	return p
}

func (s *Seal) resetLocked() {
	s.unseal.Reset()
	s.unseal = nil
}

// configLocked returns the cached configuration, reading it if needed.
func (s *Seal) configLocked(ctx context.Context) (*Config, error) {
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

// setConfig replaces the cached configuration after a rekey or migration.
func (s *Seal) setConfig(cfg Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.config = &cfg
	s.resetLocked()
}

// unsealBarrier hands the root key to the barrier.
func (s *Seal) unsealBarrier(ctx context.Context, rootKey []byte) error {
	if err := s.barrier.Unseal(ctx, rootKey); err != nil {
		return fmt.Errorf("seal: unseal barrier: %w", err)
	}
	return nil
}

func (s *Seal) readConfig(ctx context.Context) (*Config, error) {
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
