package barrier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/storage/storagetest"
	"github.com/wardproject/ward/sdk/logical"
)

var ctx = context.Background()

func randomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, barrier.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// newUnsealed returns an initialised, unsealed barrier over phys.
func newUnsealed(t testing.TB, phys storage.Backend) (*barrier.Barrier, []byte) {
	t.Helper()
	root := randomKey(t)
	b := barrier.New(phys)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	return b, root
}

// backend adapts a Barrier to storage.Backend so the storage conformance
// suite can check that the barrier keeps the same contract.
type backend struct {
	*barrier.Barrier
}

func (b backend) Close() error { b.Seal(); return nil }

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, _ := newUnsealed(t, storage.NewInmem())
		return backend{b}
	})
}

func TestRoundTrip(t *testing.T) {
	phys := storage.NewInmem()
	b := barrier.New(phys)
	if ok, err := b.Initialized(ctx); err != nil || ok {
		t.Fatalf("Initialized before Initialize = %v, %v", ok, err)
	}
	if err := b.Unseal(ctx, randomKey(t)); !errors.Is(err, barrier.ErrNotInitialized) {
		t.Fatalf("Unseal before Initialize: err = %v, want ErrNotInitialized", err)
	}
	root := randomKey(t)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Initialized(ctx); err != nil || !ok {
		t.Fatalf("Initialized after Initialize = %v, %v", ok, err)
	}
	if !b.Sealed() {
		t.Fatal("Initialize unsealed the barrier")
	}
	if err := b.Initialize(ctx, root); !errors.Is(err, barrier.ErrAlreadyInitialized) {
		t.Fatalf("second Initialize: err = %v, want ErrAlreadyInitialized", err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "a/b", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "a/b")
	if err != nil || string(got) != "secret" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	term, installed, n := b.KeyStatus()
	if term != 1 || installed.IsZero() || n != 1 {
		t.Fatalf("KeyStatus = %d, %v, %d; want term 1, a time, 1 encryption", term, installed, n)
	}

	// A second barrier on the same storage (a restart) reads it back.
	b2 := barrier.New(phys)
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Get(ctx, "a/b"); err != nil || string(got) != "secret" {
		t.Fatalf("after restart Get = %q, %v", got, err)
	}
}

func TestRootKeyLength(t *testing.T) {
	b := barrier.New(storage.NewInmem())
	for _, n := range []int{0, 16, 31, 33, 64} {
		if err := b.Initialize(ctx, make([]byte, n)); !errors.Is(err, barrier.ErrInvalidRootKey) {
			t.Errorf("Initialize with %d-byte key: err = %v", n, err)
		}
		if err := b.Unseal(ctx, make([]byte, n)); !errors.Is(err, barrier.ErrInvalidRootKey) {
			t.Errorf("Unseal with %d-byte key: err = %v", n, err)
		}
	}
}

func TestWrongRootKey(t *testing.T) {
	phys := storage.NewInmem()
	b, root := newUnsealed(t, phys)
	if err := b.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	wrong := randomKey(t)

	// While unsealed, only the root key in use is accepted.
	if err := b.Unseal(ctx, wrong); !errors.Is(err, barrier.ErrBadKey) {
		t.Fatalf("Unseal of an unsealed barrier with another key: err = %v, want ErrBadKey", err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal of an unsealed barrier with its key: %v", err)
	}

	b2 := barrier.New(phys)
	err := b2.Unseal(ctx, wrong)
	if !errors.Is(err, barrier.ErrBadKey) {
		t.Fatalf("Unseal with wrong key: err = %v, want ErrBadKey", err)
	}
	for _, enc := range []string{string(wrong), hex.EncodeToString(wrong), base64.StdEncoding.EncodeToString(wrong)} {
		if strings.Contains(err.Error(), enc) {
			t.Fatal("error message contains the key")
		}
	}
	if !b2.Sealed() {
		t.Fatal("barrier unsealed with the wrong key")
	}
	if _, err := b2.Get(ctx, "k"); !errors.Is(err, barrier.ErrSealed) {
		t.Fatalf("Get after failed unseal: err = %v, want ErrSealed", err)
	}
}

func TestRecordFormatAndTampering(t *testing.T) {
	phys := storage.NewInmem()
	b, _ := newUnsealed(t, phys)
	value := []byte("the value")
	if err := b.Put(ctx, "a", value); err != nil {
		t.Fatal(err)
	}
	raw, err := phys.Get(ctx, "data/a")
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != 1 || binary.BigEndian.Uint32(raw[1:5]) != 1 || len(raw) != 1+4+12+len(value)+16 {
		t.Fatalf("record header/length wrong: version %d, term %d, len %d", raw[0], binary.BigEndian.Uint32(raw[1:5]), len(raw))
	}

	mutate := func(f func([]byte) []byte) []byte { return f(bytes.Clone(raw)) }
	tests := []struct {
		name string
		key  string // where the record is planted
		rec  []byte
	}{
		{"moved to another key", "b", raw},
		{"moved into a folder", "x/a", raw},
		{"flipped ciphertext bit", "a", mutate(func(r []byte) []byte { r[len(r)-20] ^= 1; return r })},
		{"flipped tag bit", "a", mutate(func(r []byte) []byte { r[len(r)-1] ^= 1; return r })},
		{"flipped nonce bit", "a", mutate(func(r []byte) []byte { r[6] ^= 1; return r })},
		{"unknown version", "a", mutate(func(r []byte) []byte { r[0] = 2; return r })},
		{"unknown term", "a", mutate(func(r []byte) []byte { binary.BigEndian.PutUint32(r[1:5], 9); return r })},
		{"root term", "a", mutate(func(r []byte) []byte { binary.BigEndian.PutUint32(r[1:5], 0); return r })},
		{"truncated", "a", raw[:20]},
		{"empty", "a", []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := phys.Put(ctx, "data/"+tt.key, tt.rec); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, tt.key)
			if !errors.Is(err, barrier.ErrCorrupt) {
				t.Fatalf("Get = %q, %v; want ErrCorrupt", got, err)
			}
			if strings.Contains(err.Error(), string(value)) {
				t.Fatal("error message contains the value")
			}
		})
	}
}

