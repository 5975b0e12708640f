package wasm

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// BenchmarkRoundTrip is kernel -> module -> kernel for a small request
// whose handler makes one storage read, with the deadline enforced.
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	_ = st.Put(ctx, &logical.StorageEntry{Key: "rt", Value: make([]byte, 512)})
	m, _ := mountProbe(b, Limits{PoolSize: 1}, st)
	r := req(logical.ReadOperation, "rt", nil)
	if _, err := m.HandleRequest(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for b.Loop() {
		if _, err := m.HandleRequest(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func BenchmarkRoundTripUnprotected(b *testing.B) {
	ctx := context.Background()
	e, err := NewEngine(EngineConfig{CacheDir: cacheDir, Runaway: runawayOff})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	mod, err := e.Compile(ctx, binaries["probe"])
	if err != nil {
		b.Fatal(err)
	}
	st := logical.NewInmemStorage()
	_ = st.Put(ctx, &logical.StorageEntry{Key: "rt", Value: make([]byte, 512)})
	m, err := e.Mount(ctx, mod, MountConfig{ID: "x", Path: "p/", PluginName: "probe", Storage: st, Limits: Limits{PoolSize: 1}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	r := req(logical.ReadOperation, "rt", nil)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := m.HandleRequest(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// cpuTimer reports process CPU time per op next to wall time: this
// machine's other tenants make wall time noisy, CPU time much less so.
type cpuTimer struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{start: processCPU()} }

func (c cpuTimer) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N)/1e3, "cpu-µs/op")
}
