// Command probe is a test plugin for package wasm: well-behaved paths for
// the round trip and the pool tests, and hostile ones (runaway loop,
// memory bomb, panic, exit, huge answer, storage escapes, log flood).
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/keylock"
	"github.com/wardproject/ward/sdk/logical"
	"github.com/wardproject/ward/sdk/wasmguest"
	"github.com/wardproject/ward/sdk/wasmguest/abi"
)

func main() {
	wasmguest.Serve(wasmguest.ServeOpts{Name: "probe", Type: logical.TypeSecret, Version: "0.1.0", Factory: factory})
}

// locks are the probe's keyed locks: the mount's, through the host.
var locks keylock.Set

// cache is instance-local: the pool's invalidations must keep it exact.
var (
	mu    sync.Mutex
	cache = map[string]string{}
	sink  [][]byte
)

func op(f framework.OperationFunc) map[logical.Operation]framework.OperationFunc {
	return map[logical.Operation]framework.OperationFunc{logical.ReadOperation: f, logical.UpdateOperation: f}
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	if conf.Config["fail"] != "" {
		return nil, logical.InvalidRequest("probe: setup refused: %s", conf.Config["fail"])
	}
	return &framework.Backend{
		BackendType:  logical.TypeSecret,
		PathsSpecial: &logical.Paths{Unauthenticated: []string{"echo"}},
		Invalidate: func(_ context.Context, key string) {
			mu.Lock()
			delete(cache, key)
			mu.Unlock()
		},
		InvalidateAllFunc: func(context.Context) {
			mu.Lock()
			clear(cache)
			mu.Unlock()
		},
		Paths: []*framework.Path{
			{Pattern: "echo", TakesArbitraryInput: true, Operations: op(echo)},
			{Pattern: "rt", Operations: op(roundTrip)},
			{Pattern: "kv/(?P<key>.+)", Fields: map[string]*framework.FieldSchema{"key": {Type: framework.TypeString}, "value": {Type: framework.TypeString}},
				Operations: map[logical.Operation]framework.OperationFunc{logical.ReadOperation: kvRead, logical.UpdateOperation: kvWrite}},
			{Pattern: "slow/(?P<key>.+)", Fields: map[string]*framework.FieldSchema{"key": {Type: framework.TypeString}},
				Operations: map[logical.Operation]framework.OperationFunc{logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					time.Sleep(20 * time.Millisecond) // hold the instance so concurrent reads spread over the pool
					return kvRead(ctx, req, d)
				}}},
			{Pattern: "counter", Operations: map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: increment}},
			{Pattern: "loop", Operations: op(loop)},
			{Pattern: "sleep", Operations: op(sleep)},
			{Pattern: "recurse", Operations: op(func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return &logical.Response{Data: map[string]any{"n": recurse(64)}}, nil
			})},
			{Pattern: "bomb", Operations: op(bomb)},
			{Pattern: "panic", Operations: op(func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				panic("the secret is hunter2")
			})},
			{Pattern: "exit", Operations: op(func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				os.Exit(3)
				return nil, nil
			})},
			{Pattern: "huge", Operations: op(huge)},
			{Pattern: "trap", Operations: op(func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				// A store past the end of linear memory: a wasm trap, which
				// no Go recover sees.
				*(*byte)(unsafe.Add(unsafe.Pointer(&spin), 1<<31)) = 1
				return nil, nil
			})},
			{Pattern: "escape", TakesArbitraryInput: true, Operations: op(escape)},
			{Pattern: "logflood", Operations: op(logFlood)},
			{Pattern: "http", TakesArbitraryInput: true, Operations: op(fetch)},
			{Pattern: "mem", Operations: op(memStats)},
			{Pattern: "locked/(?P<key>.+)", Fields: map[string]*framework.FieldSchema{"key": {Type: framework.TypeString}, "mode": {Type: framework.TypeString}},
				Operations: map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: lockedIncrement}},
		},
	}, nil
}

func echo(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: req.Data}, nil
}

// roundTrip is the benchmark's request: one storage read.
func roundTrip(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	e, err := req.Storage.Get(ctx, "rt")
	if err != nil {
		return nil, err
	}
	n := 0
	if e != nil {
		n = len(e.Value)
	}
	return &logical.Response{Data: map[string]any{"n": n}}, nil
}

// kvRead reads through the instance cache.
func kvRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	key := "kv/" + d.Get("key").(string)
	mu.Lock()
	v, ok := cache[key]
	mu.Unlock()
	if !ok {
		e, err := req.Storage.Get(ctx, key)
		if err != nil || e == nil {
			return nil, err
		}
		v = string(e.Value)
		mu.Lock()
		cache[key] = v
		mu.Unlock()
	}
	return &logical.Response{Data: map[string]any{"value": v}}, nil
}

func kvWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	key := "kv/" + d.Get("key").(string)
	v := d.Get("value").(string)
	if err := req.Storage.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte(v)}); err != nil {
		return nil, err
	}
	mu.Lock()
	cache[key] = v
	mu.Unlock()
	return nil, nil
}

