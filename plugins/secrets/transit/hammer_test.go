package transit

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// Encryption, decryption and rewrapping run while the key is rotated and
// reconfigured; every ciphertext produced decrypts afterwards and no
// request fails. Run with -race.
func TestHammerRotateWhileEncrypting(t *testing.T) {
	e := newEnv(t)
	e.createKey("hot", nil)
	const workers, perWorker, rotations = 8, 150, 30
	var (
		mu  sync.Mutex // protects cts
		cts = map[string]string{}
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				pt := fmt.Sprintf("w%d-%d", w, i)
				resp, err := e.do(logical.UpdateOperation, "encrypt/hot", map[string]any{"plaintext": b64(pt)})
				if err != nil {
					t.Errorf("encrypt: %v", err)
					return
				}
				ct := resp.Data["ciphertext"].(string)
				if _, err := e.do(logical.UpdateOperation, "decrypt/hot", map[string]any{"ciphertext": ct}); err != nil {
					t.Errorf("decrypt: %v", err)
					return
				}
				if _, err := e.do(logical.UpdateOperation, "rewrap/hot", map[string]any{"ciphertext": ct}); err != nil {
					t.Errorf("rewrap: %v", err)
					return
				}
				mu.Lock()
				cts[ct] = pt
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rotations {
			if _, err := e.do(logical.UpdateOperation, "keys/hot/rotate", nil); err != nil {
				t.Errorf("rotate: %v", err)
				return
			}
			if _, err := e.do(logical.UpdateOperation, "keys/hot/config", map[string]any{"deletion_allowed": i%2 == 0}); err != nil {
				t.Errorf("config: %v", err)
				return
			}
			if _, err := e.do(logical.ReadOperation, "keys/hot", nil); err != nil {
				t.Errorf("read: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	d := wire(t, e.ok(logical.ReadOperation, "keys/hot", nil))
	if d["latest_version"] != float64(rotations+1) {
		t.Fatalf("latest_version %v after %d rotations", d["latest_version"], rotations)
	}
	for ct, pt := range cts {
		if got := e.decrypt("hot", ct, nil); got != pt {
			t.Fatalf("%s decrypts to %q, want %q", ct, got, pt)
		}
	}
}

// Concurrent upserts of one new key create it once: every ciphertext
// decrypts (a lost race would leave some under a key that was replaced).
func TestHammerConcurrentUpsert(t *testing.T) {
	e := newEnv(t)
	const workers = 16
	var wg sync.WaitGroup
	cts := make([]string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 4 {
				resp, err := e.do(logical.CreateOperation, fmt.Sprintf("encrypt/new-%d", k), map[string]any{"plaintext": b64(fmt.Sprint(w))})
				if err != nil {
					t.Errorf("upsert: %v", err)
					return
				}
				if k == 0 {
					cts[w] = resp.Data["ciphertext"].(string)
				}
			}
		}()
	}
	wg.Wait()
	for w, ct := range cts {
		if got := e.decrypt("new-0", ct, nil); got != fmt.Sprint(w) {
			t.Fatalf("worker %d: %q", w, got)
		}
	}
	if d := wire(t, e.ok(logical.ReadOperation, "keys/new-0", nil)); d["latest_version"] != 1.0 {
		t.Fatalf("latest_version %v", d["latest_version"])
	}
}

// Automatic rotation under concurrent use rotates once per period.
func TestHammerAutoRotate(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", map[string]any{"auto_rotate_period": "1h"})
	e.clock.Advance(61 * 60 * 1e9)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.do(logical.UpdateOperation, "encrypt/k", map[string]any{"plaintext": b64("x")})
			if err != nil {
				t.Errorf("encrypt: %v", err)
				return
			}
			if ct := resp.Data["ciphertext"].(string); !strings.HasPrefix(ct, "vault:v2:") {
				t.Errorf("ciphertext %s", ct)
			}
		}()
	}
	wg.Wait()
	if d := wire(t, e.ok(logical.ReadOperation, "keys/k", nil)); d["latest_version"] != 2.0 {
		t.Fatalf("latest_version %v: rotated more than once", d["latest_version"])
	}
}
