package seal_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/seal"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/storage/pebble"
)

var ctx = context.Background()

type fixture struct {
	phys    storage.Backend
	barrier *barrier.Barrier
	seal    *seal.Shamir
	shares  [][]byte
}

func initialized(t *testing.T, shares, threshold int) *fixture {
	t.Helper()
	f := &fixture{phys: storage.NewInmem()}
	f.barrier = barrier.New(f.phys)
	f.seal = seal.NewShamir(f.phys, f.barrier)
	var err error
	f.shares, err = f.seal.Initialize(ctx, seal.Config{Type: seal.TypeShamir, SecretShares: shares, SecretThreshold: threshold})
	if err != nil {
		t.Fatalf("Initialize(%d of %d): %v", threshold, shares, err)
	}
	return f
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg     seal.Config
		wantErr string // "" for valid
	}{
		{seal.Config{Type: "shamir", SecretShares: 1, SecretThreshold: 1}, ""},
		{seal.Config{SecretShares: 1, SecretThreshold: 1}, ""}, // empty type means shamir
		{seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 3}, ""},
		{seal.Config{Type: "shamir", SecretShares: 2, SecretThreshold: 2}, ""},
		{seal.Config{Type: "shamir", SecretShares: 255, SecretThreshold: 255}, ""},
		{seal.Config{Type: "shamir", SecretShares: 255, SecretThreshold: 2}, ""},
		{seal.Config{Type: "hsm", SecretShares: 1, SecretThreshold: 1}, "unsupported seal type"},
		{seal.Config{Type: "pkcs11", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 5, RecoveryThreshold: 3}, ""},
		{seal.Config{Type: "pkcs11", SecretShares: 1, SecretThreshold: 1}, "recovery shares must be at least one"},
		{seal.Config{Type: "pkcs11", SecretShares: 3, SecretThreshold: 2, RecoveryShares: 1, RecoveryThreshold: 1}, "secret shares and threshold must be 1"},
		{seal.Config{Type: "pkcs11", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 3, RecoveryThreshold: 4}, "recovery threshold cannot be larger than shares"},
		{seal.Config{Type: "shamir", SecretShares: 1, SecretThreshold: 1, RecoveryShares: 1, RecoveryThreshold: 1}, "recovery keys need an auto-unseal seal"},
		{seal.Config{Type: "shamir", SecretShares: 0, SecretThreshold: 0}, "shares must be at least one"},
		{seal.Config{Type: "shamir", SecretShares: -1, SecretThreshold: 1}, "shares must be at least one"},
		{seal.Config{Type: "shamir", SecretShares: 3, SecretThreshold: 0}, "threshold must be at least one"},
		{seal.Config{Type: "shamir", SecretShares: 256, SecretThreshold: 3}, "shares must be less than 256"},
		{seal.Config{Type: "shamir", SecretShares: 3, SecretThreshold: 4}, "threshold cannot be larger than shares"},
		{seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 1}, "threshold must be greater than one for multiple shares"},
		{seal.Config{Type: "shamir", SecretShares: 2, SecretThreshold: 1}, "threshold must be greater than one for multiple shares"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%+v: unexpected error %v", tt.cfg, err)
			}
			continue
		}
		if !errors.Is(err, seal.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%+v: err = %v, want ErrInvalidConfig with %q", tt.cfg, err, tt.wantErr)
		}
	}
}

