package kernel

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// The sys/ key management endpoints: barrier key rotation (sys/rotate,
// sys/rotate/config, sys/key-status, and Ward's sys/rotate/reencrypt),
// rekeying the unseal or recovery keys (sys/rekey/*,
// sys/rekey-recovery-key/*, and OpenBao's sys/rotate/root/* and
// sys/rotate/recovery/* names for the same), rotating an auto seal's root
// key (sys/rotate/root) and root token generation
// (sys/generate-root/*, and OpenBao's sys/generate-root-token/*).
//
// Rekey and rotation need sudo (they are in the system backend's Root
// paths). Root token generation is unauthenticated, as in Vault: it is how
// operators get a root token when none exists, and its authority is the
// threshold of key shares.

const (
	rotationConfigKey  = "core/rotation-config"
	rotationCounterKey = "core/rotation-counter"

	// defaultMaxOperations is Vault's default limit of encryptions per
	// key term (about 0.9 * 2^32, for random 96-bit GCM nonces).
	defaultMaxOperations = 3865470566

	rekeyBarrier  = "barrier"
	rekeyRecovery = "recovery"
)

// rotationConfig is sys/rotate/config, stored at core/rotation-config.
type rotationConfig struct {
	Enabled       bool  `json:"enabled"`
	MaxOperations int64 `json:"max_operations"`
	// Interval in seconds; 0 disables rotation by age.
	Interval int64 `json:"interval"`
}

// rotationCounter carries the active term's encryption count across
// restarts, stored at core/rotation-counter.
type rotationCounter struct {
	Term        uint32 `json:"term"`
	Encryptions uint64 `json:"encryptions"`
}

// keyManager holds the key operations of the unsealed state: the rotation
// configuration, the in-progress rekey and root generation attempts and
// the re-encryption job. Attempts are lost at seal, as in Vault.
type keyManager struct {
	core *Core
	u    *unsealedState

	mu            sync.Mutex // protects the fields below
	rotation      rotationConfig
	persisted     rotationCounter
	rekeys        map[string]*rekeyAttempt // by target
	genRoot       *genRootAttempt
	reencrypt     reencryptStatus
	reencryptStop context.CancelFunc
}

// rekeyAttempt is a rekey in progress: collector gathers the current
// keys; with verify (Vault's require_verification), once they are proven
// the new keys are handed out but only pending, and verification gathers
// the new ones until they reconstruct the pending key, which is then
// stored.
type rekeyAttempt struct {
	shares, threshold int
	verify            bool
	collector         *seal.Collector
	// pending and verification are set once the new keys were handed out
	// and await verification.
	pending      *seal.PendingRekey
	verification *seal.Collector
}

type genRootAttempt struct {
	otp       string
	collector *seal.Collector
}

// Format prints only the type name: an attempt holds the OTP and shares.
func (a *genRootAttempt) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte("kernel.genRootAttempt{redacted}"))
}

type reencryptStatus struct {
	Running  bool
	Started  time.Time
	Finished time.Time
	Result   barrier.ReencryptResult
	Err      string
}

func (c *Core) newKeyManager(ctx context.Context, u *unsealedState) (*keyManager, error) {
	m := &keyManager{core: c, u: u, rekeys: map[string]*rekeyAttempt{},
		rotation: rotationConfig{Enabled: true, MaxOperations: defaultMaxOperations}}
	if e, err := c.barrier.Get(ctx, rotationConfigKey); err != nil {
		return nil, err
	} else if e != nil {
		if err := (&logical.StorageEntry{Value: e}).DecodeJSON(&m.rotation); err != nil {
			return nil, fmt.Errorf("decode %s: %w", rotationConfigKey, err)
		}
	}
	if e, err := c.barrier.Get(ctx, rotationCounterKey); err != nil {
		return nil, err
	} else if e != nil {
		var rc rotationCounter
		if err := (&logical.StorageEntry{Value: e}).DecodeJSON(&rc); err == nil {
			c.barrier.AddEncryptions(rc.Term, rc.Encryptions)
			m.persisted = rc
		}
	}
	return m, nil
}

