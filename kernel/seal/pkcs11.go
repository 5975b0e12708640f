//go:build cgo

package seal

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS11 is the Access of the PKCS#11 seal: a key on an HSM token, used
// through github.com/miekg/pkcs11.
//
// Sessions are pooled (at most MaxSessions in use at once). An operation
// that fails because its session broke (closed, invalid, logged out) is
// retried once on a fresh session, after logging in again; one that fails
// because the device or token went away resets the connection first (idle
// sessions closed, slot found again, login again). A key handle that became
// invalid is looked up again. The PIN is only ever passed to C_Login.
type PKCS11 struct {
	cfg PKCS11Config
	// sem bounds the sessions in use.
	sem chan struct{}
	// genMu serialises key generation.
	genMu sync.Mutex

	mu sync.Mutex // protects the fields below
	// mod is the loaded module; nil until the first operation.
	mod      *module
	slot     uint
	loggedIn bool
	idle     []pkcs11.SessionHandle
	inUse    int
	keys     *keyHandles
	// gen counts connection resets; a session from an older generation is
	// dropped when returned.
	gen uint64
	// reconnect is set by a reset: the next operation finds the slot
	// again (initialising the module again if it lost its state).
	reconnect bool
	closed    bool
	// pinErr is set when the token refused the PIN: it is returned from
	// then on without calling C_Login again. The PIN cannot change without
	// a new PKCS11 (a restart), and tokens lock the user PIN after a few
	// failed logins, so retrying (the server retries auto-unseal with
	// backoff) would turn a typo into a token locked until its security
	// officer unlocks it.
	pinErr error
}

var _ Access = (*PKCS11)(nil)

// keyHandles are the object handles of the key: the same secret key for
// AES-GCM, the public and private halves for RSA-OAEP.
type keyHandles struct {
	enc, dec pkcs11.ObjectHandle
}

type p11session struct {
	h    pkcs11.SessionHandle
	gen  uint64
	keys *keyHandles
	mod  *module
}

// Format prints the configuration without the PIN.
func (p *PKCS11) Format(f fmt.State, verb rune) { p.cfg.Format(f, verb) }

// NewPKCS11 returns the PKCS#11 seal's Access. It does not touch the HSM:
// the module is loaded and the token opened at the first operation, so a
// server whose HSM is unreachable still starts (sealed) and reports why.
func NewPKCS11(cfg PKCS11Config) (*PKCS11, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &PKCS11{cfg: cfg, sem: make(chan struct{}, cfg.MaxSessions)}, nil
}

// Type implements Access.
func (p *PKCS11) Type() string { return TypePKCS11 }

// KeyID implements Access: the key label.
func (p *PKCS11) KeyID() string { return p.cfg.KeyLabel }

// BlobKeyID implements Access.
func (p *PKCS11) BlobKeyID(blob []byte) (string, error) {
	b, err := parsePKCS11Blob(blob)
	if err != nil {
		return "", err
	}
	return b.KeyID, nil
}

// token names the token for messages.
func (p *PKCS11) token() string {
	if p.cfg.TokenLabel != "" {
		return fmt.Sprintf("token %q", p.cfg.TokenLabel)
	}
	return fmt.Sprintf("the token in slot %d", *p.cfg.Slot)
}

// Init implements Access: it finds the key, generating it if none exists
// and generate_key is set.
func (p *PKCS11) Init(ctx context.Context) error {
	err := p.do(ctx, func(s *p11session) error { return nil })
	if err == nil || !errors.Is(err, ErrSealKeyNotFound) || !p.cfg.GenerateKey {
		return err
	}
	p.genMu.Lock()
	defer p.genMu.Unlock()
	// Another Init may have generated it meanwhile.
	if err := p.do(ctx, func(s *p11session) error { return nil }); !errors.Is(err, ErrSealKeyNotFound) {
		return err
	}
	return p.doNoKey(ctx, p.generateKey)
}

