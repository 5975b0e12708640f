// Package storagetest is the conformance suite for storage.Backend. Every
// implementation (and anything that claims the same contract, such as the
// barrier) runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend { return storage.NewInmem() })
//	}
//
// It lives in a non-test file so other packages can import it; it must never
// be imported by production code.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/wardproject/ward/kernel/storage"
)

// Run exercises the storage.Backend contract. newBackend must return an
// empty backend; Run closes it when each subtest ends.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"GetMissing", testGetMissing},
		{"PutGetOverwrite", testPutGetOverwrite},
		{"Delete", testDelete},
		{"EmptyKey", testEmptyKey},
		{"List", testList},
		{"Batch", testBatch},
		{"BatchAllOrNothing", testBatchAllOrNothing},
		{"BatchVisibility", testBatchVisibility},
		{"NoAliasing", testNoAliasing},
		{"CanceledContext", testCanceledContext},
		{"Hammer", testHammer},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() { _ = b.Close() })
			tt.fn(t, b)
		})
	}
}

func mustPut(t *testing.T, b storage.Backend, key string, value []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, value); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, b storage.Backend, key string) []byte {
	t.Helper()
	v, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func testGetMissing(t *testing.T, b storage.Backend) {
	if v := mustGet(t, b, "missing"); v != nil {
		t.Fatalf("Get(missing) = %q, want nil", v)
	}
}

func testPutGetOverwrite(t *testing.T, b storage.Backend) {
	mustPut(t, b, "k", []byte("one"))
	if v := mustGet(t, b, "k"); string(v) != "one" {
		t.Fatalf("Get = %q, want %q", v, "one")
	}
	mustPut(t, b, "k", []byte("two"))
	if v := mustGet(t, b, "k"); string(v) != "two" {
		t.Fatalf("Get after overwrite = %q, want %q", v, "two")
	}
	// A present key with an empty value is not the same as an absent key.
	mustPut(t, b, "empty", nil)
	if v := mustGet(t, b, "empty"); v == nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %#v, want non-nil empty slice", v)
	}
	// Binary values survive unchanged.
	bin := []byte{0, 1, 2, 0xff, 0xfe, '/', 0}
	mustPut(t, b, "bin", bin)
	if v := mustGet(t, b, "bin"); !bytes.Equal(v, bin) {
		t.Fatalf("Get(bin) = %x, want %x", v, bin)
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	mustPut(t, b, "k", []byte("v"))
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if v := mustGet(t, b, "k"); v != nil {
		t.Fatalf("Get after Delete = %q, want nil", v)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if err := b.Delete(ctx, "never-existed"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func testEmptyKey(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	checks := map[string]error{
		"Put":    b.Put(ctx, "", []byte("v")),
		"Delete": b.Delete(ctx, ""),
		"Batch":  b.Batch(ctx, []storage.Op{{Kind: storage.OpPut, Key: "", Value: []byte("v")}}),
	}
	_, checks["Get"] = b.Get(ctx, "")
	for op, err := range checks {
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("%s with empty key: err = %v, want ErrInvalidKey", op, err)
		}
	}
}

func testList(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for _, k := range []string{
		"a/b", "a/c/d", "a/c/e", "a/c-1", "a/c0", "a/f/",
		"a-x", "a0", "b", "z/y/x/w",
	} {
		mustPut(t, b, k, []byte(k))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"b", "c-1", "c/", "c0", "f/"}},
		{"", []string{"a-x", "a/", "a0", "b", "z/"}},
		{"a/c/", []string{"d", "e"}},
		{"a/c", []string{"-1", "/", "0"}}, // not a folder: plain string prefix
		{"a", []string{"-x", "/", "0"}},
		{"a/f", []string{"/"}},
		{"a/f/", nil}, // the key "a/f/" is not its own child
		{"z/", []string{"y/"}},
		{"z/y/", []string{"x/"}},
		{"z/y/x/", []string{"w"}},
		{"z/y/x/w", nil},
		{"nope/", nil},
		{"\xff", nil},
	}
	for _, tt := range tests {
		got, err := b.List(ctx, tt.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tt.prefix, err)
		}
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}

	// The example from the Backend documentation, on its own.
	for _, k := range []string{"doc/a/b", "doc/a/c/d", "doc/a/c/e", "doc/a/f/"} {
		mustPut(t, b, k, []byte("v"))
	}
	got, err := b.List(ctx, "doc/a/")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "c/", "f/"}; !slices.Equal(got, want) {
		t.Errorf("List(doc/a/) = %q, want %q", got, want)
	}

	// A folder disappears with its last key.
	for _, k := range []string{"doc/a/c/d", "doc/a/c/e"} {
		if err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got, err = b.List(ctx, "doc/a/")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "f/"}; !slices.Equal(got, want) {
		t.Errorf("List(doc/a/) after deletes = %q, want %q", got, want)
	}
}