// runRotation rotates the barrier key when the active term reaches the
// configured number of encryptions or age, and persists the encryption
// count, until ctx is done. The unsealed state owns it.
func (m *keyManager) runRotation(ctx context.Context) {
	t := time.NewTicker(m.core.cfg.KeyRotationCheckInterval)
	defer t.Stop()
	// The attempts die with the unsealed state: zero what they hold.
	defer m.discardAttempts()
	for {
		select {
		case <-ctx.Done():
			m.persistFinalCount()
			return
		case <-t.C:
		}
		m.checkRotation(ctx)
	}
}

// persistFinalCount persists the encryption count when the unsealed state
// stops (the barrier is sealed after its goroutines have stopped), so that
// what was encrypted since the last check is not forgotten by a restart.
func (m *keyManager) persistFinalCount() {
	term, _, enc := m.core.barrier.KeyStatus()
	if term == 0 {
		return
	}
	m.mu.Lock()
	persisted := m.persisted
	m.mu.Unlock()
	if persisted.Term != term || enc > persisted.Encryptions+1 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.persistCounter(ctx, term, enc)
	}
}

// discardAttempts ends every rekey and root generation attempt, zeroing
// the key shares and pending keys they hold.
func (m *keyManager) discardAttempts() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for target, a := range m.rekeys {
		a.discard()
		delete(m.rekeys, target)
	}
	if m.genRoot != nil {
		m.genRoot.collector.Reset()
		m.genRoot = nil
	}
}

func (m *keyManager) checkRotation(ctx context.Context) {
	term, installed, enc := m.core.barrier.KeyStatus()
	if term == 0 {
		return
	}
	m.mu.Lock()
	cfg, persisted := m.rotation, m.persisted
	m.mu.Unlock()
	reason := ""
	switch {
	case !cfg.Enabled:
	case cfg.MaxOperations > 0 && enc >= uint64(cfg.MaxOperations):
		reason = "max_operations"
	case cfg.Interval > 0 && m.core.cfg.Now().Sub(installed) >= time.Duration(cfg.Interval)*time.Second:
		reason = "interval"
	}
	if reason != "" {
		newTerm, err := m.rotate(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrSealed) && !errors.Is(err, barrier.ErrSealed) {
				m.core.logger.Error("automatic barrier key rotation failed", "reason", reason, "error", err)
			}
			return
		}
		m.core.logger.Info("barrier key rotated automatically", "reason", reason, "term", newTerm, "encryptions", enc)
		return
	}
	// Persist the count now and then; the write is itself an encryption,
	// so a count that only grew by our own writes is not written again.
	if persisted.Term != term || enc > persisted.Encryptions+1 {
		m.persistCounter(ctx, term, enc)
	}
}

func (m *keyManager) persistCounter(ctx context.Context, term uint32, enc uint64) {
	rc := rotationCounter{Term: term, Encryptions: enc + 1}
	e, err := logical.StorageEntryJSON(rotationCounterKey, rc)
	if err != nil {
		return
	}
	if err := m.core.barrier.Put(ctx, e.Key, e.Value); err != nil {
		if ctx.Err() == nil && !errors.Is(err, barrier.ErrSealed) {
			m.core.logger.Warn("could not persist the key encryption count", "error", err)
		}
		return
	}
	m.mu.Lock()
	m.persisted = rc
	m.mu.Unlock()
}

// rotate adds a barrier key term.
func (m *keyManager) rotate(ctx context.Context) (uint32, error) {
	m.u.opMu.Lock()
	defer m.u.opMu.Unlock()
	if m.u.closed {
		return 0, ErrSealed
	}
	term, err := m.core.barrier.Rotate(ctx)
	if err != nil {
		return 0, err
	}
	m.persistCounter(ctx, term, 0)
	return term, nil
}