// Encrypt implements Access.
func (p *PKCS11) Encrypt(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	dek, err := randomKey()
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	b := &pkcs11Blob{Version: pkcs11BlobVersion, Type: TypePKCS11, KeyID: p.cfg.KeyLabel, Mechanism: p.cfg.Mechanism,
		Nonce: make([]byte, nonceSize)}
	if _, err := rand.Read(b.Nonce); err != nil {
		return nil, fmt.Errorf("pkcs11 seal: generate nonce: %w", err)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	b.Ciphertext = aead.Seal(nil, b.Nonce, plaintext, aad)
	if b.Mechanism == MechanismRSAOAEP {
		b.OAEPHash = p.cfg.RSAOAEPHash
	}
	err = p.do(ctx, func(s *p11session) error {
		mech, gcm, err := p.mechanism(b, aad, true)
		if err != nil {
			return err
		}
		defer gcm.Free()
		if err := s.mod.ctx.EncryptInit(s.h, mech, s.keys.enc); err != nil {
			return err
		}
		wrapped, err := s.mod.ctx.Encrypt(s.h, dek)
		if err != nil {
			return err
		}
		b.WrappedKey = wrapped
		if gcm != nil {
			b.HSMIV = gcm.IV() // an HSM may choose its own IV
		}
		return nil
	})
	if err != nil {
		return nil, p.describe("encrypt", err)
	}
	return json.Marshal(b)
}

// Decrypt implements Access.
func (p *PKCS11) Decrypt(ctx context.Context, blob, aad []byte) ([]byte, error) {
	b, err := parsePKCS11Blob(blob)
	if err != nil {
		return nil, err
	}
	if b.KeyID != p.cfg.KeyLabel {
		return nil, fmt.Errorf("%w: the value was encrypted with the HSM key %q, the seal is configured with %q",
			ErrSealDecrypt, b.KeyID, p.cfg.KeyLabel)
	}
	if b.Mechanism != p.cfg.Mechanism {
		return nil, fmt.Errorf("%w: the value was encrypted with %s, the seal is configured with %s",
			ErrSealDecrypt, b.Mechanism, p.cfg.Mechanism)
	}
	var dek []byte
	err = p.do(ctx, func(s *p11session) error {
		mech, gcm, err := p.mechanism(b, aad, false)
		if err != nil {
			return err
		}
		defer gcm.Free()
		if err := s.mod.ctx.DecryptInit(s.h, mech, s.keys.dec); err != nil {
			return err
		}
		dek, err = s.mod.ctx.Decrypt(s.h, b.WrappedKey)
		return err
	})
	if err != nil {
		return nil, p.describe("decrypt", err)
	}
	defer clear(dek)
	if len(dek) != keySize {
		return nil, fmt.Errorf("%w: the HSM returned a data key of the wrong size", ErrSealDecrypt)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, b.Nonce, b.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored value does not authenticate (tampered, or moved from another record)", ErrSealDecrypt)
	}
	return pt, nil
}

// mechanism builds the HSM mechanism for a blob. For AES-GCM it returns
// the parameters, whose IV the caller reads after encrypting and frees.
func (p *PKCS11) mechanism(b *pkcs11Blob, aad []byte, encrypt bool) ([]*pkcs11.Mechanism, *pkcs11.GCMParams, error) {
	switch b.Mechanism {
	case MechanismAESGCM:
		iv := b.HSMIV
		if encrypt {
			iv = make([]byte, nonceSize)
			if _, err := rand.Read(iv); err != nil {
				return nil, nil, err
			}
		}
		gcm := pkcs11.NewGCMParams(iv, aad, 128)
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, gcm)}, gcm, nil
	case MechanismRSAOAEP:
		hash, mgf, ok := oaepHash(b.OAEPHash)
		if !ok {
			return nil, nil, fmt.Errorf("%w: unknown OAEP hash %q", ErrCorrupt, b.OAEPHash)
		}
		params := pkcs11.NewOAEPParams(hash, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil)
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, params)}, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown mechanism %q", ErrCorrupt, b.Mechanism)
}

func oaepHash(name string) (hash, mgf uint, ok bool) {
	switch name {
	case "sha1":
		return pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, true
	case "sha224":
		return pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224, true
	case "sha256":
		return pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, true
	case "sha384":
		return pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384, true
	case "sha512":
		return pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512, true
	}
	return 0, 0, false
}