func testBatch(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	mustPut(t, b, "gone", []byte("x"))
	err := b.Batch(ctx, []storage.Op{
		{Kind: storage.OpPut, Key: "p/1", Value: []byte("1")},
		{Kind: storage.OpPut, Key: "p/2", Value: []byte("2")},
		{Kind: storage.OpDelete, Key: "gone"},
		{Kind: storage.OpDelete, Key: "never-existed"},
		{Kind: storage.OpPut, Key: "p/1", Value: []byte("1b")}, // later op wins
	})
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	for k, want := range map[string]string{"p/1": "1b", "p/2": "2"} {
		if v := mustGet(t, b, k); string(v) != want {
			t.Errorf("Get(%q) = %q, want %q", k, v, want)
		}
	}
	if v := mustGet(t, b, "gone"); v != nil {
		t.Errorf("Get(gone) = %q, want nil", v)
	}
	if err := b.Batch(ctx, nil); err != nil {
		t.Errorf("empty Batch: %v", err)
	}
}

func testBatchAllOrNothing(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	mustPut(t, b, "keep", []byte("old"))
	bad := []struct {
		name string
		last storage.Op
		want error
	}{
		{"empty key", storage.Op{Kind: storage.OpPut, Key: ""}, storage.ErrInvalidKey},
		{"unknown kind", storage.Op{Kind: 0, Key: "x"}, storage.ErrInvalidOp},
		{"kind out of range", storage.Op{Kind: 99, Key: "x"}, storage.ErrInvalidOp},
	}
	for _, tt := range bad {
		err := b.Batch(ctx, []storage.Op{
			{Kind: storage.OpPut, Key: "new", Value: []byte("v")},
			{Kind: storage.OpDelete, Key: "keep"},
			tt.last,
		})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Batch err = %v, want %v", tt.name, err, tt.want)
		}
		if v := mustGet(t, b, "new"); v != nil {
			t.Errorf("%s: a rejected batch applied a put", tt.name)
		}
		if v := mustGet(t, b, "keep"); string(v) != "old" {
			t.Errorf("%s: a rejected batch applied a delete", tt.name)
		}
	}
}

// testBatchVisibility checks that List never sees half a batch.
func testBatchVisibility(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	const n, rounds = 8, 40
	var puts, dels []storage.Op
	for i := range n {
		k := fmt.Sprintf("atom/%d", i)
		puts = append(puts, storage.Op{Kind: storage.OpPut, Key: k, Value: []byte("v")})
		dels = append(dels, storage.Op{Kind: storage.OpDelete, Key: k})
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			keys, err := b.List(ctx, "atom/")
			if err != nil {
				t.Errorf("List: %v", err)
				return
			}
			if len(keys) != 0 && len(keys) != n {
				t.Errorf("List saw %d of %d keys written by one batch", len(keys), n)
				return
			}
		}
	}()
	for i := range rounds {
		ops := puts
		if i%2 == 1 {
			ops = dels
		}
		if err := b.Batch(ctx, ops); err != nil {
			t.Errorf("Batch: %v", err)
			break
		}
	}
	close(done)
	wg.Wait()
}