// startReencrypt starts the background re-encryption of every entry under
// an older term, unless one is running.
func (m *keyManager) startReencrypt() bool {
	// opMu orders this with Seal, which waits for the goroutine.
	m.u.opMu.Lock()
	defer m.u.opMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reencrypt.Running || m.u.closed {
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.reencrypt = reencryptStatus{Running: true, Started: m.core.cfg.Now()}
	m.reencryptStop = cancel
	m.u.bg.Add(1)
	go func() {
		defer m.u.bg.Done()
		defer cancel()
		stop := context.AfterFunc(m.u.stopCtx, cancel)
		defer stop()
		res, err := m.core.barrier.Reencrypt(ctx, func(r barrier.ReencryptResult) {
			m.mu.Lock()
			m.reencrypt.Result = r
			m.mu.Unlock()
		})
		m.mu.Lock()
		m.reencrypt.Running, m.reencrypt.Result, m.reencrypt.Finished = false, res, m.core.cfg.Now()
		if err != nil {
			m.reencrypt.Err = err.Error()
		}
		m.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				m.core.logger.Error("re-encryption failed", "error", err)
			}
			return
		}
		m.core.logger.Info("re-encryption finished", "term", res.Term, "rewritten", res.Rewritten,
			"scanned", res.Scanned, "oldest_term", res.OldestTerm, "duration", res.Duration)
	}()
	return true
}

func (s *system) keyPaths() []*framework.Path {
	keyFields := map[string]*framework.FieldSchema{
		"key":   {Type: framework.TypeString, Description: "A key share (hex or base64)."},
		"nonce": {Type: framework.TypeString, Description: "The attempt's nonce."},
	}
	rekeyInitFields := map[string]*framework.FieldSchema{
		"secret_shares":        {Type: framework.TypeInt, Description: "Number of new key shares."},
		"secret_threshold":     {Type: framework.TypeInt, Description: "Shares needed to reconstruct the new key."},
		"backup":               {Type: framework.TypeBool, Description: "Not supported."},
		"require_verification": {Type: framework.TypeBool, Description: "Store the new keys only once a threshold of them has been entered back at <target>/verify."},
		"stored_shares":        {Type: framework.TypeInt, Description: "Ignored (Vault compatibility)."},
	}
	rotationFields := map[string]*framework.FieldSchema{
		"enabled":        {Type: framework.TypeBool, Description: "Whether automatic rotation is enabled."},
		"max_operations": {Type: framework.TypeInt, Description: "Encryptions under one key term before it is rotated."},
		"interval":       {Type: framework.TypeDurationSecond, Description: "Age of a key term before it is rotated; 0 disables."},
	}
	paths := []*framework.Path{
		{
			Pattern:      "key-status",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.keyStatus},
			HelpSynopsis: "The active barrier key term, its install time and encryption count.",
		},
		{
			Pattern: "rotate(/keyring)?",
			Fields: map[string]*framework.FieldSchema{
				"reencrypt": {Type: framework.TypeBool, Description: "Re-encrypt every entry under the new term in the background."},
			},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.rotateKey},
			HelpSynopsis: "Rotate the barrier encryption key: add a new key term.",
		},
		{
			Pattern: "rotate(/keyring)?/config",
			Fields:  rotationFields,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   s.readRotationConfig,
				logical.UpdateOperation: s.writeRotationConfig,
			},
			HelpSynopsis: "Automatic barrier key rotation: after max_operations encryptions or interval.",
		},
		{
			Pattern: "rotate/reencrypt",
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   s.reencryptStatus,
				logical.UpdateOperation: s.startReencrypt,
			},
			HelpSynopsis: "Re-encrypt every entry under the active key term (background job) or read its status.",
		},
		{
			Pattern:      "rotate/root",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.rotateRootKey},
			HelpSynopsis: "Give an auto-unseal seal a new root key (no key shares needed).",
		},
		{
			Pattern: "generate-root(-token)?/attempt",
			Fields: map[string]*framework.FieldSchema{
				"otp":     {Type: framework.TypeString, Description: "One-time pad of otp_length characters; generated when empty."},
				"pgp_key": {Type: framework.TypeString, Description: "Not supported."},
			},
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   s.genRootStatus,
				logical.UpdateOperation: s.genRootInit,
				logical.DeleteOperation: s.genRootCancel,
			},
			HelpSynopsis: "Start, read or cancel a root token generation.",
		},
		{
			Pattern:      "generate-root(-token)?/update",
			Fields:       keyFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.genRootUpdate},
			HelpSynopsis: "Enter a key share towards the root token generation.",
		},
	}
	for target, names := range map[string][]string{rekeyBarrier: {"rekey", "rotate/root"}, rekeyRecovery: {"rekey-recovery-key", "rotate/recovery"}} {
		alt := "(" + strings.Join(names, "|") + ")"
		paths = append(paths,
			&framework.Path{
				Pattern: alt + "/init",
				Fields:  rekeyInitFields,
				// pgp_keys (unsupported) is read from the raw data: clients
				// send it as null.
				TakesArbitraryInput: true,
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   s.rekeyStatus(target),
					logical.UpdateOperation: s.rekeyInit(target),
					logical.DeleteOperation: s.rekeyCancel(target),
				},
				HelpSynopsis: "Start, read or cancel a rekey of the " + rekeyNoun(target) + ".",
			},
			&framework.Path{
				Pattern:      alt + "/update",
				Fields:       keyFields,
				Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.rekeyUpdate(target)},
				HelpSynopsis: "Enter a key share towards the rekey of the " + rekeyNoun(target) + ".",
			},
			&framework.Path{
				Pattern: alt + "/verify",
				Fields:  keyFields,
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   s.rekeyVerifyStatus(target),
					logical.UpdateOperation: s.rekeyVerifyUpdate(target),
					logical.DeleteOperation: s.rekeyVerifyRestart(target),
				},
				HelpSynopsis: "Enter one of the new " + rekeyNoun(target) + " to verify them before they are stored (require_verification).",
			},
		)
	}
	return paths
}