// describe turns an HSM error of an operation into one that names the
// cause. Errors that already carry a seal sentinel pass through.
func (p *PKCS11) describe(op string, err error) error {
	for _, known := range []error{ErrSealUnavailable, ErrSealLogin, ErrSealKeyNotFound, ErrSealDecrypt, ErrCorrupt} {
		if errors.Is(err, known) {
			return err
		}
	}
	var rv pkcs11.Error
	if errors.As(err, &rv) {
		switch uint(rv) {
		case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED:
			if op == "decrypt" {
				return fmt.Errorf("%w: the HSM key %q on %s does not decrypt the stored value (%s): was the key replaced, or the record tampered with?",
					ErrSealDecrypt, p.cfg.KeyLabel, p.token(), rv)
			}
		case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID, pkcs11.CKR_ARGUMENTS_BAD:
			hint := ""
			if p.cfg.Mechanism == MechanismRSAOAEP {
				hint = fmt.Sprintf(" (RSA-OAEP with %s; SoftHSM2 supports only rsa_oaep_hash = \"sha1\")", p.cfg.RSAOAEPHash)
			}
			return fmt.Errorf("%w: the HSM refused the %s mechanism%s: %s", ErrSealUnavailable, p.cfg.Mechanism, hint, rv)
		}
	}
	return fmt.Errorf("%w: pkcs11 seal: %s with key %q on %s: %w", ErrSealUnavailable, op, p.cfg.KeyLabel, p.token(), err)
}

// Close implements Access: idle sessions are closed at once, the module is
// released when the last session in use is returned.
func (p *PKCS11) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.closeIdleLocked()
	p.releaseModuleIfUnusedLocked()
	return nil
}

// ---- sessions ----

// errClass says what to do after an HSM error.
type errClass int

const (
	errFatal   errClass = iota // report it
	errSession                 // drop the session, log in again, retry
	errKey                     // look the key up again, retry
	errDevice                  // reset the connection, retry
)

func classify(err error) errClass {
	var rv pkcs11.Error
	if !errors.As(err, &rv) {
		return errFatal
	}
	switch uint(rv) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_OPERATION_ACTIVE,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED:
		return errSession
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return errKey
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_SLOT_ID_INVALID:
		return errDevice
	}
	return errFatal
}

// do runs fn on a pooled session that has the key, retrying as described
// on PKCS11.
func (p *PKCS11) do(ctx context.Context, fn func(*p11session) error) error {
	return p.run(ctx, true, fn)
}

// doNoKey is do without looking the key up (to generate it).
func (p *PKCS11) doNoKey(ctx context.Context, fn func(*p11session) error) error {
	return p.run(ctx, false, fn)
}

func (p *PKCS11) run(ctx context.Context, needKey bool, fn func(*p11session) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var s *p11session
		if s, err = p.acquire(needKey); err != nil {
			if classify(err) == errFatal || attempt == 2 {
				return err
			}
			p.reset(nil)
			continue
		}
		err = fn(s)
		switch classify(err) {
		case errFatal:
			p.release(s, true)
			return err
		case errSession:
			// When an HSM drops one session it has usually dropped them
			// all: the idle ones go too, rather than fail one by one.
			p.release(s, false)
			p.dropIdle(s.gen)
		case errKey:
			p.release(s, true)
			p.forgetKeys(s.gen)
		case errDevice:
			p.release(s, false)
			p.reset(s)
		}
	}
	return err
}

// acquire returns a logged-in session from the pool or a new one, after
// connecting if needed; with needKey, the key handles are looked up too.
func (p *PKCS11) acquire(needKey bool) (*p11session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w: pkcs11 seal is closed", ErrSealUnavailable)
	}
	if p.mod == nil {
		if err := p.connectLocked(); err != nil {
			return nil, err
		}
	} else if p.reconnect {
		slot, err := p.findSlot(p.mod, p.inUse == 0)
		if err != nil {
			return nil, err
		}
		p.slot, p.reconnect = slot, false
	}
	if !p.loggedIn && p.pinErr != nil {
		return nil, p.pinErr
	}
	var h pkcs11.SessionHandle
	if n := len(p.idle); n > 0 {
		h, p.idle = p.idle[n-1], p.idle[:n-1]
	} else {
		var err error
		if h, err = p.mod.ctx.OpenSession(p.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
			return nil, err
		}
	}
	s := &p11session{h: h, gen: p.gen, mod: p.mod}
	if !p.loggedIn {
		err := p.mod.ctx.Login(h, pkcs11.CKU_USER, p.cfg.PIN)
		var rv pkcs11.Error
		if errors.As(err, &rv) && uint(rv) == pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			err = nil
		}
		if err != nil {
			_ = p.mod.ctx.CloseSession(h)
			if classify(err) != errFatal {
				return nil, err
			}
			err = fmt.Errorf("%w: pkcs11 seal: login to %s failed: %v (check pin / WARD_HSM_PIN)", ErrSealLogin, p.token(), err)
			if pinRefused(rv) {
				p.pinErr = fmt.Errorf("%w; this PIN is not tried again until the server restarts, so that the token does not lock it", err)
			}
			return nil, err
		}
		p.loggedIn = true
	}
	if needKey && p.keys == nil {
		keys, err := p.findKeysLocked(h)
		if err != nil {
			p.idle = append(p.idle, h)
			return nil, err
		}
		p.keys = keys
	}
	s.keys = p.keys
	p.inUse++
	return s, nil
}