func TestRotate(t *testing.T) {
	phys := storage.NewInmem()
	b, root := newUnsealed(t, phys)
	want := map[string]string{}
	write := func(term uint32) {
		t.Helper()
		for i := range 3 {
			k := fmt.Sprintf("t%d/%d", term, i)
			v := fmt.Sprintf("value %d under term %d", i, term)
			if err := b.Put(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
			want[k] = v
			raw, err := phys.Get(ctx, "data/"+k)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint32(raw[1:5]); got != term {
				t.Fatalf("%s written under term %d, want %d", k, got, term)
			}
		}
		// Overwriting an old entry re-encrypts it under the active term.
		if term > 1 {
			k := "t1/0"
			if err := b.Put(ctx, k, []byte("rewritten")); err != nil {
				t.Fatal(err)
			}
			want[k] = "rewritten"
		}
	}
	checkAll := func(b *barrier.Barrier) {
		t.Helper()
		for k, v := range want {
			got, err := b.Get(ctx, k)
			if err != nil || string(got) != v {
				t.Fatalf("Get(%s) = %q, %v; want %q", k, got, err, v)
			}
		}
	}

	write(1)
	for wantTerm := uint32(2); wantTerm <= 4; wantTerm++ {
		term, err := b.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if term != wantTerm {
			t.Fatalf("Rotate = %d, want %d", term, wantTerm)
		}
		if got, _, n := b.KeyStatus(); got != wantTerm || n != 0 {
			t.Fatalf("KeyStatus = term %d, %d encryptions; want %d, 0", got, n, wantTerm)
		}
		write(wantTerm)
		checkAll(b)
	}
	if _, _, n := b.KeyStatus(); n != 4 {
		t.Fatalf("encryptions on term 4 = %d, want 4", n)
	}

	// The rotated keyring is what a restart sees.
	b2 := barrier.New(phys)
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if term, _, _ := b2.KeyStatus(); term != 4 {
		t.Fatalf("after restart active term = %d, want 4", term)
	}
	checkAll(b2)
}

// failingBackend fails writes to one physical key.
type failingBackend struct {
	storage.Backend
	failKey atomic.Value // string
}

var errInjected = errors.New("injected failure")

func (f *failingBackend) Put(ctx context.Context, key string, value []byte) error {
	if k, _ := f.failKey.Load().(string); k == key {
		return errInjected
	}
	return f.Backend.Put(ctx, key, value)
}

func TestRotateWriteFailureChangesNothing(t *testing.T) {
	phys := &failingBackend{Backend: storage.NewInmem()}
	b, root := newUnsealed(t, phys)
	phys.failKey.Store("barrier/keyring")
	if _, err := b.Rotate(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("Rotate: err = %v, want the injected failure", err)
	}
	if term, _, _ := b.KeyStatus(); term != 1 {
		t.Fatalf("after a failed Rotate the active term is %d, want 1", term)
	}
	// Writes after the failure must use a term that is on disk.
	if err := b.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	b2 := barrier.New(phys)
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("after restart Get = %q, %v", got, err)
	}
}

