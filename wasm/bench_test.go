package wasm

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/plugins/secrets/transit"
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

// benchTarget serves one mount's requests, whatever the transport.
type benchTarget struct {
	do func(ctx context.Context, req *logical.Request) (*logical.Response, error)
	// pid is the plugin process of a go-plugin target: its CPU time counts.
	pid int
}

// cpu is the CPU time spent so far by this process and the plugin's.
func (t benchTarget) cpu() time.Duration {
	c := processCPU()
	if t.pid != 0 {
		c += pidCPU(t.pid)
	}
	return c
}

// pidCPU reads another process's user+system time (clock ticks of 10 ms).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * 10 * time.Millisecond
}

type pluginSpec struct {
	name    string
	factory logical.Factory
	config  map[string]string
}

var (
	kvSpec      = pluginSpec{name: "kv", factory: kv.Factory, config: map[string]string{"version": "2"}}
	transitSpec = pluginSpec{name: "transit", factory: transit.Factory}
)

func inProcessTarget(b *testing.B, p pluginSpec, st logical.Storage) benchTarget {
	be, err := p.factory(context.Background(), &logical.BackendConfig{StorageView: st,
		Config: p.config, MountPoint: p.name + "/", MountType: p.name})
	if err != nil {
		b.Fatal(err)
	}
	return benchTarget{do: func(ctx context.Context, req *logical.Request) (*logical.Response, error) {
		req.Storage = st
		return be.HandleRequest(ctx, req)
	}}
}

// wasmTarget mounts the plugin's module with the default limits (a pool of
// GOMAXPROCS instances), filled before measuring.
func wasmTarget(b *testing.B, p pluginSpec, st logical.Storage) benchTarget {
	m := wasmMount(b, p, st)
	return benchTarget{do: m.HandleRequest}
}

func wasmMount(b *testing.B, p pluginSpec, st logical.Storage) *Mount {
	m := mountOn(b, testEngine, p.name, MountConfig{ID: p.name, Path: p.name + "/", PluginName: p.name,
		Config: p.config, Storage: st})
	warmPool(b, m)
	return m
}

// warmPool fills the pool so instance creation is not measured.
func warmPool(b testing.TB, m *Mount) {
	for range m.cfg.Limits.PoolSize - m.Stats().Instances {
		if !m.token() {
			b.Fatal("no token")
		}
		inst, err := m.newInstance(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		m.release(inst, nil)
	}
}

// goPluginTarget runs the plugin in a child process over the go-plugin
// transport (this test binary re-executed with WARD_WASM_TEST_PLUGIN).
func goPluginTarget(b *testing.B, p pluginSpec, st logical.Storage) benchTarget {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{"WARD_WASM_TEST_PLUGIN=" + p.name}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: sdkplugin.Handshake, VersionedPlugins: sdkplugin.HostPlugins(), Cmd: cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC}, AutoMTLS: true, SkipHostEnv: true,
		Logger: hclog.NewNullLogger(),
	})
	b.Cleanup(client.Kill)
	ctx := context.Background()
	cl, err := sdkplugin.Connect(ctx, client, func(id string) (logical.Storage, bool) { return st, id == p.name })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	if _, err := cl.Setup(ctx, sdkplugin.MountConfig{ID: p.name, MountPoint: p.name + "/", MountType: p.name,
		Config: p.config}); err != nil {
		b.Fatal(err)
	}
	return benchTarget{pid: cmd.Process.Pid, do: func(ctx context.Context, req *logical.Request) (*logical.Response, error) {
		return cl.HandleRequest(ctx, p.name, req)
	}}
}

// transports are the three ways to serve a plugin, in process for reference.
var transports = []struct {
	name string
	mk   func(*testing.B, pluginSpec, logical.Storage) benchTarget
}{{"in-process", inProcessTarget}, {"go-plugin", goPluginTarget}, {"wasm", wasmTarget}}

// measure runs op from clients goroutines (serially for 1) and reports
// CPU time per op, plugin process included, and ops/s.
func measure(b *testing.B, t benchTarget, clients int, op func(i int) error) {
	b.ReportAllocs()
	var n atomic.Int64
	b.ResetTimer() // setup (a compile, instances) is not measured
	start := t.cpu()
	if clients == 1 {
		for b.Loop() {
			if err := op(int(n.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(int(n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(t.cpu()-start)/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkKV reads and writes KV v2 secrets (64 keys) in process, over
// go-plugin and over WASM (default pool: GOMAXPROCS instances; KV declares
// concurrent writes), from one client and from 16. cpu-µs/op includes the
// go-plugin child process.
func BenchmarkKV(b *testing.B) {
	data := map[string]any{"data": map[string]any{"user": "app", "password": "0123456789abcdef"}}
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			ctx := context.Background()
			st := logical.NewInmemStorage()
			t := tr.mk(b, kvSpec, st)
			for i := range 64 {
				if _, err := t.do(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: fmt.Sprintf("data/bench/%d", i), Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			for _, op := range []logical.Operation{logical.ReadOperation, logical.UpdateOperation} {
				for _, clients := range []int{1, 16} {
					name := string(op) + "/serial"
					if clients > 1 {
						name = string(op) + "/parallel"
					}
					b.Run(name, func(b *testing.B) {
						measure(b, t, clients, func(i int) error {
							r := &logical.Request{Operation: op, Path: "data/bench/" + strconv.Itoa(i%64)}
							if op == logical.UpdateOperation {
								r.Data = data
							}
							_, err := t.do(ctx, r)
							return err
						})
					})
				}
			}
		})
	}
}

// BenchmarkTransitEncrypt encrypts 1 KiB with an aes256-gcm96 key from 32
// clients, in process, over go-plugin and over WASM (default pool;
// transit declares concurrent writes: encrypt is an update). "wasm-serial"
// is WASM with the host's former default, one write request at a time per
// mount. Report: ns/op, ops/s, cpu-µs/op (go-plugin child included).
func BenchmarkTransitEncrypt(b *testing.B) {
	pt := make([]byte, 1024)
	for i := range pt {
		pt[i] = byte(i * 7)
	}
	data := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}
	serialWASM := func(b *testing.B, p pluginSpec, st logical.Storage) benchTarget {
		m := wasmMount(b, p, st)
		m.concurrentWrites = false
		return benchTarget{do: m.HandleRequest}
	}
	trs := append(transports[:len(transports):len(transports)], struct {
		name string
		mk   func(*testing.B, pluginSpec, logical.Storage) benchTarget
	}{"wasm-serial", serialWASM})
	for _, tr := range trs {
		b.Run(tr.name, func(b *testing.B) {
			ctx := context.Background()
			t := tr.mk(b, transitSpec, logical.NewInmemStorage())
			if _, err := t.do(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "keys/bench"}); err != nil {
				b.Fatal(err)
			}
			for range 8 { // every instance caches the key
				if _, err := t.do(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/bench", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(1024)
			measure(b, t, 32, func(int) error {
				resp, err := t.do(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/bench", Data: data})
				if err == nil && resp == nil {
					err = fmt.Errorf("no ciphertext")
				}
				return err
			})
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
