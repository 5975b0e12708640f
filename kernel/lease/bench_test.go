package lease

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/barrier"
	"github.com/wardproject/ward/kernel/storage/pebble"
	"github.com/wardproject/ward/sdk/logical"
)

// nopBackend renews and revokes without doing anything.
type nopBackend struct{ revoked atomic.Int64 }

func (b *nopBackend) RenewSecret(_ context.Context, e *Entry, _ time.Duration) (*logical.Secret, error) {
	return &logical.Secret{Renewable: true}, nil
}

func (b *nopBackend) RevokeSecret(context.Context, *Entry) error { b.revoked.Add(1); return nil }

// pebbleView opens (or reopens) a Pebble database in dir behind an
// unsealed barrier and returns the view the kernel would give the manager.
func pebbleView(b *testing.B, dir string, rootKey []byte) (logical.BatchStorage, func()) {
	b.Helper()
	phys, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bar := barrier.New(phys)
	init, err := bar.Initialized(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if !init {
		if err := bar.Initialize(context.Background(), rootKey); err != nil {
			b.Fatal(err)
		}
	}
	if err := bar.Unseal(context.Background(), rootKey); err != nil {
		b.Fatal(err)
	}
	return bar.View("sys/expire/"), func() { bar.Seal(); _ = phys.Close() }
}

func newRootKey(b *testing.B) []byte {
	k := make([]byte, barrier.KeySize)
	if _, err := rand.Read(k); err != nil {
		b.Fatal(err)
	}
	return k
}

// prefill writes n leases straight into view in large batches (as n
// Register calls would, minus the per-call commit), expiring at
// expire(i), each with a token index key.
func prefill(b *testing.B, view logical.BatchStorage, now time.Time, n int, expire func(i int) time.Time) {
	b.Helper()
	const chunk = 2000
	ops := make([]logical.StorageOp, 0, chunk*3)
	for i := range n {
		e := &Entry{
			ID: "database/creds/ro/" + randomID(), MountPoint: "database/", MountAccessor: "database_1234", Path: "creds/ro",
			TTL: time.Hour, MaxTTL: 768 * time.Hour, Renewable: true,
			InternalData: map[string]any{"username": "v-token-ro-" + strconv.Itoa(i)},
			TokenHash:    fmt.Sprintf("%064x", i%1000), IssueTime: now, ExpireTime: expire(i),
		}
		more, err := putOps(e, nil)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, more...)
		if len(ops) >= chunk*3 || i == n-1 {
			if err := view.Batch(context.Background(), ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// discardStorage accepts every write and holds nothing.
type discardStorage struct{}

func (discardStorage) List(context.Context, string) ([]string, error) { return nil, nil }
func (discardStorage) Get(context.Context, string) (*logical.StorageEntry, error) {
	return nil, nil
}
func (discardStorage) Put(context.Context, *logical.StorageEntry) error { return nil }
func (discardStorage) Delete(context.Context, string) error             { return nil }
func (discardStorage) Batch(context.Context, []logical.StorageOp) error { return nil }

func BenchmarkRegister(b *testing.B) {
	reg := Registration{MountPoint: "database/", MountAccessor: "database_1234", Path: "creds/ro", TokenHash: "abc",
		Secret: &logical.Secret{TTL: time.Hour, MaxTTL: 24 * time.Hour, Renewable: true, InternalData: map[string]any{"username": "v-ro-x"}}}
	b.Run("discard", func(b *testing.B) { // the manager's own cost
		m, _ := New(discardStorage{}, Options{Backend: &nopBackend{}})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Register(context.Background(), reg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inmem", func(b *testing.B) {
		m, _ := New(logical.NewInmemStorage(), Options{Backend: &nopBackend{}})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Register(context.Background(), reg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pebble-parallel", func(b *testing.B) {
		view, closeFn := pebbleView(b, b.TempDir(), newRootKey(b))
		defer closeFn()
		m, _ := New(view, Options{Backend: &nopBackend{}})
		b.SetParallelism(16) // like 32 concurrent HTTP requests on 2 CPUs
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Register(context.Background(), reg); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkRenew(b *testing.B) {
	clock := newFakeClock()
	m, _ := New(logical.NewInmemStorage(), Options{Backend: &nopBackend{}, Now: clock.Now})
	e, err := m.Register(context.Background(), Registration{MountPoint: "database/", Path: "creds/ro",
		Secret: &logical.Secret{TTL: time.Hour, Renewable: true}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		clock.Advance(time.Second) // a new expiry second each time: the index key moves
		if _, err := m.Renew(context.Background(), e.ID, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExpiry measures revocations per second by Run's sweep with a
// no-op engine: b.N leases all due, one sweep.
func BenchmarkExpiry(b *testing.B) {
	run := func(b *testing.B, view logical.BatchStorage) {
		clock := newFakeClock()
		backend := &nopBackend{}
		m, _ := New(view, Options{Backend: backend, Now: clock.Now})
		// Due over 10 seconds, as if registered over 10 seconds.
		prefill(b, view, clock.Now(), b.N, func(i int) time.Time {
			return clock.Now().Add(time.Minute + time.Duration(i%10)*time.Second)
		})
		clock.Advance(2 * time.Minute)
		cpu0 := cpuTime()
		b.ResetTimer()
		if err := m.sweep(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		// CPU time is steadier than wall time on a shared machine.
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/revocation")
		if got := backend.revoked.Load(); got != int64(b.N) {
			b.Fatalf("revoked %d of %d", got, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
	}
	b.Run("inmem", func(b *testing.B) { run(b, logical.NewInmemStorage()) })
	b.Run("pebble", func(b *testing.B) {
		view, closeFn := pebbleView(b, b.TempDir(), newRootKey(b))
		defer closeFn()
		run(b, view)
	})
}

// BenchmarkUnseal stores n leases (expiries spread over 30 days) in Pebble
// behind the barrier, reopens the database, and measures New plus the
// first sweep (what unseal costs the manager), with the Go heap and RSS
// growth they cause. The 1M case takes a minute to prepare; run it with
// -bench 'Unseal/1M' -benchtime 1x.
func BenchmarkUnseal(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			dir, root := b.TempDir(), newRootKey(b)
			now := time.Now()
			view, closeFn := pebbleView(b, dir, root)
			prep := time.Now()
			prefill(b, view, now, n, func(i int) time.Time {
				return now.Add(time.Hour + time.Duration(i)*((30*24*time.Hour)/time.Duration(n)))
			})
			b.Logf("prepared %d leases in %v", n, time.Since(prep).Round(time.Millisecond))
			closeFn()

			start := time.Now()
			view, closeFn = pebbleView(b, dir, root)
			defer closeFn()
			openTime := time.Since(start)
			heap0, rss0 := memNow()
			var total time.Duration
			var m *Manager
			backend := &nopBackend{}
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				var err error
				m, err = New(view, Options{Backend: backend})
				if err != nil {
					b.Fatal(err)
				}
				if err := m.sweep(context.Background()); err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
			}
			b.StopTimer()
			heap1, rss1 := memNow()
			if n := backend.revoked.Load(); n != 0 {
				b.Fatalf("%d leases revoked: none is due", n)
			}
			runtime.KeepAlive(m)
			b.ReportMetric(float64(openTime.Microseconds())/1000, "open+unseal-ms")
			b.ReportMetric(float64(heap1-heap0), "heap-growth-B")
			b.ReportMetric(float64(rss1-rss0)/(1<<20), "rss-growth-MiB")
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "new+sweep-ms")
		})
	}
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memNow returns the live Go heap after a GC and the process RSS.
func memNow() (heap, rss int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return int64(ms.HeapAlloc), rss
}