func rekeyNoun(target string) string {
	if target == rekeyRecovery {
		return "recovery keys"
	}
	return "unseal keys"
}

// ---- rotation ----

func (s *system) keyStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	term, installed, enc := s.core.barrier.KeyStatus()
	if term == 0 {
		return nil, ErrSealed
	}
	_, terms := s.core.barrier.Terms()
	return &logical.Response{Data: map[string]any{
		"term": term, "install_time": installed.UTC().Format(time.RFC3339Nano), "encryptions": enc, "terms": terms,
	}}, nil
}

func (s *system) rotateKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	term, err := s.u.keys.rotate(ctx)
	if err != nil {
		return nil, err
	}
	s.core.logger.Info("barrier key rotated", "term", term)
	if d.Get("reencrypt").(bool) && !s.u.keys.startReencrypt() {
		// The running job rewrites what is older than the term that was
		// active when it started, not what that term encrypted.
		return &logical.Response{Warnings: []string{fmt.Sprintf(
			"the key was rotated to term %d, but a re-encryption is already running and was not restarted: "+
				"start another (sys/rotate/reencrypt) once it has finished", term)}}, nil
	}
	return nil, nil
}

func (s *system) readRotationConfig(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s.u.keys.mu.Lock()
	cfg := s.u.keys.rotation
	s.u.keys.mu.Unlock()
	return &logical.Response{Data: map[string]any{
		"enabled": cfg.Enabled, "max_operations": cfg.MaxOperations, "interval": cfg.Interval,
	}}, nil
}

func (s *system) writeRotationConfig(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	m := s.u.keys
	m.mu.Lock()
	cfg := m.rotation
	m.mu.Unlock()
	if v, ok := d.GetOk("enabled"); ok {
		cfg.Enabled = v.(bool)
	}
	if v, ok := d.GetOk("max_operations"); ok {
		cfg.MaxOperations = int64(v.(int))
	}
	if v, ok := d.GetOk("interval"); ok {
		cfg.Interval = int64(v.(int))
	}
	switch {
	case cfg.MaxOperations < 1 || cfg.MaxOperations > defaultMaxOperations:
		return nil, logical.InvalidRequest("max_operations must be between 1 and %d", int64(defaultMaxOperations))
	case cfg.Interval != 0 && cfg.Interval < 3600:
		return nil, logical.InvalidRequest("interval must be 0 (disabled) or at least 1h")
	}
	e, err := logical.StorageEntryJSON(rotationConfigKey, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.core.barrier.Put(ctx, e.Key, e.Value); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.rotation = cfg
	m.mu.Unlock()
	return nil, nil
}

func (s *system) startReencrypt(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !s.u.keys.startReencrypt() {
		return nil, logical.InvalidRequest("a re-encryption is already running")
	}
	return s.reencryptStatus(ctx, req, d)
}

func (s *system) reencryptStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	m := s.u.keys
	m.mu.Lock()
	st := m.reencrypt
	m.mu.Unlock()
	data := map[string]any{
		"running": st.Running, "term": st.Result.Term, "scanned": st.Result.Scanned,
		"rewritten": st.Result.Rewritten, "oldest_term": st.Result.OldestTerm, "error": st.Err,
		"started": "", "finished": "",
	}
	if !st.Started.IsZero() {
		data["started"] = st.Started.UTC().Format(time.RFC3339Nano)
	}
	if !st.Finished.IsZero() {
		data["finished"] = st.Finished.UTC().Format(time.RFC3339Nano)
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) rotateRootKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !s.core.seal.RecoveryKeys() {
		return nil, logical.InvalidRequest("the Shamir seal's root key changes with a rekey (sys/rekey), which needs the unseal keys")
	}
	done, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer done()
	if err := s.core.seal.RotateRootKey(ctx); err != nil {
		return nil, err
	}
	s.core.logger.Info("root key rotated")
	return nil, nil
}