// increment is a read-modify-write guarded only by an in-instance lock:
// without the pool's write token, instances would lose increments.
func increment(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	e, err := req.Storage.Get(ctx, "counter")
	if err != nil {
		return nil, err
	}
	if e != nil {
		n, _ = strconv.Atoi(string(e.Value))
	}
	// Give other instances time to interleave if the host let them.
	time.Sleep(50 * time.Microsecond)
	n++
	return &logical.Response{Data: map[string]any{"n": n}}, req.Storage.Put(ctx, &logical.StorageEntry{Key: "counter", Value: []byte(strconv.Itoa(n))})
}

// exhaust makes host calls until the host refuses one.
func exhaust(ctx context.Context, s logical.Storage) error {
	for {
		if _, err := s.Get(ctx, "x"); err != nil {
			return err
		}
	}
}

var spin uint64

func loop(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	for {
		spin++
	}
}

// recurse runs for 2^n calls: no loop anywhere, only calls.
func recurse(n int) int {
	if n == 0 {
		return 1
	}
	return recurse(n-1) + recurse(n-1)
}

func sleep(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	time.Sleep(time.Hour)
	return nil, nil
}

func bomb(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	for {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i)
		}
		sink = append(sink, b)
	}
}

func huge(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]any{"blob": strings.Repeat("x", 6<<20)}}, nil
}

// escape tries every key in data["keys"] and reports what happened.
func escape(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	out := map[string]any{}
	for _, k := range req.Data["keys"].([]any) {
		key := k.(string)
		err := req.Storage.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte("pwned")})
		_, gerr := req.Storage.Get(ctx, key)
		_, lerr := req.Storage.List(ctx, key)
		out[key] = fmt.Sprintf("put=%v get=%v list=%v", code(err), code(gerr), code(lerr))
	}
	return &logical.Response{Data: out}, nil
}

func code(err error) string {
	if err == nil {
		return "ok"
	}
	return strconv.Itoa(int(logical.CodeOf(err)))
}

func logFlood(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	for i := 0; i < 10000; i++ {
		fmt.Fprintln(os.Stderr, "flood line", i, strings.Repeat("y", 100))
	}
	return nil, nil
}

// fetch calls the host's http function directly (what wasmhttp.Transport
// does), to keep net/http and its TLS stack out of this module.
func fetch(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	msg := abi.AppendHTTPRequest(nil, &abi.HTTPRequest{Method: "GET", URL: req.Data["url"].(string)})
	n := hostHTTP(unsafe.Pointer(&msg[0]), uint32(len(msg)))
	if n < 0 {
		return nil, fmt.Errorf("http: status %d", -n)
	}
	buf := make([]byte, n+1)
	if st := hostTake(unsafe.Pointer(&buf[0]), uint32(n)); st != 0 {
		return nil, fmt.Errorf("take: status %d", st)
	}
	res, err := abi.DecodeHTTPResponse(buf[:n])
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return &logical.Response{Data: map[string]any{"error": res.Err.Error(), "code": code(res.Err)}}, nil
	}
	return &logical.Response{Data: map[string]any{"status": res.StatusCode, "body": string(res.Body)}}, nil
}

//go:wasmimport ward http
func hostHTTP(ptr unsafe.Pointer, n uint32) int64

//go:wasmimport ward take
func hostTake(ptr unsafe.Pointer, n uint32) uint32

func memStats(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]any{"sink": len(sink)}}, nil
}

// lockedIncrement increments counter/<key> under the key's keyed lock,
// reading through the instance cache (which the lock grant must keep
// exact). mode "panic", "trap" and "hold" end the call holding the lock;
// "exhaust" uses up the call's host calls holding it, "exhaustlock"
// before taking it.
func lockedIncrement(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	key := "counter/" + d.Get("key").(string)
	mode := d.Get("mode").(string)
	if mode == "exhaustlock" {
		_ = exhaust(ctx, req.Storage)
	}
	locks.Lock(key)
	defer locks.Unlock(key)
	switch mode {
	case "exhaust":
		return nil, exhaust(ctx, req.Storage)
	case "panic":
		panic("holding a lock")
	case "trap":
		*(*byte)(unsafe.Add(unsafe.Pointer(&spin), 1<<31)) = 1
	case "hold":
		time.Sleep(time.Hour)
	case "slow":
		time.Sleep(300 * time.Millisecond)
	}
	mu.Lock()
	v, ok := cache[key]
	mu.Unlock()
	if !ok {
		e, err := req.Storage.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if e != nil {
			v = string(e.Value)
		}
	}
	n, _ := strconv.Atoi(v)
	time.Sleep(50 * time.Microsecond) // let other instances interleave if they could
	n++
	if err := req.Storage.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte(strconv.Itoa(n))}); err != nil {
		return nil, err
	}
	mu.Lock()
	cache[key] = strconv.Itoa(n)
	mu.Unlock()
	return &logical.Response{Data: map[string]any{"n": n}}, nil
}
