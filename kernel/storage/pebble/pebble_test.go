package pebble_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/storage/pebble"
	"github.com/wardproject/ward/kernel/storage/storagetest"
)

// silentLogger keeps test output clean.
type silentLogger struct{ t testing.TB }

func (silentLogger) Infof(string, ...any)           {}
func (l silentLogger) Errorf(f string, args ...any) { l.t.Logf("pebble: "+f, args...) }
func (l silentLogger) Fatalf(f string, args ...any) { l.t.Fatalf("pebble: "+f, args...) }

func open(t testing.TB, dir string, fs vfs.FS) *pebble.Store {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{FS: fs, Logger: silentLogger{t}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformanceDisk(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, filepath.Join(t.TempDir(), "data"), nil)
	})
}

func TestConformanceMemFS(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, "data", vfs.NewMem())
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, dir, nil)
	if err := s.Put(ctx, "a/b", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Batch(ctx, []storage.Op{
		{Kind: storage.OpPut, Key: "a/c", Value: []byte("two")},
		{Kind: storage.OpPut, Key: "gone", Value: []byte("x")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir, nil)
	defer s.Close()
	for k, want := range map[string]string{"a/b": "one", "a/c": "two", "gone": ""} {
		got, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" && got != nil || want != "" && string(got) != want {
			t.Errorf("after reopen Get(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestDataDirMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	s := open(t, dir, nil)
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode = %o, want 700", perm)
	}
}

func TestClosedReturnsErrClosed(t *testing.T) {
	ctx := context.Background()
	s := open(t, "data", vfs.NewMem())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, getErr := s.Get(ctx, "k") // Pebble itself would panic here
	_, listErr := s.List(ctx, "")
	for name, err := range map[string]error{
		"Get":    getErr,
		"List":   listErr,
		"Put":    s.Put(ctx, "k", nil),
		"Delete": s.Delete(ctx, "k"),
		"Batch":  s.Batch(ctx, []storage.Op{{Kind: storage.OpDelete, Key: "k"}}),
	} {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

// TestListSkipsFolders checks List seeks over a large folder: the result is
// right, and it does not depend on how many keys the folder holds.
func TestListLargeFolder(t *testing.T) {
	ctx := context.Background()
	s := open(t, "data", vfs.NewMem())
	defer s.Close()
	var ops []storage.Op
	for i := range 5000 {
		ops = append(ops, storage.Op{Kind: storage.OpPut, Key: fmt.Sprintf("p/big/%05d", i), Value: []byte("v")})
	}
	ops = append(ops,
		storage.Op{Kind: storage.OpPut, Key: "p/a", Value: []byte("v")},
		storage.Op{Kind: storage.OpPut, Key: "p/big0", Value: []byte("v")},
		storage.Op{Kind: storage.OpPut, Key: "p/big.x", Value: []byte("v")},
		storage.Op{Kind: storage.OpPut, Key: "p/z/1", Value: []byte("v")},
	)
	if err := s.Batch(ctx, ops); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "p/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "big.x", "big/", "big0", "z/"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List(p/) = %q, want %q", got, want)
	}
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "data"), nil)
	defer s.Close()
	value := bytes.Repeat([]byte("v"), 256)
	// About 32 writers, whatever GOMAXPROCS is: synced writes group-commit.
	b.SetParallelism(max(1, (32+procs()-1)/procs()))
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("bench/%016x", n.Add(1))
			if err := s.Put(ctx, key, value); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "data"), nil)
	defer s.Close()
	const keys = 10000
	value := bytes.Repeat([]byte("v"), 256)
	var ops []storage.Op
	for i := range keys {
		ops = append(ops, storage.Op{Kind: storage.OpPut, Key: fmt.Sprintf("bench/%016x", i), Value: value})
	}
	if err := s.Batch(ctx, ops); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := s.Get(ctx, fmt.Sprintf("bench/%016x", i%keys)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func procs() int { return runtime.GOMAXPROCS(0) }