func testNoAliasing(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	in := []byte("original")
	mustPut(t, b, "k", in)
	copy(in, "XXXXXXXX")
	out := mustGet(t, b, "k")
	if string(out) != "original" {
		t.Fatalf("mutating the slice passed to Put changed the stored value: %q", out)
	}
	copy(out, "YYYYYYYY")
	if v := mustGet(t, b, "k"); string(v) != "original" {
		t.Fatalf("mutating the slice returned by Get changed the stored value: %q", v)
	}
	in = []byte("batched")
	if err := b.Batch(ctx, []storage.Op{{Kind: storage.OpPut, Key: "b", Value: in}}); err != nil {
		t.Fatal(err)
	}
	copy(in, "ZZZZZZZ")
	if v := mustGet(t, b, "b"); string(v) != "batched" {
		t.Fatalf("mutating the slice passed to Batch changed the stored value: %q", v)
	}
}

func testCanceledContext(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Get(ctx, "k"); err == nil {
		t.Error("Get with a canceled context succeeded")
	}
	if err := b.Put(ctx, "k", []byte("v")); err == nil {
		t.Error("Put with a canceled context succeeded")
	}
	if v := mustGet(t, b, "k"); v != nil {
		t.Error("Put with a canceled context stored a value")
	}
}

// testHammer runs writers, readers and listers concurrently; run it with -race.
func testHammer(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	const workers, perWorker = 16, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				key := fmt.Sprintf("h/%02d/%03d", w, i)
				val := []byte(key)
				var err error
				if i%4 == 3 {
					err = b.Batch(ctx, []storage.Op{
						{Kind: storage.OpPut, Key: key, Value: val},
						{Kind: storage.OpPut, Key: "shared", Value: val},
					})
				} else {
					err = b.Put(ctx, key, val)
				}
				if err != nil {
					t.Errorf("write %s: %v", key, err)
					return
				}
				got, err := b.Get(ctx, key)
				if err != nil || !bytes.Equal(got, val) {
					t.Errorf("Get(%s) = %q, %v; want %q", key, got, err, val)
					return
				}
				if _, err := b.Get(ctx, "shared"); err != nil {
					t.Errorf("Get(shared): %v", err)
					return
				}
				// This worker alone writes under its folder: it holds the key
				// just written plus every odd key before it.
				keys, err := b.List(ctx, fmt.Sprintf("h/%02d/", w))
				if err != nil || len(keys) != i/2+1 || !slices.Contains(keys, key[len("h/00/"):]) {
					t.Errorf("List(h/%02d/) after writing %s = %q, %v", w, key, keys, err)
					return
				}
				if i%2 == 0 {
					if err := b.Delete(ctx, key); err != nil {
						t.Errorf("Delete(%s): %v", key, err)
						return
					}
				}
				if _, err := b.List(ctx, "h/"); err != nil {
					t.Errorf("List(h/): %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	folders, err := b.List(ctx, "h/")
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) != workers {
		t.Fatalf("List(h/) has %d folders, want %d", len(folders), workers)
	}
	for w := range workers {
		keys, err := b.List(ctx, fmt.Sprintf("h/%02d/", w))
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != perWorker/2 {
			t.Fatalf("worker %d left %d keys, want %d", w, len(keys), perWorker/2)
		}
	}
}

func testClosed(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	mustPut(t, b, "k", []byte("v"))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Get(ctx, "k"); err == nil {
		t.Error("Get after Close succeeded")
	}
	if err := b.Put(ctx, "k", []byte("v")); err == nil {
		t.Error("Put after Close succeeded")
	}
	if err := b.Delete(ctx, "k"); err == nil {
		t.Error("Delete after Close succeeded")
	}
	if _, err := b.List(ctx, ""); err == nil {
		t.Error("List after Close succeeded")
	}
	if err := b.Batch(ctx, []storage.Op{{Kind: storage.OpDelete, Key: "k"}}); err == nil {
		t.Error("Batch after Close succeeded")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
