package wasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

// Figures for `make bench`. Wall time on the shared 2-vCPU test machines
// is noisy; cpu-µs/op (process CPU time per op) is steadier.

// cpuTimer reports process CPU time per op next to wall time.
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

// engineWith returns an engine with the given runaway mode over the shared cache.
func engineWith(b *testing.B, mode RunawayMode) *Engine {
	b.Helper()
	if mode == RunawayFuel {
		return testEngine
	}
	e, err := NewEngine(EngineConfig{CacheDir: cacheDir, Runaway: mode})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func mountOn(b *testing.B, e *Engine, guest string, cfg MountConfig) *Mount {
	b.Helper()
	ctx := context.Background()
	mod, err := e.Compile(ctx, binaries[guest])
	if err != nil {
		b.Fatal(err)
	}
	m, err := e.Mount(ctx, mod, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(ctx) })
	return m
}

// BenchmarkRoundTrip is kernel -> module -> kernel for a small request
// whose handler (sdk/framework routing, JSON in and out) makes one storage
// read. fuel and close-on-done stop runaway guests; unprotected does not
// and is there to show what protection costs.
func BenchmarkRoundTrip(b *testing.B) {
	for _, c := range []struct {
		name string
		mode RunawayMode
	}{{"fuel", RunawayFuel}, {"close-on-done", RunawayCloseOnDone}, {"unprotected", runawayOff}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			st := logical.NewInmemStorage()
			_ = st.Put(ctx, &logical.StorageEntry{Key: "rt", Value: make([]byte, 512)})
			m := mountOn(b, engineWith(b, c.mode), "probe", MountConfig{ID: "rt", Path: "rt/", PluginName: "probe",
				Storage: st, Limits: Limits{PoolSize: 1}})
			r := req(logical.ReadOperation, "rt", nil)
			if _, err := m.HandleRequest(ctx, r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if _, err := m.HandleRequest(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// kvTarget serves KV requests for a mount, whatever the transport.
type kvTarget func(ctx context.Context, req *logical.Request) (*logical.Response, error)

func kvInProcess(b *testing.B, st logical.Storage) kvTarget {
	be, err := kv.Factory(context.Background(), &logical.BackendConfig{StorageView: st,
		Config: map[string]string{"version": "2"}, MountPoint: "secret/", MountType: "kv"})
	if err != nil {
		b.Fatal(err)
	}
	return func(ctx context.Context, req *logical.Request) (*logical.Response, error) {
		req.Storage = st
		return be.HandleRequest(ctx, req)
	}
}

func kvWASM(b *testing.B, st logical.Storage) kvTarget {
	m := mountOn(b, testEngine, "kv", MountConfig{ID: "kv", Path: "secret/", PluginName: "kv",
		Config: map[string]string{"version": "2"}, Storage: st})
	warmPool(b, m)
	return m.HandleRequest
}

// warmPool fills the pool so instance creation is not measured.
func warmPool(b *testing.B, m *Mount) {
	for range m.cfg.Limits.PoolSize - m.Stats().Instances {
		m.slots <- struct{}{}
		inst, err := m.newInstance(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		m.release(inst, nil)
	}
}

// kvGoPlugin runs KV in a child process over the go-plugin transport (this
// test binary re-executed with WARD_WASM_TEST_PLUGIN=kv).
func kvGoPlugin(b *testing.B, st logical.Storage) kvTarget {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{"WARD_WASM_TEST_PLUGIN=kv"}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: sdkplugin.Handshake, VersionedPlugins: sdkplugin.HostPlugins(), Cmd: cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC}, AutoMTLS: true, SkipHostEnv: true,
		Logger: hclog.NewNullLogger(),
	})
	b.Cleanup(client.Kill)
	ctx := context.Background()
	cl, err := sdkplugin.Connect(ctx, client, func(id string) (logical.Storage, bool) { return st, id == "kv" })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	if _, err := cl.Setup(ctx, sdkplugin.MountConfig{ID: "kv", MountPoint: "secret/", MountType: "kv",
		Config: map[string]string{"version": "2"}}); err != nil {
		b.Fatal(err)
	}
	return func(ctx context.Context, req *logical.Request) (*logical.Response, error) {
		return cl.HandleRequest(ctx, "kv", req)
	}
}

// BenchmarkKV reads and writes KV v2 secrets in process, over go-plugin
// and over WASM (default pool), serially and from 8 goroutines per CPU.
func BenchmarkKV(b *testing.B) {
	data := map[string]any{"data": map[string]any{"user": "app", "password": "0123456789abcdef"}}
	for _, tr := range []struct {
		name string
		mk   func(*testing.B, logical.Storage) kvTarget
	}{{"in-process", kvInProcess}, {"go-plugin", kvGoPlugin}, {"wasm", kvWASM}} {
		b.Run(tr.name, func(b *testing.B) {
			ctx := context.Background()
			st := logical.NewInmemStorage()
			do := tr.mk(b, st)
			for i := range 64 {
				if _, err := do(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: fmt.Sprintf("data/bench/%d", i), Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			for _, op := range []logical.Operation{logical.ReadOperation, logical.UpdateOperation} {
				b.Run(string(op)+"/serial", func(b *testing.B) {
					b.ReportAllocs()
					cpu := startCPU()
					i := 0
					for b.Loop() {
						i++
						r := &logical.Request{Operation: op, Path: "data/bench/" + strconv.Itoa(i%64)}
						if op == logical.UpdateOperation {
							r.Data = data
						}
						if _, err := do(ctx, r); err != nil {
							b.Fatal(err)
						}
					}
					cpu.report(b)
				})
				b.Run(string(op)+"/parallel", func(b *testing.B) {
					b.ReportAllocs()
					b.SetParallelism(8)
					var n atomic.Int64
					cpu := startCPU()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							r := &logical.Request{Operation: op, Path: "data/bench/" + strconv.Itoa(int(n.Add(1)%64))}
							if op == logical.UpdateOperation {
								r.Data = data
							}
							if _, err := do(ctx, r); err != nil {
								b.Error(err)
								return
							}
						}
					})
					cpu.report(b)
				})
			}
		})
	}
}

// BenchmarkCompile measures registration: a cold compile (empty cache
// directory) and a compile served from the disk cache by a fresh engine,
// as after a restart.
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	for _, guest := range []string{"kv", "probe"} {
		b.Run(guest+"/cold", func(b *testing.B) {
			for b.Loop() {
				e, err := NewEngine(EngineConfig{CacheDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Compile(ctx, binaries[guest]); err != nil {
					b.Fatal(err)
				}
				e.Close(ctx)
			}
		})
		b.Run(guest+"/cached", func(b *testing.B) {
			for b.Loop() {
				e, err := NewEngine(EngineConfig{CacheDir: cacheDir})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Compile(ctx, binaries[guest]); err != nil {
					b.Fatal(err)
				}
				e.Close(ctx)
			}
		})
	}
}

// BenchmarkRestartFirstRequest is a restart with a warm compilation cache:
// new engine, compile (from disk), mount (first instance), first KV read.
func BenchmarkRestartFirstRequest(b *testing.B) {
	ctx := context.Background()
	st := logical.NewInmemStorage()
	for b.Loop() {
		e, err := NewEngine(EngineConfig{CacheDir: cacheDir})
		if err != nil {
			b.Fatal(err)
		}
		mod, err := e.Compile(ctx, binaries["kv"])
		if err != nil {
			b.Fatal(err)
		}
		m, err := e.Mount(ctx, mod, MountConfig{ID: "kv", Path: "secret/", PluginName: "kv",
			Config: map[string]string{"version": "2"}, Storage: st})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "data/x"}); err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
		e.Close(ctx)
	}
}

// BenchmarkInstantiate creates a KV instance (instantiate, _initialize,
// setup) and reports its linear memory and the RSS it adds.
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	m := mountOn(b, testEngine, "kv", MountConfig{ID: "kv", Path: "secret/", PluginName: "kv",
		Config: map[string]string{"version": "2"}, Storage: logical.NewInmemStorage()})
	var insts []*instance
	rss0 := rss()
	for b.Loop() {
		inst, err := m.newInstance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		insts = append(insts, inst)
	}
	b.StopTimer()
	b.ReportMetric(float64(rss()-rss0)/float64(len(insts))/(1<<20), "RSS-MiB/instance")
	b.ReportMetric(float64(insts[0].mem.Size())/(1<<20), "linear-MiB/instance")
	for _, inst := range insts {
		m.retire(inst)
	}
}

// rss reads the process's resident set size.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
