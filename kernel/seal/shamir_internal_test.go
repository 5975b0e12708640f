package seal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"testing"

	"github.com/openbao/openbao/sdk/v2/helper/shamir"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/storage"
)

// TestEverySubset checks, for every allowed configuration with up to five
// shares and every subset of the shares, that a subset of at least the
// threshold recovers the unseal key and one of threshold-1 does not.
func TestEverySubset(t *testing.T) {
	ctx := context.Background()
	for n := 1; n <= 5; n++ {
		for th := 1; th <= n; th++ {
			cfg := Config{Type: TypeShamir, SecretShares: n, SecretThreshold: th}
			if cfg.Validate() != nil {
				continue
			}
			t.Run(fmt.Sprintf("%d-of-%d", th, n), func(t *testing.T) {
				phys := storage.NewInmem()
				b := barrier.New(phys)
				s := NewShamir(phys, b)
				shares, err := s.Initialize(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				for mask := 1; mask < 1<<n; mask++ {
					var subset [][]byte
					for i := range n {
						if mask&(1<<i) != 0 {
							subset = append(subset, shares[i])
						}
					}
					size := bits.OnesCount(uint(mask))
					switch {
					case size >= th:
						key, err := combine(subset)
						if err != nil {
							t.Fatalf("subset %05b: combine: %v", mask, err)
						}
						b.Seal()
						if err := s.UnsealWithKey(ctx, key); err != nil || b.Sealed() {
							t.Fatalf("subset %05b: key does not unseal: %v", mask, err)
						}
						if size == th {
							checkUnsealByShares(t, s, b, subset, mask)
						}
					case size == th-1:
						checkTooFewShares(t, s, b, subset, mask)
					}
				}
			})
		}
	}
}

// checkUnsealByShares feeds exactly threshold shares through Unseal.
func checkUnsealByShares(t *testing.T, s *Shamir, b *barrier.Barrier, subset [][]byte, mask int) {
	t.Helper()
	ctx := context.Background()
	b.Seal()
	s.ResetUnseal()
	for i, sh := range subset {
		p, err := s.Unseal(ctx, sh)
		if err != nil {
			t.Fatalf("subset %05b share %d: %v", mask, i, err)
		}
		last := i == len(subset)-1
		if p.Sealed == last || (!last && p.Progress != i+1) {
			t.Fatalf("subset %05b after share %d: %+v", mask, i, p)
		}
	}
}

// checkTooFewShares feeds threshold-1 shares: the barrier stays sealed, and
// combining them yields a key that does not open the root key.
func checkTooFewShares(t *testing.T, s *Shamir, b *barrier.Barrier, subset [][]byte, mask int) {
	t.Helper()
	ctx := context.Background()
	b.Seal()
	s.ResetUnseal()
	for _, sh := range subset {
		p, err := s.Unseal(ctx, sh)
		if err != nil || !p.Sealed {
			t.Fatalf("subset %05b: %+v, %v", mask, p, err)
		}
	}
	if p := s.Progress(); !p.Sealed || p.Progress != len(subset) {
		t.Fatalf("subset %05b: progress %+v", mask, p)
	}
	s.ResetUnseal()
	if len(subset) < 2 {
		if _, err := shamir.Combine(subset); err == nil {
			t.Fatalf("subset %05b: Combine accepted one share", mask)
		}
		return
	}
	key, err := shamir.Combine(subset)
	if err != nil {
		t.Fatalf("subset %05b: %v", mask, err)
	}
	if err := s.UnsealWithKey(ctx, key); !errors.Is(err, ErrBadShares) || !b.Sealed() {
		t.Fatalf("subset %05b: %d shares below threshold opened the root key (%v)", mask, len(subset), err)
	}
}

// TestSharesZeroed checks that collected shares are zeroed when an attempt
// ends: on success, on failure and on reset.
func TestSharesZeroed(t *testing.T) {
	ctx := context.Background()
	phys := storage.NewInmem()
	b := barrier.New(phys)
	s := NewShamir(phys, b)
	shares, err := s.Initialize(ctx, Config{SecretShares: 3, SecretThreshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, len(shares[0]))
	held := func() [][]byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.unseal == nil {
			return nil
		}
		return append([][]byte(nil), s.unseal.shares...)
	}
	checkZero := func(what string, hs [][]byte) {
		t.Helper()
		if len(hs) == 0 {
			t.Fatalf("%s: nothing collected", what)
		}
		for _, h := range hs {
			if !bytes.Equal(h, zero) {
				t.Fatalf("%s: a collected share was not zeroed", what)
			}
		}
	}

	// Reset.
	if _, err := s.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	hs := held()
	s.ResetUnseal()
	checkZero("reset", hs)

	// Failure: a corrupted third share.
	bad := bytes.Clone(shares[2])
	bad[0] ^= 0xff
	if _, err := s.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(ctx, shares[1]); err != nil {
		t.Fatal(err)
	}
	hs = held()
	if _, err := s.Unseal(ctx, bad); !errors.Is(err, ErrBadShares) {
		t.Fatalf("err = %v, want ErrBadShares", err)
	}
	checkZero("failure", hs)

	// Success.
	if _, err := s.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(ctx, shares[1]); err != nil {
		t.Fatal(err)
	}
	hs = held()
	if p, err := s.Unseal(ctx, shares[2]); err != nil || p.Sealed {
		t.Fatalf("Unseal = %+v, %v", p, err)
	}
	checkZero("success", hs)
	// The caller's shares are untouched.
	if bytes.Equal(shares[0], zero) {
		t.Fatal("Unseal zeroed the caller's share")
	}
}

func TestFormatRedacts(t *testing.T) {
	ctx := context.Background()
	phys := storage.NewInmem()
	s := NewShamir(phys, barrier.New(phys))
	shares, err := s.Initialize(ctx, Config{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		out := fmt.Sprintf(verb, s)
		if out != "seal.Seal{redacted}" {
			t.Errorf("%s prints %s", verb, out)
		}
	}
}

// TestSecretHoldersRedact: the PKCS#11 configuration hides its PIN from
// fmt and encoding/json; a pending rekey hides its key.
func TestSecretHoldersRedact(t *testing.T) {
	cfg := PKCS11Config{Lib: "/lib.so", TokenLabel: "t", PIN: "pin-secret-1234", KeyLabel: "k"}
	js, err := json.Marshal(struct{ Seal PKCS11Config }{cfg})
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v %+v %#v %s", cfg, &cfg, struct{ C PKCS11Config }{cfg}, []PKCS11Config{cfg}) + string(js)
	if strings.Contains(out, cfg.PIN) {
		t.Fatalf("the PIN shows: %s", out)
	}
	p := &PendingRekey{key: []byte("new-key-material-0123456789abcdef")}
	if out := fmt.Sprintf("%v %+v %#v", p, p, p); strings.Contains(out, "new-key") {
		t.Fatalf("a pending rekey prints its key: %s", out)
	}
}