// ---- rekey ----

// rekeyStatusData is Vault's rekey status.
func (s *system) rekeyStatusData(ctx context.Context, target string, a *rekeyAttempt) (map[string]any, error) {
	cfg, err := s.core.seal.Config(ctx)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"started": false, "nonce": "", "t": 0, "n": 0, "progress": 0, "required": cfg.KeyThreshold(),
		"pgp_fingerprints": nil, "backup": false, "verification_required": false, "verification_nonce": "",
	}
	if a != nil {
		data["started"], data["nonce"], data["t"], data["n"] = true, a.collector.Nonce(), a.threshold, a.shares
		data["progress"], data["required"] = a.collector.Progress(), a.collector.Threshold()
		data["verification_required"] = a.verify
		if a.pending != nil {
			data["verification_nonce"] = a.verification.Nonce()
		}
	}
	return data, nil
}

func (s *system) checkRekeyTarget(target string) error {
	if target == rekeyRecovery && !s.core.seal.RecoveryKeys() {
		return logical.InvalidRequest("the Shamir seal has no recovery keys; rekey the unseal keys with sys/rekey")
	}
	return nil
}

func (s *system) rekeyStatus(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if err := s.checkRekeyTarget(target); err != nil {
			return nil, err
		}
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		data, err := s.rekeyStatusData(ctx, target, m.rekeys[target])
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: data}, nil
	}
}

func (s *system) rekeyInit(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if err := s.checkRekeyTarget(target); err != nil {
			return nil, err
		}
		pgp := false
		switch v := d.Raw["pgp_keys"].(type) {
		case []any:
			pgp = len(v) > 0
		case string:
			pgp = v != ""
		}
		if pgp || d.Get("backup").(bool) {
			return nil, logical.InvalidRequest("PGP-encrypted key shares and key backups are not supported")
		}
		verify := d.Get("require_verification").(bool)
		shares, threshold := d.Get("secret_shares").(int), d.Get("secret_threshold").(int)
		next := seal.Config{Type: seal.TypeShamir, SecretShares: shares, SecretThreshold: threshold}
		if s.core.seal.RecoveryKeys() {
			next = seal.Config{Type: s.core.seal.Type(), SecretShares: 1, SecretThreshold: 1, RecoveryShares: shares, RecoveryThreshold: threshold}
			if target == rekeyBarrier && (shares != 1 || threshold != 1) {
				return nil, logical.InvalidRequest("with the %s seal there are no unseal keys: secret_shares and secret_threshold must be 1 (the root key is rotated), or rekey the recovery keys with sys/rekey-recovery-key", s.core.seal.Type())
			}
			if target == rekeyBarrier && verify {
				// No new keys are handed out: nothing to verify.
				return nil, logical.InvalidRequest("requiring verification not supported when rekeying the barrier key with recovery keys")
			}
		}
		if err := next.Validate(); err != nil {
			return nil, logical.InvalidRequest("%s", strings.TrimPrefix(err.Error(), "seal: invalid config: "))
		}
		n, err := s.core.seal.KeyShareLen(ctx)
		if err != nil {
			return nil, err
		}
		cfg, err := s.core.seal.Config(ctx)
		if err != nil {
			return nil, err
		}
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.rekeys[target] != nil {
			return nil, logical.InvalidRequest("rekey already in progress")
		}
		col, err := seal.NewCollector(cfg.KeyThreshold(), n)
		if err != nil {
			return nil, err
		}
		a := &rekeyAttempt{shares: shares, threshold: threshold, verify: verify, collector: col}
		m.rekeys[target] = a
		s.core.logger.Info("rekey initialized", "target", target, "nonce", col.Nonce(), "shares", shares, "threshold", threshold,
			"require_verification", verify)
		data, err := s.rekeyStatusData(ctx, target, a)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: data}, nil
	}
}