func TestInitializeExtraOps(t *testing.T) {
	phys := storage.NewInmem()
	b := barrier.New(phys)
	for _, key := range []string{"barrier/keyring", "barrier/other", "data/x"} {
		err := b.Initialize(ctx, randomKey(t), storage.Op{Kind: storage.OpPut, Key: key, Value: []byte("x")})
		if !errors.Is(err, barrier.ErrReservedKey) {
			t.Errorf("Initialize with extra op on %s: err = %v, want ErrReservedKey", key, err)
		}
	}
	if ok, _ := b.Initialized(ctx); ok {
		t.Fatal("a rejected Initialize wrote the keyring")
	}
	err := b.Initialize(ctx, randomKey(t),
		storage.Op{Kind: storage.OpPut, Key: "seal/config", Value: []byte("cfg")},
		storage.Op{Kind: storage.OpPut, Key: "", Value: []byte("bad")}, // fails the whole batch
	)
	if !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("Initialize with a bad extra op: err = %v", err)
	}
	if ok, _ := b.Initialized(ctx); ok {
		t.Fatal("keyring written although its batch failed")
	}
	if err := b.Initialize(ctx, randomKey(t), storage.Op{Kind: storage.OpPut, Key: "seal/config", Value: []byte("cfg")}); err != nil {
		t.Fatal(err)
	}
	if v, _ := phys.Get(ctx, "seal/config"); string(v) != "cfg" {
		t.Fatalf("extra op not written: %q", v)
	}
}

func TestSealedOps(t *testing.T) {
	b, _ := newUnsealed(t, storage.NewInmem())
	if err := b.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	v := b.View("logical/x/")
	b.Seal()
	if !b.Sealed() {
		t.Fatal("Sealed() = false after Seal")
	}
	b.Seal() // idempotent

	_, getErr := b.Get(ctx, "k")
	_, missingErr := b.Get(ctx, "missing")
	_, listErr := b.List(ctx, "")
	_, rotateErr := b.Rotate(ctx)
	_, vGetErr := v.Get(ctx, "k")
	_, vListErr := v.List(ctx, "")
	errs := map[string]error{
		"Get":         getErr,
		"Get missing": missingErr,
		"Put":         b.Put(ctx, "k", []byte("v")),
		"Delete":      b.Delete(ctx, "k"),
		"List":        listErr,
		"Batch":       b.Batch(ctx, []storage.Op{{Kind: storage.OpDelete, Key: "k"}}),
		"Rotate":      rotateErr,
		"View.Get":    vGetErr,
		"View.Put":    v.Put(ctx, &logical.StorageEntry{Key: "k", Value: []byte("v")}),
		"View.Delete": v.Delete(ctx, "k"),
		"View.List":   vListErr,
	}
	for op, err := range errs {
		if !errors.Is(err, barrier.ErrSealed) {
			t.Errorf("%s while sealed: err = %v, want ErrSealed", op, err)
		}
		if logical.CodeOf(err) != logical.CodeUnavailable {
			t.Errorf("%s while sealed: code = %v, want CodeUnavailable", op, logical.CodeOf(err))
		}
	}
	if term, installed, n := b.KeyStatus(); term != 0 || !installed.IsZero() || n != 0 {
		t.Errorf("KeyStatus while sealed = %d, %v, %d; want zeros", term, installed, n)
	}
}

func TestNoPlaintextInStorage(t *testing.T) {
	phys := storage.NewInmem()
	b, root := newUnsealed(t, phys)
	const marker = "PLAINTEXT-MARKER-7f3a9c"
	if err := b.Put(ctx, "a/b", []byte(marker)); err != nil {
		t.Fatal(err)
	}
	if err := b.Batch(ctx, []storage.Op{{Kind: storage.OpPut, Key: "batched", Value: []byte("x" + marker + "x")}}); err != nil {
		t.Fatal(err)
	}
	if err := b.View("logical/u/").Put(ctx, &logical.StorageEntry{Key: "k", Value: []byte(marker)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "after-rotate", []byte(marker)); err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{[]byte(marker), root, []byte(hex.EncodeToString(root)), []byte(base64.StdEncoding.EncodeToString(root))}
	keys := walk(t, phys, "")
	if len(keys) < 5 {
		t.Fatalf("walked only %d physical keys", len(keys))
	}
	for _, k := range keys {
		raw, err := phys.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(raw, n) {
				t.Fatalf("physical key %s holds plaintext or the root key", k)
			}
		}
	}
}

