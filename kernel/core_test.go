package kernel

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/wardproject/ward/kernel/storage"
)

// failingPuts fails writes of physical keys containing a marker.
type failingPuts struct {
	storage.Backend
	marker string
}

func (f *failingPuts) Put(ctx context.Context, key string, value []byte) error {
	if strings.Contains(key, f.marker) {
		return errors.New("injected write failure")
	}
	return f.Backend.Put(ctx, key, value)
}

// TestFailedInitLeavesTheServerSealed: if init fails after the barrier was
// opened, the server must stay sealed; no share may open it.
func TestFailedInitLeavesTheServerSealed(t *testing.T) {
	ctx := context.Background()
	c, err := New(Config{Storage: &failingPuts{Backend: storage.NewInmem(), marker: "sys/token/salt"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Initialize(ctx, InitParams{SecretShares: 1, SecretThreshold: 1}); err == nil {
		t.Fatal("init succeeded despite the injected failure")
	}
	if !c.barrier.Sealed() || !c.Sealed() {
		t.Fatal("a failed init left the barrier open")
	}
	random := make([]byte, 32)
	rand.Read(random)
	if _, err := c.Unseal(ctx, random); err == nil {
		t.Fatal("a random share unsealed a half-initialized server")
	}
	if !c.Sealed() {
		t.Fatal("server unsealed")
	}
}

func TestInitLeavesSealedAndUnsealLoadsState(t *testing.T) {
	ctx := context.Background()
	c, err := New(Config{Storage: storage.NewInmem()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Initialize(ctx, InitParams{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sealed() || !c.barrier.Sealed() {
		t.Fatal("init must leave the server sealed")
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil || !c.Sealed() {
		t.Fatalf("one of two shares: %v sealed=%v", err, c.Sealed())
	}
	if _, err := c.Unseal(ctx, res.Keys[2]); err != nil || c.Sealed() {
		t.Fatalf("threshold reached: %v sealed=%v", err, c.Sealed())
	}
	if err := c.Seal(ctx); err != nil || !c.Sealed() || !c.barrier.Sealed() {
		t.Fatalf("seal: %v", err)
	}
	if _, err := c.state(); !errors.Is(err, ErrSealed) {
		t.Fatalf("state after seal: %v", err)
	}
}