// pinRefused reports whether a login failed because of the PIN itself.
func pinRefused(rv pkcs11.Error) bool {
	switch uint(rv) {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_LOCKED:
		return true
	}
	return false
}

// release returns a session to the pool (keep) or closes it.
func (p *PKCS11) release(s *p11session, keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse--
	if keep && !p.closed && s.gen == p.gen && len(p.idle) < p.cfg.MaxSessions {
		p.idle = append(p.idle, s.h)
	} else {
		_ = s.mod.ctx.CloseSession(s.h)
		if !keep {
			// The session broke; its login may have gone with it.
			p.loggedIn = false
		}
	}
	p.releaseModuleIfUnusedLocked()
}

// dropIdle closes the idle sessions of generation gen.
func (p *PKCS11) dropIdle(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.gen {
		p.closeIdleLocked()
	}
}

// forgetKeys drops cached key handles so the next operation looks them up.
func (p *PKCS11) forgetKeys(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.gen {
		p.keys = nil
	}
}

// reset closes the idle sessions and forgets the slot, login and key
// handles, so the next operation connects again. The module stays loaded
// (other seals may share it); if it lost its initialisation, it is
// initialised again when connecting.
func (p *PKCS11) reset(s *p11session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s != nil && s.gen != p.gen {
		return // someone else reset it already
	}
	p.closeIdleLocked()
	p.gen++
	p.loggedIn, p.keys, p.reconnect = false, nil, true
}

func (p *PKCS11) closeIdleLocked() {
	if p.mod == nil {
		p.idle = nil
		return
	}
	for _, h := range p.idle {
		_ = p.mod.ctx.CloseSession(h)
	}
	p.idle = nil
}

func (p *PKCS11) releaseModuleIfUnusedLocked() {
	if p.closed && p.inUse == 0 && p.mod != nil {
		p.mod.release()
		p.mod = nil
	}
}

// connectLocked loads the module (shared with other seals using the same
// library) and finds the slot.
func (p *PKCS11) connectLocked() error {
	mod, err := acquireModule(p.cfg.Lib)
	if err != nil {
		return err
	}
	slot, err := p.findSlot(mod, p.inUse == 0)
	if err != nil {
		mod.release()
		return err
	}
	p.mod, p.slot = mod, slot
	return nil
}

// findSlot finds the configured token's slot. mayReinit allows
// initialising the module again to rescan tokens (only when none of our
// sessions is in use).
func (p *PKCS11) findSlot(mod *module, mayReinit bool) (uint, error) {
	if p.cfg.Slot != nil {
		if _, err := mod.ctx.GetTokenInfo(*p.cfg.Slot); err != nil {
			return 0, fmt.Errorf("%w: pkcs11 seal: no usable token in slot %d: %v", ErrSealUnavailable, *p.cfg.Slot, err)
		}
		return *p.cfg.Slot, nil
	}
	for attempt := 0; ; attempt++ {
		slots, err := mod.ctx.GetSlotList(true)
		if isRV(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) && attempt == 0 {
			mod.initialize()
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("%w: pkcs11 seal: list slots: %v", ErrSealUnavailable, err)
		}
		for _, s := range slots {
			ti, err := mod.ctx.GetTokenInfo(s)
			if err == nil && strings.TrimRight(ti.Label, " \x00") == p.cfg.TokenLabel {
				return s, nil
			}
		}
		// Some modules (SoftHSM2) only see tokens created since they
		// were initialised after initialising again, which is only safe
		// when nobody else uses the module.
		if attempt > 0 || !mayReinit || !mod.reinitIfSole() {
			return 0, fmt.Errorf("%w: pkcs11 seal: no token labelled %q in %s", ErrSealUnavailable, p.cfg.TokenLabel, p.cfg.Lib)
		}
	}
}