func (s *system) rekeyCancel(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		if a := m.rekeys[target]; a != nil {
			a.discard()
			delete(m.rekeys, target)
		}
		return nil, nil
	}
}

func (s *system) rekeyUpdate(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if err := s.checkRekeyTarget(target); err != nil {
			return nil, err
		}
		share, err := decodeShare(d.Get("key").(string))
		if err != nil {
			return nil, err
		}
		defer clear(share)
		// opMu before m.mu (the order rotate and startReencrypt use), so
		// a seal waits for a rekey being written.
		done, err := s.begin()
		if err != nil {
			return nil, err
		}
		defer done()
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		a := m.rekeys[target]
		if a == nil {
			return nil, logical.InvalidRequest("no rekey in progress")
		}
		if a.pending != nil {
			return nil, logical.InvalidRequest("rekey operation already finished; verification must be performed; nonce for the verification operation is %q", a.verification.Nonce())
		}
		if d.Get("nonce").(string) != a.collector.Nonce() {
			return nil, logical.InvalidRequest("incorrect nonce")
		}
		key, err := a.collector.Add(share)
		if err != nil {
			return nil, shareError(err)
		}
		if key == nil {
			data, err := s.rekeyStatusData(ctx, target, a)
			if err != nil {
				return nil, err
			}
			return &logical.Response{Data: data}, nil
		}
		defer clear(key)
		if err := s.core.seal.VerifyKey(ctx, key); err != nil {
			return nil, shareError(err)
		}
		var keys [][]byte
		var pending *seal.PendingRekey
		switch {
		case a.verify && target == rekeyRecovery:
			pending, keys, err = s.core.seal.PrepareRekeyRecovery(ctx, a.shares, a.threshold)
		case a.verify:
			pending, keys, err = s.core.seal.PrepareRekey(ctx, a.shares, a.threshold)
		case target == rekeyRecovery:
			keys, err = s.core.seal.RekeyRecovery(ctx, a.shares, a.threshold)
		default:
			keys, err = s.core.seal.Rekey(ctx, a.shares, a.threshold)
		}
		if err != nil {
			return nil, err
		}
		data := map[string]any{
			"complete": true, "nonce": a.collector.Nonce(), "pgp_fingerprints": nil, "backup": false,
			"verification_required": false,
		}
		if pending != nil {
			// Nothing is stored until a threshold of the new keys comes
			// back (sys/rekey/verify): the old keys stay valid meanwhile.
			if a.verification, err = seal.NewCollector(pending.Threshold(), pending.ShareLen()); err != nil {
				pending.Discard()
				zeroAll(keys)
				return nil, err
			}
			a.pending = pending
			data["verification_required"], data["verification_nonce"] = true, a.verification.Nonce()
			s.core.logger.Info("rekey awaiting verification of the new keys", "target", target, "shares", a.shares,
				"threshold", a.threshold, "verification_nonce", a.verification.Nonce())
		} else {
			delete(m.rekeys, target)
			s.core.logger.Info("rekey completed", "target", target, "shares", a.shares, "threshold", a.threshold)
		}
		hexKeys, b64Keys := make([]string, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			hexKeys[i], b64Keys[i] = hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k)
			clear(k)
		}
		data["keys"], data["keys_base64"] = hexKeys, b64Keys
		return &logical.Response{Data: data}, nil
	}
}

// rekeyVerifyStatus is Vault's sys/rekey/verify status.
func (s *system) rekeyVerifyStatus(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if err := s.checkRekeyTarget(target); err != nil {
			return nil, err
		}
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		a := m.rekeys[target]
		if a == nil {
			return nil, logical.InvalidRequest("no rekey in progress")
		}
		return &logical.Response{Data: a.verifyStatus()}, nil
	}
}

