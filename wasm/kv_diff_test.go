package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/sdk/logical"
)

// The differential test: one scripted request sequence against KV in
// process and KV compiled to WASM must give the same responses and leave
// the same stored state (timestamps masked: the two run on real clocks).

type step struct {
	op     logical.Operation
	path   string
	data   string // JSON object, "" for none
	exists bool   // also run the existence check
}

var kvV2Script = []step{
	{op: logical.ReadOperation, path: "config"},
	{op: logical.UpdateOperation, path: "config", data: `{"max_versions": 3, "cas_required": false}`},
	{op: logical.ReadOperation, path: "config"},
	{op: logical.CreateOperation, path: "data/app/db", data: `{"data": {"password": "p1", "n": 1, "html": "<&>"}}`, exists: true},
	{op: logical.ReadOperation, path: "data/app/db"},
	{op: logical.UpdateOperation, path: "data/app/db", data: `{"options": {"cas": 1}, "data": {"password": "p2"}}`, exists: true},
	{op: logical.UpdateOperation, path: "data/app/db", data: `{"options": {"cas": 1}, "data": {"password": "stale"}}`},
	{op: logical.ReadOperation, path: "data/app/db", data: `{"version": 1}`},
	{op: logical.PatchOperation, path: "data/app/db", data: `{"data": {"user": "u", "n": 12345678901234567890}}`},
	{op: logical.ReadOperation, path: "data/app/db"},
	{op: logical.ListOperation, path: "metadata/"},
	{op: logical.UpdateOperation, path: "metadata/app/db", data: `{"custom_metadata": {"owner": "me"}, "max_versions": 5}`},
	{op: logical.ReadOperation, path: "metadata/app/db"},
	{op: logical.UpdateOperation, path: "delete/app/db", data: `{"versions": [1]}`},
	{op: logical.ReadOperation, path: "data/app/db", data: `{"version": 1}`},
	{op: logical.UpdateOperation, path: "undelete/app/db", data: `{"versions": [1]}`},
	{op: logical.UpdateOperation, path: "destroy/app/db", data: `{"versions": [2]}`},
	{op: logical.ReadOperation, path: "data/app/db", data: `{"version": 2}`},
	{op: logical.DeleteOperation, path: "data/app/db"},
	{op: logical.ReadOperation, path: "data/app/db"},
	{op: logical.CreateOperation, path: "data/app/other", data: `{"data": {"k": "v"}}`},
	{op: logical.CreateOperation, path: "data/app/dir/x", data: `{"data": {"k": "x"}}`},
	{op: logical.ListOperation, path: "metadata/app/"},
	{op: logical.DeleteOperation, path: "metadata/app/other"},
	{op: logical.ReadOperation, path: "data/app/other"},
	{op: logical.ReadOperation, path: "data/missing"},
	{op: logical.UpdateOperation, path: "data/", data: `{"data": {}}`},
	{op: logical.UpdateOperation, path: "data/app/dir/x", data: `{"data": "not an object"}`},
	{op: logical.UpdateOperation, path: "data/rot", data: `{"data": {"v": 1}}`},
	{op: logical.UpdateOperation, path: "data/rot", data: `{"data": {"v": 2}}`},
	{op: logical.UpdateOperation, path: "data/rot", data: `{"data": {"v": 3}}`},
	{op: logical.UpdateOperation, path: "data/rot", data: `{"data": {"v": 4}}`, exists: true},
	{op: logical.ReadOperation, path: "metadata/rot"},
	{op: logical.ReadOperation, path: "subkeys/rot"},
	{op: logical.ReadOperation, path: "data/rot", data: `{"version": 1}`},
	{op: logical.HelpOperation, path: "data/rot"},
	{op: logical.CreateOperation, path: "data/new", exists: true, data: `{"data": {"a": "b"}, "unknown_field": 1}`},
}

var kvV1Script = []step{
	{op: logical.CreateOperation, path: "a/b", data: `{"password": "p", "n": 1.5}`, exists: true},
	{op: logical.ReadOperation, path: "a/b"},
	{op: logical.ListOperation, path: "a/"},
	{op: logical.UpdateOperation, path: "a/b", data: `{"password": "q"}`, exists: true},
	{op: logical.DeleteOperation, path: "a/b"},
	{op: logical.ReadOperation, path: "a/b"},
	{op: logical.ReadOperation, path: "../x"},
}

