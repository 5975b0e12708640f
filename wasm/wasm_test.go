package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestProbeBasics(t *testing.T) {
	ctx := context.Background()
	m, _ := mountProbe(t, Limits{}, nil)
	resp, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "echo", map[string]any{"a": "b<&>"}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.Data, map[string]any{"a": "b<&>"}) {
		t.Fatalf("echo: %#v", resp.Data)
	}
	if sp := m.SpecialPaths(); len(sp.Unauthenticated) != 1 || sp.Unauthenticated[0] != "echo" {
		t.Fatalf("special paths: %+v", sp)
	}
	if m.Type() != logical.TypeSecret || m.Info().Name != "probe" || m.Info().Version != "0.1.0" {
		t.Fatalf("type %q info %+v", m.Type(), m.Info())
	}
	if len(m.Schema().Paths) == 0 {
		t.Fatal("no schema")
	}
	if _, err := m.HandleRequest(ctx, req(logical.UpdateOperation, "kv/a", map[string]any{"value": "1"})); err != nil {
		t.Fatal(err)
	}
	resp, err = m.HandleRequest(ctx, req(logical.ReadOperation, "kv/a", nil))
	if err != nil || resp.Data["value"] != "1" {
		t.Fatalf("%v %v", resp, err)
	}
	resp, err = m.HandleRequest(ctx, req(logical.ReadOperation, "nope", nil))
	if logical.CodeOf(err) != logical.CodeNotFound {
		t.Fatalf("unknown path: %v %v", resp, err)
	}
	found, exists, err := m.HandleExistenceCheck(ctx, req(logical.CreateOperation, "kv/a", nil))
	if err != nil || found {
		t.Fatalf("existence: %v %v %v", found, exists, err)
	}
	var le *logical.Error
	if !errors.As(err, &le) && err != nil {
		t.Fatal(err)
	}
}

func TestCompileRefuses(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		guest    string
		sentinel error
		want     []string
	}{
		{"abiv2", ErrABIVersion, []string{"ABI v2", "this server speaks v1"}},
		{"fsimport", ErrForbiddenImport, []string{"wasi_snapshot_preview1.path_unlink_file", "filesystem"}},
		{"sockimport", ErrForbiddenImport, []string{"wasi_snapshot_preview1.sock_accept", "socket"}},
		{"unknownimport", ErrForbiddenImport, []string{"ward.spawn_process", "does not define"}},
	}
	for _, c := range cases {
		t.Run(c.guest, func(t *testing.T) {
			_, err := testEngine.Compile(ctx, binaries[c.guest])
			if !errors.Is(err, c.sentinel) || logical.CodeOf(err) != logical.CodeInvalidRequest {
				t.Fatalf("err = %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	for name, bin := range map[string][]byte{
		"garbage":   []byte("#!/bin/sh\necho hi\n"),
		"empty":     {0, 'a', 's', 'm', 1, 0, 0, 0},
		"truncated": binaries["probe"][:1000],
	} {
		if _, err := testEngine.Compile(ctx, bin); !errors.Is(err, ErrNotWardModule) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// afterFailure checks the mount still serves, once the instance that
// failed has been replaced in the background.
func afterFailure(t *testing.T, m *Mount) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); m.Stats().Idle == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := m.HandleRequest(context.Background(), req(logical.UpdateOperation, "echo", map[string]any{"ok": true}))
	if err != nil || resp.Data["ok"] != true {
		t.Fatalf("next request: %v %v", resp, err)
	}
}

func TestRunawayStopped(t *testing.T) {
	m, logs := mountProbe(t, Limits{CallTimeout: time.Second, PoolSize: 2}, nil)
	other, _ := mountProbe(t, Limits{}, nil)
	for _, path := range []string{"loop", "sleep", "recurse"} {
		start := time.Now()
		_, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, path, nil))
		took := time.Since(start)
		if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: err = %v", path, err)
		}
		// Not stopped would run forever; the upper bound leaves room for a
		// loaded CI machine.
		if took < time.Second || took > 10*time.Second {
			t.Errorf("%s: stopped after %s, deadline 1s", path, took)
		}
		afterFailure(t, m)
		afterFailure(t, other)
	}
	if !strings.Contains(logs.String(), "deadline") {
		t.Errorf("no log of the stopped call:\n%s", logs)
	}
	// The caller's own deadline is honoured too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := m.HandleRequest(ctx, req(logical.ReadOperation, "loop", nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopped after %s, caller deadline 100ms", took)
	}
	afterFailure(t, m)
}

