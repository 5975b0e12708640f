package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newUnsealedCore(t *testing.T, cfg Config) (*Core, string, []byte) {
	t.Helper()
	ctx := context.Background()
	if cfg.Storage == nil {
		cfg.Storage = storage.NewInmem()
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Initialize(ctx, InitParams{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	return c, res.RootToken, res.Keys[0]
}

func sysCall(t *testing.T, c *Core, tok string, op logical.Operation, path string, data map[string]any) (*Response, error) {
	t.Helper()
	return c.HandleRequest(context.Background(), &Request{
		Request:     &logical.Request{Operation: op, Path: path, Data: data},
		ClientToken: tok,
	})
}

func waitTerm(t *testing.T, c *Core, want uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		term, _, _ := c.barrier.KeyStatus()
		if term == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("active term %d, want %d", term, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAutomaticRotation(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	phys := storage.NewInmem()
	c, root, key := newUnsealedCore(t, Config{Storage: phys, Now: clk.now, KeyRotationCheckInterval: 5 * time.Millisecond})

	resp, err := sysCall(t, c, root, logical.ReadOperation, "sys/rotate/config", nil)
	if err != nil || resp.Data["enabled"] != true || resp.Data["max_operations"] != int64(defaultMaxOperations) || resp.Data["interval"] != int64(0) {
		t.Fatalf("default config: %v %v", resp, err)
	}
	for _, bad := range []map[string]any{{"max_operations": 0}, {"interval": "30m"}, {"max_operations": int64(1) << 40}} {
		if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rotate/config", bad); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Fatalf("config %v: %v", bad, err)
		}
	}

	// After max_operations encryptions.
	if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rotate/config", map[string]any{"max_operations": 40}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := c.barrier.Put(ctx, fmt.Sprintf("logical/x/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	waitTerm(t, c, 2)

	// After the interval (OpenBao's path name works too).
	if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rotate/keyring/config", map[string]any{"max_operations": 1 << 30, "interval": "2h"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if term, _, _ := c.barrier.KeyStatus(); term != 2 {
		t.Fatalf("rotated before the interval: term %d", term)
	}
	clk.add(3 * time.Hour)
	waitTerm(t, c, 3)

	// Disabled: no rotation however old the key.
	if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rotate/config", map[string]any{"enabled": false}); err != nil {
		t.Fatal(err)
	}
	clk.add(30 * time.Hour)
	time.Sleep(30 * time.Millisecond)
	if term, _, _ := c.barrier.KeyStatus(); term != 3 {
		t.Fatalf("rotated while disabled: term %d", term)
	}

	// The encryption count survives a restart.
	for i := range 30 {
		c.barrier.Put(ctx, fmt.Sprintf("logical/y/%d", i), []byte("v"))
	}
	time.Sleep(50 * time.Millisecond) // let the checker persist it
	_, _, before := c.barrier.KeyStatus()
	if err := c.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, key); err != nil {
		t.Fatal(err)
	}
	if term, _, after := c.barrier.KeyStatus(); term != 3 || after < 30 || after+2 < before {
		t.Fatalf("after restart: term %d, %d encryptions (was %d)", term, after, before)
	}
	resp, _ = sysCall(t, c, root, logical.ReadOperation, "sys/rotate/config", nil)
	if resp.Data["enabled"] != false || resp.Data["interval"] != int64(7200) {
		t.Fatalf("config after restart: %v", resp.Data)
	}
}

func TestKeyEndpointErrors(t *testing.T) {
	c, root, _ := newUnsealedCore(t, Config{})
	for _, tc := range []struct {
		path string
		op   logical.Operation
		data map[string]any
		tok  string
		code logical.Code
	}{
		{"sys/rotate/root", logical.UpdateOperation, nil, root, logical.CodeInvalidRequest},
		{"sys/rekey-recovery-key/init", logical.UpdateOperation, map[string]any{"secret_shares": 1, "secret_threshold": 1}, root, logical.CodeInvalidRequest},
		{"sys/rekey/init", logical.UpdateOperation, map[string]any{"secret_shares": 3, "secret_threshold": 5}, root, logical.CodeInvalidRequest},
		{"sys/rekey/init", logical.UpdateOperation, map[string]any{"secret_shares": 3, "secret_threshold": 2, "pgp_keys": []any{"k"}}, root, logical.CodeInvalidRequest},
		{"sys/rekey/update", logical.UpdateOperation, map[string]any{"key": "00", "nonce": "x"}, root, logical.CodeInvalidRequest},
		{"sys/generate-root/attempt", logical.UpdateOperation, map[string]any{"otp": "short"}, "", logical.CodeInvalidRequest},
		{"sys/generate-root/update", logical.UpdateOperation, map[string]any{"key": "00", "nonce": "x"}, "", logical.CodeInvalidRequest},
		{"sys/rekey/init", logical.ReadOperation, nil, "", logical.CodePermissionDenied},
		{"sys/rotate", logical.UpdateOperation, nil, "", logical.CodePermissionDenied},
	} {
		_, err := sysCall(t, c, tc.tok, tc.op, tc.path, tc.data)
		if logical.CodeOf(err) != tc.code {
			t.Errorf("%s %s %v: %v, want code %d", tc.op, tc.path, tc.data, err, tc.code)
		}
	}
	// A rekey in progress refuses a second one and is cancelled by DELETE.
	if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/init", map[string]any{"secret_shares": 1, "secret_threshold": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/init", map[string]any{"secret_shares": 1, "secret_threshold": 1}); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("second rekey: %v", err)
	}
	if _, err := sysCall(t, c, root, logical.DeleteOperation, "sys/rekey/init", nil); err != nil {
		t.Fatal(err)
	}
	resp, err := sysCall(t, c, root, logical.ReadOperation, "sys/rekey/init", nil)
	if err != nil || resp.Data["started"] != false || resp.Data["required"] != 1 {
		t.Fatalf("after cancel: %v %v", resp, err)
	}
	if errors.Is(err, ErrSealed) {
		t.Fatal("sealed")
	}
}