// walk returns every physical key under prefix.
func walk(t *testing.T, phys storage.Backend, prefix string) []string {
	t.Helper()
	children, err := phys.List(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range children {
		if strings.HasSuffix(c, "/") {
			out = append(out, walk(t, phys, prefix+c)...)
		} else {
			out = append(out, prefix+c)
		}
	}
	return out
}

func TestViewConfinement(t *testing.T) {
	b, _ := newUnsealed(t, storage.NewInmem())
	a := b.View("logical/a/")
	ab := b.View("logical/ab/")
	if a.Prefix() != "logical/a/" {
		t.Fatalf("Prefix = %q", a.Prefix())
	}
	put := func(v *barrier.View, k, val string) {
		t.Helper()
		if err := v.Put(ctx, &logical.StorageEntry{Key: k, Value: []byte(val)}); err != nil {
			t.Fatalf("Put(%s%s): %v", v.Prefix(), k, err)
		}
	}
	put(a, "x", "a's")
	put(a, "dir/y", "a's y")
	put(ab, "x", "ab's")
	if err := b.Put(ctx, "outside", []byte("o")); err != nil {
		t.Fatal(err)
	}

	if e, err := a.Get(ctx, "x"); err != nil || string(e.Value) != "a's" || e.Key != "x" {
		t.Fatalf("a.Get(x) = %+v, %v", e, err)
	}
	if e, err := ab.Get(ctx, "x"); err != nil || string(e.Value) != "ab's" {
		t.Fatalf("ab.Get(x) = %+v, %v", e, err)
	}
	if e, err := a.Get(ctx, "missing"); err != nil || e != nil {
		t.Fatalf("a.Get(missing) = %+v, %v; want nil, nil", e, err)
	}
	if keys, err := a.List(ctx, ""); err != nil || fmt.Sprint(keys) != "[dir/ x]" {
		t.Fatalf("a.List() = %q, %v", keys, err)
	}
	if v, err := b.Get(ctx, "logical/a/dir/y"); err != nil || string(v) != "a's y" {
		t.Fatalf("view key not at prefix+key: %q, %v", v, err)
	}
	sub := a.SubView("dir/")
	if sub.Prefix() != "logical/a/dir/" {
		t.Fatalf("SubView prefix = %q", sub.Prefix())
	}
	if e, err := sub.Get(ctx, "y"); err != nil || string(e.Value) != "a's y" {
		t.Fatalf("sub.Get(y) = %+v, %v", e, err)
	}
	if err := a.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if e, _ := ab.Get(ctx, "x"); e == nil {
		t.Fatal("deleting a/x removed ab/x")
	}

	bad := []string{"", "..", "../outside", "../../outside", "a/../b", "a/..", "/x", "/", "//x"}
	for _, k := range bad {
		_, getErr := a.Get(ctx, k)
		errs := map[string]error{
			"Get":    getErr,
			"Put":    a.Put(ctx, &logical.StorageEntry{Key: k, Value: []byte("v")}),
			"Delete": a.Delete(ctx, k),
		}
		if k != "" { // an empty List prefix lists the view's top level
			_, errs["List"] = a.List(ctx, k)
		}
		for op, err := range errs {
			if logical.CodeOf(err) != logical.CodeInvalidRequest {
				t.Errorf("%s(%q): err = %v, want CodeInvalidRequest", op, k, err)
			}
			var le *logical.Error
			if !errors.As(err, &le) {
				t.Errorf("%s(%q): err %T is not a *logical.Error", op, k, err)
			}
		}
	}
	if err := a.Put(ctx, nil); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Errorf("Put(nil): err = %v", err)
	}
	// Dots that are not a ".." segment are ordinary key text.
	for _, k := range []string{"a..b", "...", "a/.../b", ".hidden", "x.."} {
		put(a, k, "ok")
	}

	for _, p := range []string{"logical/a", "/logical/a/", "logical/../", "../"} {
		v := b.View(p)
		if _, err := v.Get(ctx, "k"); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Errorf("View(%q).Get: err = %v, want CodeInvalidRequest", p, err)
		}
		if _, err := v.List(ctx, ""); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Errorf("View(%q).List: err = %v, want CodeInvalidRequest", p, err)
		}
	}
	for _, p := range []string{"../", "/x/", "x", "x/../"} {
		if _, err := a.SubView(p).Get(ctx, "k"); logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Errorf("SubView(%q).Get: err = %v, want CodeInvalidRequest", p, err)
		}
	}
}