// rekeyVerifyRestart resets the verification's progress and nonce; the
// new keys stay the same (Vault's DELETE sys/rekey/verify).
func (s *system) rekeyVerifyRestart(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		a := m.rekeys[target]
		if a == nil || a.pending == nil {
			return nil, nil
		}
		col, err := seal.NewCollector(a.pending.Threshold(), a.pending.ShareLen())
		if err != nil {
			return nil, err
		}
		a.verification.Reset()
		a.verification = col
		return nil, nil
	}
}

// rekeyVerifyUpdate takes one of the new key shares; at the threshold the
// combined key must be the new key, which is then stored.
func (s *system) rekeyVerifyUpdate(target string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if err := s.checkRekeyTarget(target); err != nil {
			return nil, err
		}
		share, err := decodeShare(d.Get("key").(string))
		if err != nil {
			return nil, err
		}
		defer clear(share)
		done, err := s.begin()
		if err != nil {
			return nil, err
		}
		defer done()
		m := s.u.keys
		m.mu.Lock()
		defer m.mu.Unlock()
		a := m.rekeys[target]
		if a == nil || a.pending == nil {
			return nil, logical.InvalidRequest("no rekey verification in progress")
		}
		if d.Get("nonce").(string) != a.verification.Nonce() {
			return nil, logical.InvalidRequest("incorrect nonce")
		}
		key, err := a.verification.Add(share)
		if err != nil {
			return nil, shareError(err)
		}
		if key == nil {
			data := a.verifyStatus()
			data["complete"] = false
			return &logical.Response{Data: data}, nil
		}
		defer clear(key)
		if err := a.pending.Verify(key); err != nil {
			return nil, logical.InvalidRequest("the key shares do not reconstruct the new key; verification progress was reset")
		}
		if err := s.core.seal.CommitRekey(ctx, a.pending); err != nil {
			return nil, err
		}
		nonce := a.verification.Nonce()
		a.discard()
		delete(m.rekeys, target)
		s.core.logger.Info("rekey completed after verification", "target", target, "shares", a.shares, "threshold", a.threshold)
		return &logical.Response{Data: map[string]any{"nonce": nonce, "complete": true}}, nil
	}
}

// verifyStatus is Vault's rekey verification status.
func (a *rekeyAttempt) verifyStatus() map[string]any {
	data := map[string]any{"started": false, "nonce": "", "t": a.threshold, "n": a.shares, "progress": 0}
	if a.pending != nil {
		data["started"], data["nonce"], data["progress"] = true, a.verification.Nonce(), a.verification.Progress()
	}
	return data
}

// discard zeroes what the attempt holds: shares given so far and a new
// key awaiting verification.
func (a *rekeyAttempt) discard() {
	a.collector.Reset()
	a.verification.Reset()
	a.pending.Discard()
	a.pending = nil
}

// Format prints only the type name: an attempt holds key shares and maybe
// a new key.
func (a *rekeyAttempt) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte("kernel.rekeyAttempt{redacted}"))
}

func zeroAll(bs [][]byte) {
	for _, b := range bs {
		clear(b)
	}
}

// decodeShare accepts a key share in hex or base64.
func decodeShare(s string) ([]byte, error) {
	if s == "" {
		return nil, logical.InvalidRequest("'key' must be specified")
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, logical.InvalidRequest("'key' must be a valid hex or base64 string")
}

// shareError turns a seal error about shares into a 400.
func shareError(err error) error {
	switch {
	case errors.Is(err, seal.ErrInvalidShare):
		return logical.InvalidRequest("invalid key share: wrong length")
	case errors.Is(err, seal.ErrDuplicateShare):
		return logical.InvalidRequest("given key has already been provided during this operation")
	case errors.Is(err, seal.ErrBadShares):
		return logical.InvalidRequest("the key shares do not reconstruct the current key; progress was reset")
	}
	return err
}

// ---- root generation ----

// otpAlphabet is base62, as Vault's OTPs.
const otpAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// otpLength is the length of a generated token ("s." and 24 base62
// characters, see kernel/token), which the OTP must match (Vault's
// encoding: raw standard base64 of the token XOR the OTP).
func otpLength() int { return 26 }

func (s *system) genRootStatusData(ctx context.Context, a *genRootAttempt) (map[string]any, error) {
	cfg, err := s.core.seal.Config(ctx)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"started": false, "nonce": "", "progress": 0, "required": cfg.KeyThreshold(), "complete": false,
		"encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "", "otp": "", "otp_length": otpLength(),
	}
	if a != nil {
		data["started"], data["nonce"], data["progress"] = true, a.collector.Nonce(), a.collector.Progress()
	}
	return data, nil
}

