//go:build cgo

package seal_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/seal/sealtest"
	"github.com/wardproject/ward/kernel/storage"
)

// wrapPrefixes are seal-wrapped in these tests, as the kernel does.
var wrapPrefixes = []string{"sys/token/salt", "core/audit-keys/"}

type hsmFixture struct {
	hsm   *sealtest.SoftHSM
	pin   string
	phys  storage.Backend
	cfg   seal.PKCS11Config
	token string
}

func newHSM(t *testing.T, mech string) *hsmFixture {
	t.Helper()
	h := sealtest.New(t)
	pin := h.InitToken(t, "ward-test")
	cfg := h.Config("ward-test", pin, "ward-root")
	cfg.Mechanism = mech
	return &hsmFixture{hsm: h, pin: pin, phys: storage.NewInmem(), cfg: cfg, token: "ward-test"}
}

// open returns an auto seal over the fixture's storage with a fresh
// barrier, as a server start does.
func (f *hsmFixture) open(t *testing.T, cfg seal.PKCS11Config) (*seal.Seal, *barrier.Barrier) {
	t.Helper()
	a, err := seal.NewPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := barrier.New(f.phys)
	b.SetSealWrap(seal.Wrapper(a), wrapPrefixes...)
	return seal.NewAuto(f.phys, b, a), b
}

// dump returns every physical key and value.
func dump(t *testing.T, phys storage.Backend) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var walk func(prefix string)
	walk = func(prefix string) {
		children, err := phys.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range children {
			k := prefix + c
			if v, _ := phys.Get(ctx, k); v != nil {
				out[k] = v
			}
			if strings.HasSuffix(c, "/") {
				walk(k)
			}
		}
	}
	walk("")
	return out
}

