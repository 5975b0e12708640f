package transit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// The hot path (encrypt, decrypt, sign, hmac on a cached key) makes no
// storage call.
func TestHotPathMakesNoStorageCall(t *testing.T) {
	cs := &countingStorage{Storage: logical.NewInmemStorage()}
	e := newEnvWith(t, cs)
	e.createKey("k", nil)
	e.createKey("s", map[string]any{"type": "ecdsa-p256"})
	ct := e.encrypt("k", "warm", nil)
	before := cs.count()
	for range 50 {
		ct2 := e.encrypt("k", "x", nil)
		e.decrypt("k", ct, nil)
		e.write("rewrap/k", map[string]any{"ciphertext": ct2})
		e.write("sign/s", map[string]any{"input": b64("m")})
		e.write("hmac/k", map[string]any{"input": b64("m")})
		e.write("datakey/wrapped/k", nil)
	}
	if n := cs.count() - before; n != 0 {
		t.Fatalf("%d storage calls on the hot path", n)
	}
}

// Two backends over one storage behave like two WASM instances of a
// mount: a change made by one is seen by the other after the host's
// invalidation (and not before: the cache is authoritative until then).
func TestInvalidation(t *testing.T) {
	s := logical.NewInmemStorage()
	a, b := newEnvWith(t, s), newEnvWith(t, s)
	a.createKey("k", nil)
	ct := a.encrypt("k", "x", nil)
	if b.decrypt("k", ct, nil) != "x" {
		t.Fatal("b cannot decrypt a's ciphertext")
	}
	a.write("keys/k/rotate", nil)
	if got := b.encrypt("k", "x", nil); !strings.HasPrefix(got, "vault:v1:") {
		t.Fatalf("b saw the rotation without an invalidation: %s", got)
	}
	b.b.InvalidateKey(context.Background(), "policy/k")
	if got := b.encrypt("k", "x", nil); !strings.HasPrefix(got, "vault:v2:") {
		t.Fatalf("after invalidation b encrypts with %s", got)
	}
	// Unknown keys clear everything; config/keys changes nothing.
	a.write("keys/k/rotate", nil)
	b.b.InvalidateKey(context.Background(), "config/keys")
	if got := b.encrypt("k", "x", nil); !strings.HasPrefix(got, "vault:v2:") {
		t.Fatalf("config/keys invalidation dropped the key: %s", got)
	}
	b.b.InvalidateKey(context.Background(), "something/else")
	if b.b.cache.Len() != 0 {
		t.Fatal("unknown key did not clear the cache")
	}
	if got := b.encrypt("k", "x", nil); !strings.HasPrefix(got, "vault:v3:") {
		t.Fatalf("after clear: %s", got)
	}
	// Deletion elsewhere, then invalidation.
	a.write("keys/k/config", map[string]any{"deletion_allowed": true})
	a.ok(logical.DeleteOperation, "keys/k", nil)
	b.b.InvalidateKey(context.Background(), "policy/k")
	b.bad("encrypt/k", map[string]any{"plaintext": b64("x")}, "encryption key not found")
	// "Everything changed" (a WASM host that could not list the keys)
	// drops the cache.
	a.createKey("k3", nil)
	if ia, ok := logical.Backend(a.b).(logical.AllInvalidator); !ok || !ia.InvalidateAll(context.Background()) || a.b.cache.Len() != 0 {
		t.Fatal("InvalidateAll kept the cache")
	}
	// Cleanup drops the cache.
	a.createKey("k2", nil)
	a.b.Cleanup(context.Background())
	if a.b.cache.Len() != 0 {
		t.Fatal("cleanup kept the cache")
	}
}

// Rotation reuses the parsed versions of the previous keyring.
func TestRotationReusesParsedVersions(t *testing.T) {
	e := newEnv(t)
	e.createKey("k", nil)
	kr1, _, _ := e.b.cache.Lookup("k")
	e.write("keys/k/rotate", nil)
	kr2, _, _ := e.b.cache.Lookup("k")
	if kr1 == kr2 || kr1.versions[1] != kr2.versions[1] || kr2.versions[2] == nil {
		t.Fatal("version 1 was re-parsed or the keyring not replaced")
	}
	if kr1.rec.LatestVersion != 1 {
		t.Fatal("the published record was modified in place")
	}
}