func TestInitialize(t *testing.T) {
	phys := storage.NewInmem()
	b := barrier.New(phys)
	s := seal.NewShamir(phys, b)
	if cfg, err := s.Config(ctx); err != nil || cfg != nil {
		t.Fatalf("Config before Initialize = %+v, %v; want nil, nil", cfg, err)
	}
	if _, err := s.Unseal(ctx, make([]byte, 33)); !errors.Is(err, seal.ErrNotInitialized) {
		t.Fatalf("Unseal before Initialize: err = %v, want ErrNotInitialized", err)
	}
	if err := s.UnsealWithKey(ctx, make([]byte, 32)); !errors.Is(err, seal.ErrNotInitialized) {
		t.Fatalf("UnsealWithKey before Initialize: err = %v, want ErrNotInitialized", err)
	}
	if _, err := s.Initialize(ctx, seal.Config{SecretShares: 3, SecretThreshold: 1}); !errors.Is(err, seal.ErrInvalidConfig) {
		t.Fatalf("Initialize with invalid config: err = %v", err)
	}
	if ok, _ := b.Initialized(ctx); ok {
		t.Fatal("a rejected Initialize initialised the barrier")
	}

	shares, err := s.Initialize(ctx, seal.Config{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 5 {
		t.Fatalf("%d shares, want 5", len(shares))
	}
	for i, sh := range shares {
		if len(sh) != 33 {
			t.Fatalf("share %d is %d bytes, want 33", i, len(sh))
		}
	}
	if !b.Sealed() {
		t.Fatal("Initialize unsealed the barrier")
	}
	if ok, _ := b.Initialized(ctx); !ok {
		t.Fatal("barrier not initialised")
	}
	cfg, err := s.Config(ctx)
	if err != nil || *cfg != (seal.Config{Type: "shamir", SecretShares: 5, SecretThreshold: 3}) {
		t.Fatalf("Config = %+v, %v", cfg, err)
	}
	raw, _ := phys.Get(ctx, "seal/config")
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil || stored["type"] != "shamir" || stored["secret_shares"] != 5.0 || stored["secret_threshold"] != 3.0 {
		t.Fatalf("seal/config = %s", raw)
	}
	if rk, _ := phys.Get(ctx, "seal/root-key"); len(rk) != 1+12+32+16 || rk[0] != 1 {
		t.Fatalf("seal/root-key is %d bytes", len(rk))
	}
	if _, err := s.Initialize(ctx, seal.Config{SecretShares: 1, SecretThreshold: 1}); !errors.Is(err, seal.ErrAlreadyInitialized) {
		t.Fatalf("second Initialize: err = %v, want ErrAlreadyInitialized", err)
	}
	// A fresh Shamir on the same storage agrees.
	if _, err := seal.NewShamir(phys, barrier.New(phys)).Initialize(ctx, seal.Config{SecretShares: 1, SecretThreshold: 1}); !errors.Is(err, seal.ErrAlreadyInitialized) {
		t.Fatalf("Initialize on initialised storage: err = %v, want ErrAlreadyInitialized", err)
	}
}

func TestInitializeRefusesInitializedBarrier(t *testing.T) {
	phys := storage.NewInmem()
	b := barrier.New(phys)
	if err := b.Initialize(ctx, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	s := seal.NewShamir(phys, b)
	if _, err := s.Initialize(ctx, seal.Config{SecretShares: 1, SecretThreshold: 1}); !errors.Is(err, seal.ErrAlreadyInitialized) {
		t.Fatalf("err = %v, want ErrAlreadyInitialized", err)
	}
	if raw, _ := phys.Get(ctx, "seal/config"); raw != nil {
		t.Fatal("seal/config written although the barrier was initialised")
	}
}

func TestOneOfOne(t *testing.T) {
	f := initialized(t, 1, 1)
	if len(f.shares) != 1 || len(f.shares[0]) != 32 {
		t.Fatalf("1-of-1 shares: %d shares, first %d bytes; want the 32-byte key", len(f.shares), len(f.shares[0]))
	}
	if _, err := f.seal.Unseal(ctx, f.shares[0][:31]); !errors.Is(err, seal.ErrInvalidShare) {
		t.Fatalf("short share: err = %v", err)
	}
	p, err := f.seal.Unseal(ctx, f.shares[0])
	if err != nil {
		t.Fatal(err)
	}
	if p != (seal.Progress{Sealed: false, Threshold: 1, Shares: 1}) {
		t.Fatalf("Progress = %+v", p)
	}
	if f.barrier.Sealed() {
		t.Fatal("barrier still sealed")
	}
	// The dev server path: the whole key.
	f.barrier.Seal()
	if err := f.seal.UnsealWithKey(ctx, f.shares[0]); err != nil || f.barrier.Sealed() {
		t.Fatalf("UnsealWithKey: %v, sealed %v", err, f.barrier.Sealed())
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestProgressNonceAndReset(t *testing.T) {
	f := initialized(t, 5, 3)
	s := f.seal
	want := func(p seal.Progress, sealed bool, progress int) {
		t.Helper()
		if p.Sealed != sealed || p.Progress != progress || p.Threshold != 3 || p.Shares != 5 {
			t.Fatalf("Progress = %+v; want sealed %v, progress %d of t=3, n=5", p, sealed, progress)
		}
		if (progress == 0) != (p.Nonce == "") {
			t.Fatalf("Progress %d with nonce %q", progress, p.Nonce)
		}
		if p.Nonce != "" && !uuidRE.MatchString(p.Nonce) {
			t.Fatalf("nonce %q is not a v4 UUID", p.Nonce)
		}
	}
	want(s.Progress(), true, 0)

	p1, err := s.Unseal(ctx, f.shares[0])
	if err != nil {
		t.Fatal(err)
	}
	want(p1, true, 1)
	p2, err := s.Unseal(ctx, f.shares[3])
	if err != nil {
		t.Fatal(err)
	}
	want(p2, true, 2)
	if p2.Nonce != p1.Nonce {
		t.Fatal("nonce changed within one attempt")
	}
	// A duplicate is refused and not counted.
	pd, err := s.Unseal(ctx, bytes.Clone(f.shares[3]))
	if !errors.Is(err, seal.ErrDuplicateShare) {
		t.Fatalf("duplicate share: err = %v", err)
	}
	want(pd, true, 2)
	// A share of the wrong length is refused and not counted.
	if _, err := s.Unseal(ctx, f.shares[1][:32]); !errors.Is(err, seal.ErrInvalidShare) {
		t.Fatalf("short share: err = %v", err)
	}
	if _, err := s.Unseal(ctx, nil); !errors.Is(err, seal.ErrInvalidShare) {
		t.Fatalf("empty share: err = %v", err)
	}
	want(s.Progress(), true, 2)

	s.ResetUnseal()
	want(s.Progress(), true, 0)
	p3, err := s.Unseal(ctx, f.shares[3])
	if err != nil {
		t.Fatal(err)
	}
	want(p3, true, 1)
	if p3.Nonce == p1.Nonce {
		t.Fatal("a new attempt reused the old nonce")
	}
	if _, err := s.Unseal(ctx, f.shares[1]); err != nil {
		t.Fatal(err)
	}
	pdone, err := s.Unseal(ctx, f.shares[4])
	if err != nil {
		t.Fatal(err)
	}
	want(pdone, false, 0)
	if f.barrier.Sealed() {
		t.Fatal("barrier still sealed")
	}
	// Unsealed: more shares change nothing.
	pmore, err := s.Unseal(ctx, f.shares[0])
	if err != nil {
		t.Fatal(err)
	}
	want(pmore, false, 0)
}

func TestWrongShareFromAnotherInit(t *testing.T) {
	a := initialized(t, 3, 2)
	other := initialized(t, 3, 2)
	for i := range 3 {
		if _, err := a.seal.Unseal(ctx, a.shares[0]); err != nil {
			t.Fatal(err)
		}
		p, err := a.seal.Unseal(ctx, other.shares[i])
		if !errors.Is(err, seal.ErrBadShares) {
			t.Fatalf("mixed shares: err = %v, want ErrBadShares", err)
		}
		for _, sh := range append(a.shares, other.shares...) {
			if strings.Contains(err.Error(), string(sh)) || strings.Contains(err.Error(), hex.EncodeToString(sh)) {
				t.Fatal("error message contains a share")
			}
		}
		if !p.Sealed || p.Progress != 0 || p.Nonce != "" {
			t.Fatalf("after bad shares Progress = %+v; want sealed and reset", p)
		}
	}
	// The right shares still work afterwards.
	if _, err := a.seal.Unseal(ctx, a.shares[2]); err != nil {
		t.Fatal(err)
	}
	if p, err := a.seal.Unseal(ctx, a.shares[0]); err != nil || p.Sealed {
		t.Fatalf("Unseal = %+v, %v", p, err)
	}
}

func TestUnsealWithKeyErrors(t *testing.T) {
	f := initialized(t, 3, 2)
	if err := f.seal.UnsealWithKey(ctx, make([]byte, 32)); !errors.Is(err, seal.ErrBadShares) {
		t.Fatalf("wrong key: err = %v, want ErrBadShares", err)
	}
	if err := f.seal.UnsealWithKey(ctx, make([]byte, 33)); !errors.Is(err, seal.ErrInvalidShare) {
		t.Fatalf("33-byte key: err = %v, want ErrInvalidShare", err)
	}
	if !f.barrier.Sealed() {
		t.Fatal("unsealed with a wrong key")
	}
}

func TestTamperedRootKeyRecord(t *testing.T) {
	f := initialized(t, 3, 2)
	rec, _ := f.phys.Get(ctx, "seal/root-key")
	rec[len(rec)-1] ^= 1
	if err := f.phys.Put(ctx, "seal/root-key", rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.seal.Unseal(ctx, f.shares[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.seal.Unseal(ctx, f.shares[1]); !errors.Is(err, seal.ErrBadShares) {
		t.Fatalf("tampered root key: err = %v, want ErrBadShares", err)
	}
	if err := f.phys.Put(ctx, "seal/root-key", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.seal.Unseal(ctx, f.shares[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.seal.Unseal(ctx, f.shares[1]); !errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("truncated root key: err = %v, want ErrCorrupt", err)
	}
}

// TestRestart initialises on disk, writes through the barrier, closes
// everything and unseals a fresh stack from the same directory.
func TestRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	phys, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := barrier.New(phys)
	s := seal.NewShamir(phys, b)
	shares, err := s.Initialize(ctx, seal.Config{SecretShares: 5, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2} {
		if _, err := s.Unseal(ctx, shares[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, "logical/x/secret", []byte("survives restarts")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	b.Seal()
	if err := phys.Close(); err != nil {
		t.Fatal(err)
	}

	phys, err = pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer phys.Close()
	b = barrier.New(phys)
	s = seal.NewShamir(phys, b)
	if cfg, err := s.Config(ctx); err != nil || cfg.SecretThreshold != 3 {
		t.Fatalf("Config after restart = %+v, %v", cfg, err)
	}
	for _, i := range []int{4, 2} {
		if p, err := s.Unseal(ctx, shares[i]); err != nil || !p.Sealed {
			t.Fatalf("Unseal = %+v, %v", p, err)
		}
	}
	if p, err := s.Unseal(ctx, shares[0]); err != nil || p.Sealed {
		t.Fatalf("Unseal = %+v, %v", p, err)
	}
	if v, err := b.Get(ctx, "logical/x/secret"); err != nil || string(v) != "survives restarts" {
		t.Fatalf("Get after restart = %q, %v", v, err)
	}
}

// TestConcurrentShares submits every share at once; run with -race.
func TestConcurrentShares(t *testing.T) {
	f := initialized(t, 5, 3)
	var wg sync.WaitGroup
	for _, sh := range f.shares {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.seal.Unseal(ctx, sh); err != nil {
				t.Errorf("Unseal: %v", err)
			}
			_ = f.seal.Progress()
		}()
	}
	wg.Wait()
	if f.barrier.Sealed() {
		t.Fatal("five good shares did not unseal")
	}
}