func TestPKCS11InitAutoUnsealRestart(t *testing.T) {
	for _, mech := range []string{seal.MechanismAESGCM, seal.MechanismRSAOAEP} {
		t.Run(mech, func(t *testing.T) {
			f := newHSM(t, mech)
			s, b := f.open(t, f.cfg)
			shares, err := s.Initialize(ctx, seal.Config{RecoveryShares: 5, RecoveryThreshold: 3})
			if err != nil {
				t.Fatal(err)
			}
			if len(shares) != 5 || len(shares[0]) != 33 {
				t.Fatalf("recovery shares: %d of %d bytes", len(shares), len(shares[0]))
			}
			cfg, _ := s.Config(ctx)
			if *cfg != (seal.Config{Type: "pkcs11", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 5, RecoveryThreshold: 3}) {
				t.Fatalf("config %+v", cfg)
			}
			if err := s.AutoUnseal(ctx); err != nil || b.Sealed() {
				t.Fatalf("AutoUnseal: %v", err)
			}
			for k, v := range map[string]string{"logical/x/secret": "plain value", "sys/token/salt": "wrapped salt", "core/audit-keys/file": "wrapped keys"} {
				if err := b.Put(ctx, k, []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			// Seal-wrapped entries are version 2 records; others version 1;
			// the keyring is wrapped.
			for k, want := range map[string]byte{"data/logical/x/secret": 1, "data/sys/token/salt": 2, "data/core/audit-keys/file": 2, "barrier/keyring": 2} {
				raw, _ := f.phys.Get(ctx, k)
				if raw[0] != want {
					t.Fatalf("%s has version %d, want %d", k, raw[0], want)
				}
			}
			if _, err := b.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			b.Seal()

			// Restart: a new seal and barrier unseal with the HSM alone.
			s2, b2 := f.open(t, f.cfg)
			if err := s2.AutoUnseal(ctx); err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{"logical/x/secret": "plain value", "sys/token/salt": "wrapped salt", "core/audit-keys/file": "wrapped keys"} {
				got, err := b2.Get(ctx, k)
				if err != nil || string(got) != v {
					t.Fatalf("Get(%s) = %q, %v", k, got, err)
				}
			}
			if term, _, _ := b2.KeyStatus(); term != 2 {
				t.Fatalf("term %d after restart", term)
			}

			// After a seal, recovery keys unseal it too; wrong ones do not.
			b2.Seal()
			other := make([]byte, 33)
			copy(other, shares[0])
			other[5] ^= 1
			for _, sh := range [][]byte{other, shares[1]} {
				if _, err := s2.Unseal(ctx, sh); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s2.Unseal(ctx, shares[2]); !errors.Is(err, seal.ErrBadShares) || !b2.Sealed() {
				t.Fatalf("wrong recovery shares: %v", err)
			}
			for _, i := range []int{4, 0} {
				if _, err := s2.Unseal(ctx, shares[i]); err != nil {
					t.Fatal(err)
				}
			}
			if p, err := s2.Unseal(ctx, shares[2]); err != nil || p.Sealed || b2.Sealed() {
				t.Fatalf("recovery unseal: %+v %v", p, err)
			}
			if err := s2.UnsealWithKey(ctx, shares[0]); !errors.Is(err, seal.ErrUnsupported) {
				t.Fatalf("UnsealWithKey on an auto seal: %v", err)
			}
		})
	}
}

func TestPKCS11FailuresLeaveStorageAlone(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	s, b := f.open(t, f.cfg)
	if _, err := s.Initialize(ctx, seal.Config{RecoveryShares: 1, RecoveryThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.AutoUnseal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "sys/token/salt", []byte("salt")); err != nil {
		t.Fatal(err)
	}
	b.Seal()
	// PKCS#11 logins are per process: close this seal so the next ones
	// log in afresh, as a restarted server would.
	s.Access().Close()
	before := dump(t, f.phys)

	t.Run("wrong PIN", func(t *testing.T) {
		cfg := f.cfg
		cfg.PIN = "not-the-pin-1234"
		s, b := f.open(t, cfg)
		err := s.AutoUnseal(ctx)
		if !errors.Is(err, seal.ErrSealLogin) || !b.Sealed() {
			t.Fatalf("AutoUnseal with a wrong PIN: %v", err)
		}
		if !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || strings.Contains(err.Error(), cfg.PIN) || strings.Contains(err.Error(), f.pin) {
			t.Fatalf("error should name the cause and not the PIN: %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		// Another key under another label: the stored root key is not its.
		cfg := f.cfg
		cfg.KeyLabel = "another-key"
		a, _ := seal.NewPKCS11(cfg)
		if err := a.Init(ctx); err != nil {
			t.Fatal(err)
		}
		a.Close()
		s, b := f.open(t, cfg)
		err := s.AutoUnseal(ctx)
		if !errors.Is(err, seal.ErrSealDecrypt) || !b.Sealed() || !strings.Contains(err.Error(), `"ward-root"`) {
			t.Fatalf("AutoUnseal with another key: %v", err)
		}
		if err := s.CheckStorage(ctx); !errors.Is(err, seal.ErrWrongSeal) {
			t.Fatalf("CheckStorage: %v", err)
		}
	})
	t.Run("key deleted", func(t *testing.T) {
		f.hsm.DeleteKey(t, f.token, f.pin, "ward-root")
		s, b := f.open(t, f.cfg) // generate_key is set: it must not create a new key
		err := s.AutoUnseal(ctx)
		if !errors.Is(err, seal.ErrSealKeyNotFound) || !b.Sealed() || !strings.Contains(err.Error(), `no aes-gcm key labelled "ward-root"`) {
			t.Fatalf("AutoUnseal without the key: %v", err)
		}
		if err := s.AutoUnseal(ctx); !errors.Is(err, seal.ErrSealKeyNotFound) {
			t.Fatalf("second attempt: %v", err)
		}
	})
	t.Run("missing library", func(t *testing.T) {
		cfg := f.cfg
		cfg.Lib = "/nonexistent/libpkcs11.so"
		s, _ := f.open(t, cfg)
		if err := s.AutoUnseal(ctx); !errors.Is(err, seal.ErrSealUnavailable) || !strings.Contains(err.Error(), "cannot load") {
			t.Fatalf("missing library: %v", err)
		}
	})
	if after := dump(t, f.phys); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a failed unseal changed storage")
	}
}

func TestPKCS11SessionsRecover(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	a, err := seal.NewPKCS11(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Init(ctx); err != nil {
		t.Fatal(err)
	}
	blob, err := a.Encrypt(ctx, []byte("payload"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent use of the pool (run with -race), which fills it.
	hammer := func() {
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					b, err := a.Encrypt(ctx, []byte("x"), nil)
					if err == nil {
						_, err = a.Decrypt(ctx, b, nil)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	hammer()
	// The HSM drops every session (and the login with them).
	f.hsm.CloseAllSessions(t, f.token, f.pin)
	pt, err := a.Decrypt(ctx, blob, []byte("aad"))
	if err != nil || string(pt) != "payload" {
		t.Fatalf("after the HSM closed the sessions: %q, %v", pt, err)
	}
	if _, err := a.Decrypt(ctx, blob, []byte("other aad")); !errors.Is(err, seal.ErrSealDecrypt) {
		t.Fatalf("wrong aad: %v", err)
	}
	f.hsm.CloseAllSessions(t, f.token, f.pin)
	hammer()
	if s := fmtString(a); strings.Contains(s, f.pin) || !strings.Contains(s, "pin=redacted") {
		t.Fatalf("formatting shows the PIN: %s", s)
	}
}

func TestPKCS11KeyMissingWithoutGenerate(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	cfg := f.cfg
	cfg.GenerateKey = false
	s, b := f.open(t, cfg)
	_, err := s.Initialize(ctx, seal.Config{RecoveryShares: 1, RecoveryThreshold: 1})
	if !errors.Is(err, seal.ErrSealKeyNotFound) {
		t.Fatalf("Initialize without a key: %v", err)
	}
	if ok, _ := b.Initialized(ctx); ok || len(dump(t, f.phys)) != 0 {
		t.Fatal("a failed Initialize wrote to storage")
	}
}

func TestMigrationShamirToPKCS11AndBack(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	// Start with Shamir 3-of-5.
	b := barrier.New(f.phys)
	b.SetSealWrap(nil, wrapPrefixes...)
	sh := seal.NewShamir(f.phys, b)
	shares, err := sh.Initialize(ctx, seal.Config{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2} {
		if _, err := sh.Unseal(ctx, shares[i]); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"logical/a/1": "one", "sys/token/salt": "salt", "core/audit-keys/f": "audit"}
	for k, v := range want {
		if err := b.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	b.Seal()
	check := func(b *barrier.Barrier) {
		t.Helper()
		for k, v := range want {
			got, err := b.Get(ctx, k)
			if err != nil || string(got) != v {
				t.Fatalf("Get(%s) = %q, %v", k, got, err)
			}
		}
	}

	// Shamir → PKCS#11 with the unseal keys.
	a, err := seal.NewPKCS11(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b = barrier.New(f.phys)
	b.SetSealWrap(nil, wrapPrefixes...) // storage is still Shamir's
	from, to := seal.NewShamir(f.phys, b), seal.NewAuto(f.phys, b, a)
	if err := to.CheckStorage(ctx); !errors.Is(err, seal.ErrWrongSeal) {
		t.Fatalf("CheckStorage before migration: %v", err)
	}
	for _, i := range []int{3, 4} {
		if p, err := seal.Migrate(ctx, from, to, shares[i]); err != nil || !p.Sealed {
			t.Fatalf("Migrate: %+v %v", p, err)
		}
	}
	if p, err := seal.Migrate(ctx, from, to, shares[0]); err != nil || p.Sealed || p.Shares != 5 || p.Threshold != 3 {
		t.Fatalf("Migrate: %+v %v", p, err)
	}
	check(b)
	if raw, _ := f.phys.Get(ctx, "data/sys/token/salt"); raw[0] != 2 {
		t.Fatal("seal-wrapped entry not wrapped after migrating to the HSM")
	}
	b.Seal()

	// Restart: auto-unseal; the old unseal keys are now recovery keys.
	s2, b2 := f.open(t, f.cfg)
	if err := s2.CheckStorage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.AutoUnseal(ctx); err != nil {
		t.Fatal(err)
	}
	check(b2)
	b2.Seal()
	for _, i := range []int{1, 2, 4} {
		if _, err := s2.Unseal(ctx, shares[i]); err != nil {
			t.Fatal(err)
		}
	}
	if b2.Sealed() {
		t.Fatal("old unseal keys do not work as recovery keys")
	}
	b2.Seal()

	// PKCS#11 → Shamir with the recovery keys.
	a3, _ := seal.NewPKCS11(f.cfg)
	defer a3.Close()
	b3 := barrier.New(f.phys)
	b3.SetSealWrap(seal.Wrapper(a3), wrapPrefixes...)
	from, to = seal.NewAuto(f.phys, b3, a3), seal.NewShamir(f.phys, b3)
	for _, i := range []int{0, 3} {
		if _, err := seal.Migrate(ctx, from, to, shares[i]); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := seal.Migrate(ctx, from, to, shares[4]); err != nil || p.Sealed {
		t.Fatalf("Migrate back: %+v %v", p, err)
	}
	check(b3)
	b3.Seal()
	if raw, _ := f.phys.Get(ctx, "seal/recovery-key"); raw != nil {
		t.Fatal("recovery key left behind")
	}
	// Plain Shamir again, no HSM needed.
	b4 := barrier.New(f.phys)
	b4.SetSealWrap(nil, wrapPrefixes...)
	s4 := seal.NewShamir(f.phys, b4)
	for _, i := range []int{2, 3, 4} {
		if _, err := s4.Unseal(ctx, shares[i]); err != nil {
			t.Fatal(err)
		}
	}
	check(b4)
}

func TestRekeys(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	s, b := f.open(t, f.cfg)
	rec, err := s.Initialize(ctx, seal.Config{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AutoUnseal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	newRec, err := s.RekeyRecovery(ctx, 5, 3)
	if err != nil || len(newRec) != 5 {
		t.Fatalf("RekeyRecovery: %d %v", len(newRec), err)
	}
	if err := s.RotateRootKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rekey(ctx, 3, 2); !errors.Is(err, seal.ErrInvalidConfig) {
		t.Fatalf("Rekey unseal keys of an auto seal: %v", err)
	}
	b.Seal()
	s2, b2 := f.open(t, f.cfg)
	if err := s2.AutoUnseal(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := b2.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("after root key rotation: %q %v", v, err)
	}
	// Old recovery shares no longer verify; new ones do.
	oldKey, _ := combineForTest(rec[:2])
	if err := s2.VerifyKey(ctx, oldKey); !errors.Is(err, seal.ErrBadShares) {
		t.Fatalf("old recovery key: %v", err)
	}
	newKey, _ := combineForTest(newRec[1:4])
	if err := s2.VerifyKey(ctx, newKey); err != nil {
		t.Fatalf("new recovery key: %v", err)
	}
}

// BenchmarkPKCS11AutoUnseal measures an unseal with the HSM seal: a fresh
// seal and barrier each time (module load, login, key lookup, two HSM
// decryptions: the root key and the wrapped keyring), as a restart does.
func BenchmarkPKCS11AutoUnseal(b *testing.B) {
	h := sealtest.New(b)
	pin := h.InitToken(b, "bench")
	cfg := h.Config("bench", pin, "ward-root")
	phys := storage.NewInmem()
	a, err := seal.NewPKCS11(cfg)
	if err != nil {
		b.Fatal(err)
	}
	bar := barrier.New(phys)
	bar.SetSealWrap(seal.Wrapper(a), wrapPrefixes...)
	if _, err := seal.NewAuto(phys, bar, a).Initialize(ctx, seal.Config{RecoveryShares: 1, RecoveryThreshold: 1}); err != nil {
		b.Fatal(err)
	}
	a.Close()
	b.ResetTimer()
	for b.Loop() {
		a, _ := seal.NewPKCS11(cfg)
		bar := barrier.New(phys)
		bar.SetSealWrap(seal.Wrapper(a), wrapPrefixes...)
		if err := seal.NewAuto(phys, bar, a).AutoUnseal(ctx); err != nil {
			b.Fatal(err)
		}
		bar.Seal()
		a.Close()
	}
}

// BenchmarkPKCS11Decrypt measures one HSM decryption on a warm session.
func BenchmarkPKCS11Decrypt(b *testing.B) {
	h := sealtest.New(b)
	pin := h.InitToken(b, "bench")
	a, err := seal.NewPKCS11(h.Config("bench", pin, "ward-root"))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Init(ctx); err != nil {
		b.Fatal(err)
	}
	blob, err := a.Encrypt(ctx, make([]byte, 32), []byte("aad"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := a.Decrypt(ctx, blob, []byte("aad")); err != nil {
			b.Fatal(err)
		}
	}
}

// flakyBatch fails every Batch while fail is set.
type flakyBatch struct {
	storage.Backend
	fail atomic.Bool
}

func (f *flakyBatch) Batch(ctx context.Context, ops []storage.Op) error {
	if f.fail.Load() {
		return errors.New("injected: power cut before the batch")
	}
	return f.Backend.Batch(ctx, ops)
}

// TestMigrationCrashLeavesOldSeal: a migration whose batch never lands
// leaves storage exactly as it was, sealed; running it again succeeds.
func TestMigrationCrashLeavesOldSeal(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	phys := &flakyBatch{Backend: f.phys}
	b := barrier.New(phys)
	b.SetSealWrap(nil, wrapPrefixes...)
	sh := seal.NewShamir(phys, b)
	shares, err := sh.Initialize(ctx, seal.Config{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	sh.Unseal(ctx, shares[0])
	sh.Unseal(ctx, shares[1])
	if err := b.Put(ctx, "sys/token/salt", []byte("salt")); err != nil {
		t.Fatal(err)
	}
	b.Seal()
	before := dump(t, phys)

	a, _ := seal.NewPKCS11(f.cfg)
	defer a.Close()
	b = barrier.New(phys)
	b.SetSealWrap(nil, wrapPrefixes...)
	from, to := seal.NewShamir(phys, b), seal.NewAuto(phys, b, a)
	phys.fail.Store(true)
	seal.Migrate(ctx, from, to, shares[2])
	if _, err := seal.Migrate(ctx, from, to, shares[0]); err == nil || !b.Sealed() {
		t.Fatalf("migration with a failing batch: %v, sealed=%v", err, b.Sealed())
	}
	if after := dump(t, phys); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a failed migration changed storage")
	}
	// Still a Shamir store: the old keys unseal it as before.
	if err := to.CheckStorage(ctx); !errors.Is(err, seal.ErrWrongSeal) {
		t.Fatalf("after the failed migration: %v", err)
	}
	phys.fail.Store(false)
	b.SetSealWrap(nil, wrapPrefixes...)
	seal.Migrate(ctx, from, to, shares[1])
	if p, err := seal.Migrate(ctx, from, to, shares[2]); err != nil || p.Sealed {
		t.Fatalf("migration again: %+v %v", p, err)
	}
	if got, err := b.Get(ctx, "sys/token/salt"); err != nil || string(got) != "salt" {
		t.Fatalf("after migration: %q %v", got, err)
	}
}

// TestPKCS11WrongPINNotRetried: once the token refused the PIN, the seal
// does not log in with it again (tokens lock the user PIN after a few
// failures, and the server retries auto-unseal with backoff); a restart
// with the right PIN works.
func TestPKCS11WrongPINNotRetried(t *testing.T) {
	f := newHSM(t, seal.MechanismAESGCM)
	s, _ := f.open(t, f.cfg)
	if _, err := s.Initialize(ctx, seal.Config{RecoveryShares: 1, RecoveryThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	s.Access().Close()
	before := dump(t, f.phys)

	cfg := f.cfg
	cfg.PIN = "typo-in-the-pin-42"
	s, b := f.open(t, cfg)
	if err := s.AutoUnseal(ctx); !errors.Is(err, seal.ErrSealLogin) {
		t.Fatalf("AutoUnseal with a wrong PIN: %v", err)
	}
	// Were the seal to log in again, this PIN would now be accepted.
	f.hsm.SetUserPIN(t, f.token, f.pin, cfg.PIN)
	for range 3 {
		err := s.AutoUnseal(ctx)
		if !errors.Is(err, seal.ErrSealLogin) || !b.Sealed() || !strings.Contains(err.Error(), "not tried again") || strings.Contains(err.Error(), cfg.PIN) {
			t.Fatalf("retry after the PIN was refused: %v", err)
		}
	}
	// A restart (a new Access) tries the PIN again.
	s.Access().Close()
	s2, b2 := f.open(t, cfg)
	if err := s2.AutoUnseal(ctx); err != nil || b2.Sealed() {
		t.Fatalf("after a restart: %v", err)
	}
	if after := dump(t, f.phys); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a failed unseal changed storage")
	}
}
