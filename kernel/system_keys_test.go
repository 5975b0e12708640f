package kernel

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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

// TestRekeyRequireVerification: with require_verification the new keys
// are handed out but nothing is stored until a threshold of them comes
// back on sys/rekey/verify, so a response lost after the rekey (crash,
// timeout, refused audit entry) cannot leave storage under keys nobody
// holds; the old key keeps working until then.
func TestRekeyRequireVerification(t *testing.T) {
	ctx := context.Background()
	phys := storage.NewInmem()
	c, root, oldKey := newUnsealedCore(t, Config{Storage: phys})
	if err := c.barrier.Put(ctx, "logical/x/secret", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	sealRecords := func() string {
		cfg, _ := phys.Get(ctx, "seal/config")
		rk, _ := phys.Get(ctx, "seal/root-key")
		kr, _ := phys.Get(ctx, "barrier/keyring")
		return string(cfg) + string(rk) + string(kr)
	}
	before := sealRecords()

	resp, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/init",
		map[string]any{"secret_shares": 3, "secret_threshold": 2, "require_verification": true})
	if err != nil || resp.Data["verification_required"] != true {
		t.Fatalf("rekey init with verification: %v %v", resp, err)
	}
	nonce := resp.Data["nonce"].(string)
	resp, err = sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/update", map[string]any{"key": hex.EncodeToString(oldKey), "nonce": nonce})
	if err != nil || resp.Data["complete"] != true || resp.Data["verification_required"] != true {
		t.Fatalf("rekey update: %v %v", resp, err)
	}
	newKeys := resp.Data["keys"].([]string)
	vnonce, _ := resp.Data["verification_nonce"].(string)
	if len(newKeys) != 3 || vnonce == "" || vnonce == nonce {
		t.Fatalf("new keys %d, verification nonce %q", len(newKeys), vnonce)
	}
	if sealRecords() != before {
		t.Fatal("storage changed before the new keys were verified")
	}
	if err := c.seal.VerifyKey(ctx, oldKey); err != nil {
		t.Fatalf("the old key stopped working before verification: %v", err)
	}
	if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/update", map[string]any{"key": hex.EncodeToString(oldKey), "nonce": nonce}); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("update after completion: %v", err)
	}
	resp, err = sysCall(t, c, root, logical.ReadOperation, "sys/rekey/verify", nil)
	if err != nil || resp.Data["started"] != true || resp.Data["nonce"] != vnonce || resp.Data["t"] != 2 || resp.Data["n"] != 3 || resp.Data["progress"] != 0 {
		t.Fatalf("verify status: %v %v", resp, err)
	}
	verify := func(key, nonce string) (*Response, error) {
		return sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/verify", map[string]any{"key": key, "nonce": nonce})
	}
	if _, err := verify(newKeys[0], "wrong"); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("verify with a wrong nonce: %v", err)
	}
	if resp, err := verify(newKeys[0], vnonce); err != nil || resp.Data["complete"] != false || resp.Data["progress"] != 1 {
		t.Fatalf("verify 1: %v %v", resp, err)
	}
	// DELETE restarts the verification with a new nonce; the keys stay.
	if _, err := sysCall(t, c, root, logical.DeleteOperation, "sys/rekey/verify", nil); err != nil {
		t.Fatal(err)
	}
	resp, _ = sysCall(t, c, root, logical.ReadOperation, "sys/rekey/verify", nil)
	if resp.Data["progress"] != 0 || resp.Data["nonce"] == vnonce {
		t.Fatalf("after restart: %v", resp.Data)
	}
	vnonce = resp.Data["nonce"].(string)
	// Shares of another key do not verify, and reset the progress.
	wrong := []byte(newKeys[1])
	wrong[5] ^= 1
	if wrong[5] > 'f' || (wrong[5] > '9' && wrong[5] < 'a') {
		wrong[5] = '0'
	}
	verify(newKeys[0], vnonce)
	if _, err := verify(string(wrong), vnonce); logical.CodeOf(err) != logical.CodeInvalidRequest || sealRecords() != before {
		t.Fatalf("wrong new share: %v", err)
	}
	verify(newKeys[2], vnonce)
	if resp, err := verify(newKeys[1], vnonce); err != nil || resp.Data["complete"] != true {
		t.Fatalf("verify done: %v %v", resp, err)
	}
	if sealRecords() == before {
		t.Fatal("the verified rekey was not stored")
	}
	resp, _ = sysCall(t, c, root, logical.ReadOperation, "sys/rekey/init", nil)
	if resp.Data["started"] != false {
		t.Fatalf("rekey still in progress: %v", resp.Data)
	}

	// The old key no longer unseals; two new ones do, and data is intact.
	if err := c.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, oldKey); err == nil {
		t.Fatal("the old key still unseals")
	}
	for _, k := range []string{newKeys[2], newKeys[0]} {
		b, _ := hex.DecodeString(k)
		if _, err := c.Unseal(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := c.barrier.Get(ctx, "logical/x/secret"); err != nil || string(v) != "kept" {
		t.Fatalf("after the verified rekey: %q %v", v, err)
	}
}

// TestRekeyVerificationCancelKeepsOldKeys: cancelling a rekey that waits
// for verification stores nothing; sealing forgets the attempt.
func TestRekeyVerificationCancelKeepsOldKeys(t *testing.T) {
	ctx := context.Background()
	phys := storage.NewInmem()
	c, root, oldKey := newUnsealedCore(t, Config{Storage: phys})
	rk, _ := phys.Get(ctx, "seal/root-key")
	for _, cancel := range []func(){
		func() { sysCall(t, c, root, logical.DeleteOperation, "sys/rekey/init", nil) },
		func() {
			c.Seal(ctx)
			if _, err := c.Unseal(ctx, oldKey); err != nil {
				t.Fatal(err)
			}
		},
	} {
		resp, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/init",
			map[string]any{"secret_shares": 1, "secret_threshold": 1, "require_verification": true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rekey/update", map[string]any{"key": hex.EncodeToString(oldKey), "nonce": resp.Data["nonce"]}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := sysCall(t, c, root, logical.ReadOperation, "sys/rekey/verify", nil); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Fatalf("verification after cancel: %v", err)
		}
		if now, _ := phys.Get(ctx, "seal/root-key"); string(now) != string(rk) {
			t.Fatal("a cancelled rekey changed storage")
		}
	}
	if s := fmt.Sprintf("%v %+v", &rekeyAttempt{}, &genRootAttempt{otp: "secret-otp"}); strings.Contains(s, "secret-otp") {
		t.Fatalf("attempts print their secrets: %s", s)
	}
}

// TestRotateReencryptWhileRunning: sys/rotate with reencrypt while a
// re-encryption runs says it did not start one (it used to answer 204
// as if it had).
func TestRotateReencryptWhileRunning(t *testing.T) {
	c, root, _ := newUnsealedCore(t, Config{})
	m := c.unsealed.keys
	m.mu.Lock()
	m.reencrypt.Running = true
	m.mu.Unlock()
	resp, err := sysCall(t, c, root, logical.UpdateOperation, "sys/rotate", map[string]any{"reencrypt": true})
	if err != nil || resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "already running") {
		t.Fatalf("rotate with a re-encryption running: %v %v", resp, err)
	}
	m.mu.Lock()
	m.reencrypt.Running = false
	m.mu.Unlock()
}

// TestEncryptionCountSurvivesSeal: the encryptions made since the last
// periodic check are persisted when the server seals, so a restart does
// not forget them (the count guards AES-GCM's 2^32 limit).
func TestEncryptionCountSurvivesSeal(t *testing.T) {
	ctx := context.Background()
	c, _, key := newUnsealedCore(t, Config{KeyRotationCheckInterval: time.Hour})
	for i := range 40 {
		if err := c.barrier.Put(ctx, fmt.Sprintf("logical/x/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	_, _, before := c.barrier.KeyStatus()
	if err := c.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, _, after := c.barrier.KeyStatus(); after < before {
		t.Fatalf("after seal and unseal: %d encryptions, was %d", after, before)
	}
}