func (s *system) genRootStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	m := s.u.keys
	m.mu.Lock()
	defer m.mu.Unlock()
	data, err := s.genRootStatusData(ctx, m.genRoot)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) genRootInit(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if d.Get("pgp_key").(string) != "" {
		return nil, logical.InvalidRequest("PGP-encrypted root tokens are not supported; use an OTP")
	}
	otp, generated := d.Get("otp").(string), false
	if otp == "" {
		var err error
		if otp, err = newOTP(otpLength()); err != nil {
			return nil, err
		}
		generated = true
	} else if len(otp) != otpLength() {
		return nil, logical.InvalidRequest("OTP string is wrong length: want %d characters", otpLength())
	}
	n, err := s.core.seal.KeyShareLen(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := s.core.seal.Config(ctx)
	if err != nil {
		return nil, err
	}
	m := s.u.keys
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.genRoot != nil {
		return nil, logical.InvalidRequest("root generation already in progress")
	}
	col, err := seal.NewCollector(cfg.KeyThreshold(), n)
	if err != nil {
		return nil, err
	}
	m.genRoot = &genRootAttempt{otp: otp, collector: col}
	s.core.logger.Info("root generation initialized", "nonce", col.Nonce())
	data, err := s.genRootStatusData(ctx, m.genRoot)
	if err != nil {
		return nil, err
	}
	if generated {
		data["otp"] = otp
	}
	return &logical.Response{Data: data}, nil
}

func (s *system) genRootCancel(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	m := s.u.keys
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.genRoot != nil {
		m.genRoot.collector.Reset()
		m.genRoot = nil
	}
	return nil, nil
}

func (s *system) genRootUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	share, err := decodeShare(d.Get("key").(string))
	if err != nil {
		return nil, err
	}
	defer clear(share)
	m := s.u.keys
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.genRoot
	if a == nil {
		return nil, logical.InvalidRequest("no root generation in progress")
	}
	if d.Get("nonce").(string) != a.collector.Nonce() {
		return nil, logical.InvalidRequest("incorrect nonce")
	}
	key, err := a.collector.Add(share)
	if err != nil {
		return nil, shareError(err)
	}
	if key == nil {
		data, err := s.genRootStatusData(ctx, a)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: data}, nil
	}
	defer clear(key)
	if err := s.core.seal.VerifyKey(ctx, key); err != nil {
		return nil, shareError(err)
	}
	root, err := s.u.tokens.Create(ctx, &token.Entry{Policies: []string{"root"}, DisplayName: "root", Path: "auth/token/root"})
	if err != nil {
		return nil, fmt.Errorf("create root token: %w", err)
	}
	encoded, err := encodeRootToken(root.ID, a.otp)
	if err != nil {
		return nil, err
	}
	m.genRoot = nil
	s.core.logger.Info("root token generated", "accessor", root.Accessor)
	data, err := s.genRootStatusData(ctx, nil)
	if err != nil {
		return nil, err
	}
	data["started"], data["nonce"], data["progress"], data["complete"] = true, a.collector.Nonce(), a.collector.Threshold(), true
	data["encoded_token"], data["encoded_root_token"] = encoded, encoded
	return &logical.Response{Data: data}, nil
}

// encodeRootToken is Vault's and OpenBao's encoding (roottoken.EncodeToken):
// raw standard base64 of the token XOR the OTP, which must have the
// token's length. `bao operator generate-root -decode` reverses it.
func encodeRootToken(tok, otp string) (string, error) {
	if len(tok) != len(otp) {
		return "", fmt.Errorf("root token and OTP lengths differ (%d, %d)", len(tok), len(otp))
	}
	x := make([]byte, len(tok))
	for i := range x {
		x[i] = tok[i] ^ otp[i]
	}
	return base64.RawStdEncoding.EncodeToString(x), nil
}

// newOTP returns n uniformly random base62 characters.
func newOTP(n int) (string, error) {
	out := make([]byte, n)
	max := big.NewInt(int64(len(otpAlphabet)))
	for i := range out {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		out[i] = otpAlphabet[v.Int64()]
	}
	return string(out), nil
}