// TestHammer runs readers, writers, listers, views and rotations at once,
// with the barrier sealed and unsealed underneath them. Run with -race.
func TestHammer(t *testing.T) {
	phys := storage.NewInmem()
	b, root := newUnsealed(t, phys)
	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	var stop atomic.Bool
	var churn sync.WaitGroup
	churn.Add(1)
	go func() { // rotate, seal and unseal while the workers run
		defer churn.Done()
		for i := 0; !stop.Load(); i++ {
			if i%5 == 4 {
				b.Seal()
				if err := b.Unseal(ctx, root); err != nil {
					t.Errorf("Unseal: %v", err)
					return
				}
			} else if _, err := b.Rotate(ctx); err != nil && !errors.Is(err, barrier.ErrSealed) {
				t.Errorf("Rotate: %v", err)
				return
			}
		}
	}()
	final := make([]map[string]string, workers)
	for w := range workers {
		final[w] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := b.View(fmt.Sprintf("logical/%d/", w))
			for i := range perWorker {
				k := fmt.Sprintf("k%d", i%10)
				val := fmt.Sprintf("%d-%d", w, i)
				err := v.Put(ctx, &logical.StorageEntry{Key: k, Value: []byte(val)})
				if errors.Is(err, barrier.ErrSealed) {
					continue
				}
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				final[w][k] = val
				e, err := v.Get(ctx, k)
				if errors.Is(err, barrier.ErrSealed) {
					continue
				}
				if err != nil || e == nil || string(e.Value) != val {
					t.Errorf("Get(%s) = %+v, %v; want %s", k, e, err, val)
					return
				}
				if _, err := v.List(ctx, ""); err != nil && !errors.Is(err, barrier.ErrSealed) {
					t.Errorf("List: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	churn.Wait()
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	for w, m := range final {
		v := b.View(fmt.Sprintf("logical/%d/", w))
		for k, want := range m {
			e, err := v.Get(ctx, k)
			if err != nil || e == nil || string(e.Value) != want {
				t.Fatalf("worker %d key %s = %+v, %v; want %s", w, k, e, err, want)
			}
		}
	}
}

func BenchmarkBarrierPut(b *testing.B) {
	br, _ := newUnsealed(b, storage.NewInmem())
	value := bytes.Repeat([]byte("v"), 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if err := br.Put(ctx, "logical/0f1e2d3c/some/key", value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBarrierGet(b *testing.B) {
	br, _ := newUnsealed(b, storage.NewInmem())
	value := bytes.Repeat([]byte("v"), 256)
	if err := br.Put(ctx, "logical/0f1e2d3c/some/key", value); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := br.Get(ctx, "logical/0f1e2d3c/some/key"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkViewGetParallel(b *testing.B) {
	br, _ := newUnsealed(b, storage.NewInmem())
	v := br.View("logical/0f1e2d3c/")
	value := bytes.Repeat([]byte("v"), 256)
	if err := v.Put(ctx, &logical.StorageEntry{Key: "some/key", Value: value}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Get(ctx, "some/key"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestReload: a standby's barrier, sharing storage with the active node's,
// reads what the active node wrote under a term it rotated to after
// Reload; after a rekey elsewhere its root key no longer opens the
// keyring and Reload says so.
func TestReload(t *testing.T) {
	ctx := context.Background()
	phys := storage.NewInmem()
	active, root := newUnsealed(t, phys)
	standby := barrier.New(phys)
	if err := standby.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := active.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := active.Put(ctx, "k", []byte("under the new term")); err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Get(ctx, "k"); err == nil {
		t.Fatal("read an entry of a term the standby does not hold yet")
	}
	if err := standby.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := standby.Get(ctx, "k"); err != nil || string(v) != "under the new term" {
		t.Fatalf("after Reload: %q, %v", v, err)
	}
	newRoot := make([]byte, barrier.KeySize)
	newRoot[0] = 1
	if err := active.Reseal(ctx, newRoot, nil); err != nil {
		t.Fatal(err)
	}
	if err := standby.Reload(ctx); !errors.Is(err, barrier.ErrBadKey) {
		t.Fatalf("Reload after a rekey: %v, want ErrBadKey", err)
	}
	standby.Seal()
	if err := standby.Reload(ctx); !errors.Is(err, barrier.ErrSealed) {
		t.Fatalf("Reload while sealed: %v, want ErrSealed", err)
	}
}