func TestStorageFaults(t *testing.T) {
	fs := &faultyStorage{Storage: logical.NewInmemStorage()}
	e := newEnvWith(t, fs)
	e.createKey("k", nil)
	ct := e.encrypt("k", "x", nil)

	// A failed put leaves the stored key and drops the cached one.
	fs.fail = func(op, key string) bool { return op == "put" }
	if _, err := e.do(logical.UpdateOperation, "keys/k/rotate", nil); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("rotate with a failing put: %v", err)
	}
	if _, err := e.do(logical.UpdateOperation, "keys/new", nil); err == nil {
		t.Fatal("create with a failing put")
	}
	fs.mu.Lock()
	fs.fail = nil
	fs.mu.Unlock()
	if got := e.encrypt("k", "x", nil); !strings.HasPrefix(got, "vault:v1:") {
		t.Fatalf("after a failed rotation: %s", got)
	}
	if resp := e.ok(logical.ReadOperation, "keys/new", nil); resp != nil {
		t.Fatal("a failed create left a key")
	}
	// A failed read is an error, never cached as absence.
	e.b.cache.Clear()
	fs.mu.Lock()
	fs.fail = func(op, key string) bool { return op == "get" }
	fs.mu.Unlock()
	if _, err := e.do(logical.UpdateOperation, "decrypt/k", map[string]any{"ciphertext": ct}); err == nil || logical.CodeOf(err) != logical.CodeInternal {
		t.Fatalf("decrypt with a failing get: %v", err)
	}
	fs.mu.Lock()
	fs.fail = func(op, key string) bool { return op == "delete" }
	fs.mu.Unlock()
	e.write("keys/k/config", map[string]any{"deletion_allowed": true}) // get succeeds now
	if _, err := e.do(logical.DeleteOperation, "keys/k", nil); err == nil {
		t.Fatal("delete with a failing delete")
	}
	fs.mu.Lock()
	fs.fail = nil
	fs.mu.Unlock()
	if e.decrypt("k", ct, nil) != "x" {
		t.Fatal("key lost after a failed delete")
	}
}

// A corrupt stored record is an internal error that quotes nothing, and
// is logged without its content.
func TestCorruptStoredKey(t *testing.T) {
	s := logical.NewInmemStorage()
	logs := &captureLogger{}
	b, err := newBackend(&logical.BackendConfig{StorageView: s, Logger: logs}, (&fakeClock{t: epoch}).Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, val := range []string{`not json SECRETSECRET`, `{"name":"k","type":"aes256-gcm96","latest_version":1,"min_decryption_version":1,"keys":{"1":{"key":"U0VDUkVUU0VDUkVU","hmac_key":"U0VDUkVUU0VDUkVUU0VDUkVUU0VDUkVUU0VDUkVU"}}}`} {
		_ = s.Put(context.Background(), &logical.StorageEntry{Key: "policy/k", Value: []byte(val)})
		b.cache.Clear()
		_, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/k",
			Data: map[string]any{"plaintext": b64("x")}, Storage: s})
		if err == nil || logical.CodeOf(err) != logical.CodeInternal || err.Error() != "transit: stored key is corrupt" {
			t.Fatalf("corrupt record: %v", err)
		}
	}
	if out := logs.String(); strings.Contains(out, "SECRET") || !strings.Contains(out, "stored key does not parse") {
		t.Fatalf("log: %s", out)
	}
}

type captureLogger struct {
	mu  sync.Mutex // protects buf
	buf strings.Builder
}

func (l *captureLogger) log(msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(&l.buf, msg, args)
}

func (l *captureLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *captureLogger) Debug(msg string, args ...any) { l.log(msg, args...) }
func (l *captureLogger) Info(msg string, args ...any)  { l.log(msg, args...) }
func (l *captureLogger) Warn(msg string, args ...any)  { l.log(msg, args...) }
func (l *captureLogger) Error(msg string, args ...any) { l.log(msg, args...) }