func TestMemoryBomb(t *testing.T) {
	m, _ := mountProbe(t, Limits{MemoryPages: 512, CallTimeout: 20 * time.Second}, nil) // 32 MiB
	_, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "bomb", nil))
	if !errors.Is(err, ErrModuleFailed) || logical.CodeOf(err) != logical.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "memory limit of 32 MiB") {
		t.Errorf("error does not name the memory limit: %v", err)
	}
	afterFailure(t, m)
	resp, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "mem", nil))
	if err != nil || resp.Data["sink"] != json.Number("0") {
		t.Fatalf("a fresh instance should hold nothing: %v %v", resp, err)
	}
}

func TestPanicAndExit(t *testing.T) {
	m, logs := mountProbe(t, Limits{}, nil)
	_, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "panic", nil))
	if err == nil || logical.CodeOf(err) != logical.CodeInternal || !strings.Contains(err.Error(), "plugin panicked during request") {
		t.Fatalf("panic: err = %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatal("the panic value reached the client")
	}
	afterFailure(t, m)
	_, err = m.HandleRequest(context.Background(), req(logical.ReadOperation, "trap", nil))
	if !errors.Is(err, ErrModuleFailed) || !strings.Contains(err.Error(), "trapped: out of bounds memory access") {
		t.Fatalf("trap: err = %v", err)
	}
	afterFailure(t, m)
	_, err = m.HandleRequest(context.Background(), req(logical.ReadOperation, "exit", nil))
	if !errors.Is(err, ErrModuleFailed) || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("exit: err = %v", err)
	}
	afterFailure(t, m)
	if !strings.Contains(logs.String(), "plugin panicked during request") {
		t.Errorf("stack not logged:\n%s", logs)
	}
}

func TestHugeMessages(t *testing.T) {
	m, _ := mountProbe(t, Limits{}, nil)
	_, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "huge", nil))
	if !errors.Is(err, ErrModuleFailed) || !strings.Contains(err.Error(), "message limit") {
		t.Fatalf("huge response: err = %v", err)
	}
	afterFailure(t, m)
	big := map[string]any{"x": strings.Repeat("y", 5<<20)}
	_, err = m.HandleRequest(context.Background(), req(logical.UpdateOperation, "echo", big))
	if logical.CodeOf(err) != logical.CodeInvalidRequest || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("huge request: err = %v", err)
	}
	afterFailure(t, m)
}

func TestLogCapped(t *testing.T) {
	m, logs := mountProbe(t, Limits{MaxLogBytes: 4096}, nil)
	if _, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "logflood", nil)); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "flood line"); n == 0 || n > 50 {
		t.Errorf("%d flood lines logged, want a capped few", n)
	}
	if !strings.Contains(out, "capped") {
		t.Error("no note that the log was capped")
	}
}

func TestSetupError(t *testing.T) {
	_, err := testEngine.Mount(context.Background(), module(t, "probe"), MountConfig{
		ID: "x", Path: "bad/", PluginName: "probe", Storage: logical.NewInmemStorage(),
		Config: map[string]string{"fail": "no"}})
	if logical.CodeOf(err) != logical.CodeInvalidRequest || !strings.Contains(err.Error(), "setup refused") {
		t.Fatalf("err = %v", err)
	}
}

func TestCloseMount(t *testing.T) {
	m, _ := mountProbe(t, Limits{}, nil)
	afterFailure(t, m)
	m.Close(context.Background())
	if _, err := m.HandleRequest(context.Background(), req(logical.ReadOperation, "echo", nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if s := m.Stats(); s.Instances != 0 {
		t.Fatalf("instances left: %+v", s)
	}
}

func TestDescribe(t *testing.T) {
	info, err := testEngine.Describe(context.Background(), module(t, "kv"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "kv" || info.Type != logical.TypeSecret || info.SDKVersion == "" || len(info.Capabilities) != 1 {
		t.Fatalf("%+v", info)
	}
}
