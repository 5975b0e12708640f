package barrier_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/storage"
)

// softWrapper is a SealWrapper with a software AES-GCM key, standing in
// for an HSM; calls counts its uses.
type softWrapper struct {
	aead  cipher.AEAD
	calls atomic.Int64
}

func newSoftWrapper(t testing.TB) *softWrapper {
	k := make([]byte, 32)
	rand.Read(k)
	blk, _ := aes.NewCipher(k)
	aead, _ := cipher.NewGCM(blk)
	return &softWrapper{aead: aead}
}

func (w *softWrapper) SealWrap(_ context.Context, pt, aad []byte) ([]byte, error) {
	w.calls.Add(1)
	n := make([]byte, 12)
	rand.Read(n)
	return w.aead.Seal(n, n, pt, aad), nil
}

func (w *softWrapper) SealUnwrap(_ context.Context, blob, aad []byte) ([]byte, error) {
	w.calls.Add(1)
	if len(blob) < 12 {
		return nil, errors.New("short blob")
	}
	pt, err := w.aead.Open(nil, blob[:12], blob[12:], aad)
	if err != nil {
		return nil, errors.New("wrapper: does not open")
	}
	return pt, nil
}

var wrapped = []string{"sys/token/salt", "core/audit-keys/"}

func TestSealWrap(t *testing.T) {
	phys := storage.NewInmem()
	w := newSoftWrapper(t)
	b := barrier.New(phys)
	b.SetSealWrap(w, wrapped...)
	root := randomKey(t)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if kr, _ := phys.Get(ctx, "barrier/keyring"); kr[0] != 2 {
		t.Fatalf("keyring version %d, want 2 (seal-wrapped)", kr[0])
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"sys/token/salt": "salt", "core/audit-keys/a": "k1", "core/other": "plain"}
	for k, v := range values {
		if err := b.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// Batch and View paths wrap too.
	if err := b.Batch(ctx, []storage.Op{{Kind: storage.OpPut, Key: "core/audit-keys/b", Value: []byte("k2")}}); err != nil {
		t.Fatal(err)
	}
	values["core/audit-keys/b"] = "k2"
	for k, want := range map[string]byte{"sys/token/salt": 2, "core/audit-keys/a": 2, "core/audit-keys/b": 2, "core/other": 1} {
		raw, _ := phys.Get(ctx, "data/"+k)
		if raw[0] != want {
			t.Fatalf("%s: version %d, want %d", k, raw[0], want)
		}
	}
	for k, v := range values {
		if got, err := b.Get(ctx, k); err != nil || string(got) != v {
			t.Fatalf("Get(%s) = %q, %v", k, got, err)
		}
	}
	// Flipping the version byte breaks authentication both ways.
	for _, k := range []string{"sys/token/salt", "core/other"} {
		orig, _ := phys.Get(ctx, "data/"+k)
		flipped := bytes.Clone(orig)
		flipped[0] ^= 3 // 1 <-> 2
		phys.Put(ctx, "data/"+k, flipped)
		if _, err := b.Get(ctx, k); !errors.Is(err, barrier.ErrCorrupt) {
			t.Fatalf("%s with its version flipped: %v", k, err)
		}
		phys.Put(ctx, "data/"+k, orig)
	}

	// Without the wrapper, the keyring does not open; the right one does.
	b.Seal()
	b2 := barrier.New(phys)
	if err := b2.Unseal(ctx, root); !errors.Is(err, barrier.ErrNoSealWrapper) {
		t.Fatalf("Unseal without the wrapper: %v", err)
	}
	b2.SetSealWrap(newSoftWrapper(t), wrapped...)
	if err := b2.Unseal(ctx, root); err == nil {
		t.Fatal("another wrapper opened the keyring")
	}
	b2.SetSealWrap(w, wrapped...)
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}

	// Reseal to no wrapper (a migration to Shamir), with a new root key.
	newRoot := randomKey(t)
	if err := b2.Reseal(ctx, newRoot, nil, storage.Op{Kind: storage.OpPut, Key: "seal/marker", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"barrier/keyring", "data/sys/token/salt", "data/core/audit-keys/a", "data/core/audit-keys/b"} {
		if raw, _ := phys.Get(ctx, k); raw[0] != 1 {
			t.Fatalf("%s still seal-wrapped after Reseal(nil)", k)
		}
	}
	if m, _ := phys.Get(ctx, "seal/marker"); string(m) != "x" {
		t.Fatal("extra op not written")
	}
	b2.Seal()
	b3 := barrier.New(phys)
	if err := b3.Unseal(ctx, root); !errors.Is(err, barrier.ErrBadKey) {
		t.Fatalf("old root key after Reseal: %v", err)
	}
	if err := b3.Unseal(ctx, newRoot); err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		if got, err := b3.Get(ctx, k); err != nil || string(got) != v {
			t.Fatalf("after Reseal Get(%s) = %q, %v", k, got, err)
		}
	}
	if err := b3.Reseal(ctx, nil, nil, storage.Op{Kind: storage.OpPut, Key: "barrier/x"}); !errors.Is(err, barrier.ErrReservedKey) {
		t.Fatalf("Reseal with a reserved key: %v", err)
	}
}