// target is one way to run KV.
type target interface {
	HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error)
	HandleExistenceCheck(ctx context.Context, req *logical.Request) (found, exists bool, err error)
}

// inProcess calls the backend directly, as the plugin process would.
type inProcess struct {
	b  logical.Backend
	st logical.Storage
}

func (p inProcess) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	req.Storage = p.st
	return p.b.HandleRequest(ctx, req)
}

func (p inProcess) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	req.Storage = p.st
	return p.b.(logical.ExistenceChecker).HandleExistenceCheck(ctx, req)
}

var timestamp = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)

// outcome renders a response or error as canonical JSON, timestamps masked.
func outcome(t *testing.T, resp *logical.Response, err error) string {
	t.Helper()
	out := map[string]any{}
	if err != nil {
		out["error"] = map[string]any{"code": logical.CodeOf(err), "message": err.Error()}
	}
	if resp != nil {
		out["data"], out["warnings"], out["status"] = resp.Data, resp.Warnings, resp.StatusCode
		out["secret"], out["auth"] = resp.Secret, resp.Auth
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		t.Fatalf("encode outcome: %v", err)
	}
	// Re-decode and re-encode so map orders and number forms agree.
	var v any
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return timestamp.ReplaceAllString(string(b), "<time>")
}

func storedState(t *testing.T, st logical.Storage) string {
	t.Helper()
	ctx := context.Background()
	keys, err := logical.CollectKeys(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		e, _ := st.Get(ctx, k)
		sb.WriteString(k + " = " + timestamp.ReplaceAllString(string(e.Value), "<time>") + "\n")
	}
	return sb.String()
}

func runScript(t *testing.T, tg target, script []step) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, s := range script {
		var data map[string]any
		if s.data != "" {
			dec := json.NewDecoder(strings.NewReader(s.data))
			dec.UseNumber()
			if err := dec.Decode(&data); err != nil {
				t.Fatalf("script data %s: %v", s.data, err)
			}
		}
		mk := func() *logical.Request {
			return &logical.Request{Operation: s.op, Path: s.path, Data: data, MountPoint: "secret/", MountType: "kv"}
		}
		line := string(s.op) + " " + s.path + ": "
		if s.exists {
			found, exists, err := tg.HandleExistenceCheck(ctx, mk())
			line += outcome(t, &logical.Response{Data: map[string]any{"found": found, "exists": exists}}, err) + " then "
		}
		resp, err := tg.HandleRequest(ctx, mk())
		out = append(out, line+outcome(t, resp, err))
	}
	return out
}

func TestKVDifferential(t *testing.T) {
	for _, c := range []struct {
		version string
		script  []step
	}{{"2", kvV2Script}, {"1", kvV1Script}} {
		t.Run("v"+c.version, func(t *testing.T) {
			ctx := context.Background()
			cfg := map[string]string{"version": c.version}

			stIn := logical.NewInmemStorage()
			b, err := kv.Factory(ctx, &logical.BackendConfig{StorageView: stIn, Config: cfg, MountPoint: "secret/", MountType: "kv"})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Initialize(ctx); err != nil {
				t.Fatal(err)
			}
			stWasm := logical.NewInmemStorage()
			m, err := testEngine.Mount(ctx, module(t, "kv"), MountConfig{ID: "kv-uuid", Path: "secret/", PluginName: "kv",
				Config: cfg, Storage: stWasm, Limits: Limits{PoolSize: 2}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)

			want := runScript(t, inProcess{b: b, st: stIn}, c.script)
			got := runScript(t, m, c.script)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("step %d differs:\n in-process: %s\n       wasm: %s", i, want[i], got[i])
				}
			}
			if a, w := storedState(t, stIn), storedState(t, stWasm); a != w {
				t.Errorf("stored state differs:\n in-process:\n%s\n wasm:\n%s", a, w)
			}
			if !equalPaths(b.SpecialPaths(), m.SpecialPaths()) || len(b.Schema().Paths) != len(m.Schema().Paths) {
				t.Errorf("special paths or schema differ: %+v / %+v", b.SpecialPaths(), m.SpecialPaths())
			}
			if testing.Verbose() {
				for _, l := range got {
					t.Log(l)
				}
			}
		})
	}
}

func equalPaths(a, b *logical.Paths) bool {
	if a == nil {
		a = &logical.Paths{}
	}
	return strings.Join(a.Root, ",") == strings.Join(b.Root, ",") &&
		strings.Join(a.Unauthenticated, ",") == strings.Join(b.Unauthenticated, ",")
}