// findKeysLocked looks the key up by label.
func (p *PKCS11) findKeysLocked(h pkcs11.SessionHandle) (*keyHandles, error) {
	find := func(class uint) (pkcs11.ObjectHandle, bool, error) {
		ctx := p.mod.ctx
		tmpl := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, p.cfg.KeyLabel),
		}
		if err := ctx.FindObjectsInit(h, tmpl); err != nil {
			return 0, false, err
		}
		objs, _, err := ctx.FindObjects(h, 2)
		if ferr := ctx.FindObjectsFinal(h); err == nil {
			err = ferr
		}
		if err != nil {
			return 0, false, err
		}
		switch len(objs) {
		case 0:
			return 0, false, nil
		case 1:
			return objs[0], true, nil
		}
		return 0, false, fmt.Errorf("%w: pkcs11 seal: several keys labelled %q on %s; key_label must name one key",
			ErrSealUnavailable, p.cfg.KeyLabel, p.token())
	}
	notFound := fmt.Errorf("%w: pkcs11 seal: no %s key labelled %q on %s (was it deleted? keys are only generated at initialisation, with generate_key = true)",
		ErrSealKeyNotFound, p.cfg.Mechanism, p.cfg.KeyLabel, p.token())
	if p.cfg.Mechanism == MechanismAESGCM {
		k, ok, err := find(pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notFound
		}
		return &keyHandles{enc: k, dec: k}, nil
	}
	pub, okPub, err := find(pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, err
	}
	priv, okPriv, err := find(pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, err
	}
	if !okPub || !okPriv {
		return nil, notFound
	}
	return &keyHandles{enc: pub, dec: priv}, nil
}

// generateKey creates the key on the token: non-extractable, sensitive,
// private, usable only to encrypt and decrypt.
func (p *PKCS11) generateKey(s *p11session) error {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	ctx := s.mod.ctx
	var err error
	if p.cfg.Mechanism == MechanismAESGCM {
		_, err = ctx.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, p.cfg.KeyLabel),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		})
	} else {
		_, _, err = ctx.GenerateKeyPair(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, p.cfg.KeyLabel),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
				pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, p.cfg.RSABits),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, p.cfg.KeyLabel),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			})
	}
	if err != nil {
		return fmt.Errorf("%w: pkcs11 seal: generate the %s key %q on %s: %v", ErrSealUnavailable, p.cfg.Mechanism, p.cfg.KeyLabel, p.token(), err)
	}
	p.forgetKeys(s.gen)
	return nil
}

// ---- modules ----

// module is a loaded PKCS#11 library, shared by every seal using it: a
// library is initialised once per process, and finalising it would pull
// it from under the other users.
type module struct {
	lib  string
	ctx  *pkcs11.Ctx
	refs int // protected by modules.mu
}

var modules = struct {
	mu sync.Mutex // protects m
	m  map[string]*module
}{m: map[string]*module{}}

func acquireModule(lib string) (*module, error) {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	if m := modules.m[lib]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(lib)
	if ctx == nil {
		return nil, fmt.Errorf("%w: pkcs11 seal: cannot load the PKCS#11 library %q", ErrSealUnavailable, lib)
	}
	if err := ctx.Initialize(); err != nil && !isRV(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: pkcs11 seal: initialise %s: %v", ErrSealUnavailable, lib, err)
	}
	m := &module{lib: lib, ctx: ctx, refs: 1}
	modules.m[lib] = m
	return m, nil
}

// release drops a reference; the last one finalises and unloads the
// library.
func (m *module) release() {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.m, m.lib)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}

// initialize initialises the library again after it lost its state.
func (m *module) initialize() {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	_ = m.ctx.Initialize()
}

// reinitIfSole finalises and initialises the library again if this is its
// only user, so it rescans its tokens. It reports whether it did.
func (m *module) reinitIfSole() bool {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	if m.refs != 1 {
		return false
	}
	_ = m.ctx.Finalize()
	return m.ctx.Initialize() == nil
}

func isRV(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}