func TestResealFailureChangesNothing(t *testing.T) {
	phys := &failingBackend{Backend: storage.NewInmem()}
	b, root := newUnsealed(t, phys)
	if err := b.Put(ctx, "sys/token/salt", []byte("s")); err != nil {
		t.Fatal(err)
	}
	b.Seal()
	b.SetSealWrap(nil, wrapped...)
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, phys)
	failing := &failingBatch{Backend: phys}
	b2 := barrier.New(failing)
	b2.SetSealWrap(nil, wrapped...)
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b2.Reseal(ctx, randomKey(t), newSoftWrapper(t)); err == nil {
		t.Fatal("Reseal succeeded despite the failed batch")
	}
	if after := snapshot(t, phys); !mapsEqual(before, after) {
		t.Fatal("a failed Reseal changed storage")
	}
	// The barrier still uses the old key and no wrapper.
	if got, err := b2.Get(ctx, "sys/token/salt"); err != nil || string(got) != "s" || b2.SealWrapped() {
		t.Fatalf("after failed Reseal: %q %v wrapped=%v", got, err, b2.SealWrapped())
	}
}

type failingBatch struct{ storage.Backend }

func (f *failingBatch) Batch(context.Context, []storage.Op) error { return errInjected }

func snapshot(t *testing.T, phys storage.Backend) map[string]string {
	out := map[string]string{}
	var walk func(string)
	walk = func(p string) {
		cs, err := phys.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if v, _ := phys.Get(ctx, p+c); v != nil {
				out[p+c] = string(v)
			}
			if c[len(c)-1] == '/' {
				walk(p + c)
			}
		}
	}
	walk("")
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestReencryptUnderWrites re-encrypts while writers overwrite keys: no
// write is lost, every record ends on the active term or newer.
func TestReencryptUnderWrites(t *testing.T) {
	phys := storage.NewInmem()
	w := newSoftWrapper(t)
	b := barrier.New(phys)
	b.SetSealWrap(w, wrapped...)
	root := randomKey(t)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	const n = 600
	for i := range n {
		if err := b.Put(ctx, fmt.Sprintf("k/%03d/v", i), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, "sys/token/salt", []byte("salt")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "folder/", []byte("a key ending in a slash")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	final := make([]string, n)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				v := fmt.Sprintf("new-%d", i)
				if err := b.Put(ctx, fmt.Sprintf("k/%03d/v", i), []byte(v)); err != nil {
					t.Error(err)
					return
				}
				final[i] = v
			}
		}()
	}
	calls := w.calls.Load()
	var progress int
	res, err := b.Reencrypt(ctx, func(barrier.ReencryptResult) { progress++ })
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Term != 3 || res.OldestTerm != 3 || progress == 0 {
		t.Fatalf("result %+v, %d progress calls", res, progress)
	}
	if got := w.calls.Load() - calls; got > int64(n) {
		t.Fatalf("re-encryption called the seal wrapper (%d calls beyond the writers')", got)
	}
	for i := range n {
		got, err := b.Get(ctx, fmt.Sprintf("k/%03d/v", i))
		if err != nil || string(got) != final[i] {
			t.Fatalf("k/%03d/v = %q, %v; want %q (lost write?)", i, got, err, final[i])
		}
	}
	if v, err := b.Get(ctx, "folder/"); err != nil || !bytes.Equal(v, []byte("a key ending in a slash")) {
		t.Fatalf("folder key: %q %v", v, err)
	}
	usage, err := b.TermUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if usage[1] != 0 || usage[2] != 0 || usage[3] == 0 {
		t.Fatalf("terms in use after re-encryption: %v", usage)
	}
	for _, k := range []string{"data/sys/token/salt"} {
		raw, _ := phys.Get(ctx, k)
		if raw[0] != 2 || binary.BigEndian.Uint32(raw[1:5]) != 3 {
			t.Fatalf("%s: version %d term %d", k, raw[0], binary.BigEndian.Uint32(raw[1:5]))
		}
	}
	if got, err := b.Get(ctx, "sys/token/salt"); err != nil || string(got) != "salt" {
		t.Fatalf("salt after re-encryption: %q %v", got, err)
	}
}

// sealingWrapper seals the barrier while it wraps a data entry, as a
// concurrent Seal during a slow HSM call would.
type sealingWrapper struct {
	*softWrapper
	b *barrier.Barrier
}

func (w *sealingWrapper) SealWrap(ctx context.Context, pt, aad []byte) ([]byte, error) {
	if string(aad) != "barrier/keyring" {
		w.b.Seal()
	}
	return w.softWrapper.SealWrap(ctx, pt, aad)
}

// TestResealSealedMidway: a Seal while Reseal waits for the wrapper makes
// Reseal fail with ErrSealed (it used to dereference the zeroed active
// term and panic) and leaves storage as it was.
func TestResealSealedMidway(t *testing.T) {
	phys := storage.NewInmem()
	b, root := newUnsealed(t, phys)
	b.Seal()
	b.SetSealWrap(nil, wrapped...)
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "sys/token/salt", []byte("s")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, phys)
	w := &sealingWrapper{softWrapper: newSoftWrapper(t), b: b}
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return b.Reseal(ctx, randomKey(t), w)
	}()
	if !errors.Is(err, barrier.ErrSealed) {
		t.Fatalf("Reseal sealed midway: %v", err)
	}
	if after := snapshot(t, phys); !mapsEqual(before, after) {
		t.Fatal("a Reseal interrupted by Seal changed storage")
	}
	b.SetSealWrap(nil, wrapped...)
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "sys/token/salt"); err != nil || string(got) != "s" {
		t.Fatalf("after the interrupted Reseal: %q %v", got, err)
	}
}
