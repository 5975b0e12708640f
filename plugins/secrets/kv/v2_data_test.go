package kv

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// ts is the wire form of epoch + d.
func ts(d time.Duration) string { return epoch.Add(d).Format(time.RFC3339Nano) }

// TestV2WriteReadTranscript checks the shapes of the "kv v2 write", "kv v2
// read", "kv v2 read missing", "kv v2 soft delete" and "kv v2 read after
// delete" transcripts.
func TestV2WriteReadTranscript(t *testing.T) {
	e := newEnv(t, "2")
	resp := e.ok(logical.UpdateOperation, "data/app/db", map[string]any{"data": map[string]any{"password": "s3cr3t"}})
	wantMeta := map[string]any{
		"created_time":    "2026-11-24T04:38:52.226743763Z",
		"custom_metadata": nil,
		"deletion_time":   "",
		"destroyed":       false,
		"version":         1.0,
	}
	if got := wire(t, resp); !reflect.DeepEqual(got, wantMeta) {
		t.Fatalf("write = %#v\nwant %#v", got, wantMeta)
	}

	resp = e.ok(logical.ReadOperation, "data/app/db", nil)
	if resp.StatusCode != 0 {
		t.Fatalf("read status = %d", resp.StatusCode)
	}
	want := map[string]any{"data": map[string]any{"password": "s3cr3t"}, "metadata": wantMeta}
	if got := wire(t, resp); !reflect.DeepEqual(got, want) {
		t.Fatalf("read = %#v\nwant %#v", got, want)
	}

	if resp := e.ok(logical.ReadOperation, "data/app/none", nil); resp != nil {
		t.Fatalf("read missing = %+v, want nil (404)", resp)
	}

	e.clock.Advance(3 * time.Second)
	if resp := e.ok(logical.DeleteOperation, "data/app/db", nil); resp != nil {
		t.Fatalf("soft delete = %+v, want nil (204)", resp)
	}
	resp = e.ok(logical.ReadOperation, "data/app/db", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("read after delete status = %d, want 404", resp.StatusCode)
	}
	deleted := map[string]any{"data": nil, "metadata": map[string]any{
		"created_time":    "2026-11-24T04:38:52.226743763Z",
		"custom_metadata": nil,
		"deletion_time":   ts(3 * time.Second),
		"destroyed":       false,
		"version":         1.0,
	}}
	if got := wire(t, resp); !reflect.DeepEqual(got, deleted) {
		t.Fatalf("read after delete = %#v\nwant %#v", got, deleted)
	}
	// A second delete of an already deleted version changes nothing.
	e.clock.Advance(time.Second)
	e.ok(logical.DeleteOperation, "data/app/db", nil)
	if got := wire(t, e.ok(logical.ReadOperation, "data/app/db", nil)); !reflect.DeepEqual(got, deleted) {
		t.Fatalf("second delete moved deletion_time: %#v", got)
	}
	// Deleting a missing key answers 204.
	if resp := e.ok(logical.DeleteOperation, "data/nope", nil); resp != nil {
		t.Fatalf("delete missing = %+v", resp)
	}
}

func TestV2Versions(t *testing.T) {
	e := newEnv(t, "2")
	for i := 1; i <= 3; i++ {
		e.clock.Advance(time.Second)
		if v := e.write("k", map[string]any{"i": i}); v != i {
			t.Fatalf("write %d answered version %d", i, v)
		}
	}
	tests := []struct {
		name    string
		version any // query value; nil: absent
		want    int // 0: not found; -1: 400
	}{
		{"latest", nil, 3},
		{"zero is latest", "0", 3},
		{"string 1", "1", 1},
		{"string 2", "2", 2},
		{"float 3", 3.0, 3},
		{"json number", json.Number("2"), 2},
		{"future", "4", 0},
		{"not a number", "abc", -1},
		{"negative", "-1", -1},
		{"fraction", 1.5, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data map[string]any
			if tt.version != nil {
				data = map[string]any{"version": tt.version}
			}
			resp, err := e.do(logical.ReadOperation, "data/k", data)
			switch {
			case tt.want == -1:
				if logical.CodeOf(err) != logical.CodeInvalidRequest {
					t.Fatalf("err = %v, want 400", err)
				}
			case err != nil:
				t.Fatal(err)
			case tt.want == 0:
				if resp != nil {
					t.Fatalf("resp = %+v, want nil", resp)
				}
			default:
				md := resp.Data["metadata"].(map[string]any)
				if md["version"] != tt.want || md["created_time"] != ts(time.Duration(tt.want)*time.Second) {
					t.Fatalf("metadata = %v, want version %d", md, tt.want)
				}
				if got := resp.Data["data"].(map[string]any)["i"]; got != json.Number(strconv.Itoa(tt.want)) {
					t.Fatalf("data i = %#v", got)
				}
			}
		})
	}
}

func TestV2CAS(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(e *env)
		options map[string]any
		wantErr string // "" : success
	}{
		{"new key cas 0", nil, map[string]any{"cas": 0.0}, ""},
		{"new key cas 1", nil, map[string]any{"cas": 1.0}, "did not match"},
		{"existing cas current", func(e *env) { e.write("k", map[string]any{"a": 1}) }, map[string]any{"cas": json.Number("1")}, ""},
		{"existing cas 0 (transcript)", func(e *env) { e.write("k", map[string]any{"a": 1}) }, map[string]any{"cas": 0.0}, "check-and-set parameter did not match the current version"},
		{"existing cas stale", func(e *env) { e.write("k", map[string]any{"a": 1}); e.write("k", map[string]any{"a": 2}) }, map[string]any{"cas": 1.0}, "did not match"},
		{"cas as string", func(e *env) { e.write("k", map[string]any{"a": 1}) }, map[string]any{"cas": "1"}, ""},
		{"cas not a number", nil, map[string]any{"cas": "x"}, "error parsing check-and-set parameter"},
		{"cas null is absent", nil, map[string]any{"cas": nil}, ""},
		{"no options", nil, nil, ""},
		{"mount requires cas", func(e *env) { e.ok(logical.UpdateOperation, "config", map[string]any{"cas_required": true}) }, nil, "check-and-set parameter required for this call"},
		{"mount requires cas, given", func(e *env) { e.ok(logical.UpdateOperation, "config", map[string]any{"cas_required": true}) }, map[string]any{"cas": 0.0}, ""},
		{"key requires cas", func(e *env) {
			e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"cas_required": true})
		}, map[string]any{}, "check-and-set parameter required for this call"},
		{"key requires cas, given", func(e *env) {
			e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"cas_required": true})
		}, map[string]any{"cas": 0.0}, ""},
		{"key requirement is per key", func(e *env) {
			e.ok(logical.UpdateOperation, "metadata/other", map[string]any{"cas_required": true})
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "2")
			if tt.setup != nil {
				tt.setup(e)
			}
			before := e.storageKeys()
			data := map[string]any{"data": map[string]any{"password": "x"}}
			if tt.options != nil {
				data["options"] = tt.options
			}
			if tt.wantErr != "" {
				e.fails(logical.UpdateOperation, "data/k", data, logical.CodeInvalidRequest, tt.wantErr)
				if after := e.storageKeys(); !reflect.DeepEqual(before, after) {
					t.Fatalf("rejected write changed storage: %v -> %v", before, after)
				}
				return
			}
			e.ok(logical.UpdateOperation, "data/k", data)
		})
	}
}

func TestV2WriteErrors(t *testing.T) {
	e := newEnv(t, "2")
	tests := []struct {
		name string
		op   logical.Operation
		path string
		data map[string]any
		code logical.Code
		msg  string
	}{
		{"no data", logical.UpdateOperation, "data/k", map[string]any{}, logical.CodeInvalidRequest, "no data provided"},
		{"data null", logical.UpdateOperation, "data/k", map[string]any{"data": nil}, logical.CodeInvalidRequest, "no data provided"},
		{"data string", logical.UpdateOperation, "data/k", map[string]any{"data": "x"}, logical.CodeInvalidRequest, "no data provided"},
		{"data array", logical.CreateOperation, "data/k", map[string]any{"data": []any{"x"}}, logical.CodeInvalidRequest, "no data provided"},
		{"options not object", logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{}, "options": "x"}, logical.CodeInvalidRequest, "options"},
		{"patch no data", logical.PatchOperation, "data/k", map[string]any{}, logical.CodeInvalidRequest, "no data provided"},
		{"missing path", logical.UpdateOperation, "data/", map[string]any{"data": map[string]any{"a": "b"}}, logical.CodeInvalidRequest, "missing path"},
		{"unknown path", logical.ReadOperation, "foo", nil, logical.CodeNotFound, "unsupported path"},
		{"bare data", logical.ReadOperation, "data", nil, logical.CodeNotFound, "unsupported path"},
		{"list data", logical.ListOperation, "data/", nil, logical.CodeUnsupportedOperation, "unsupported operation"},
		{"delete on delete/", logical.DeleteOperation, "delete/k", nil, logical.CodeUnsupportedOperation, "unsupported operation"},
		{"read destroy/", logical.ReadOperation, "destroy/k", nil, logical.CodeUnsupportedOperation, "unsupported operation"},
		{"patch config", logical.PatchOperation, "config", map[string]any{}, logical.CodeUnsupportedOperation, "unsupported operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.fails(tt.op, tt.path, tt.data, tt.code, tt.msg)
		})
	}
	if keys := e.storageKeys(); len(keys) != 0 {
		t.Fatalf("failed requests wrote %v", keys)
	}
	if _, err := e.do(logical.ReadOperation, "nosuch/x", nil); !errors.Is(err, logical.ErrUnsupportedPath) {
		t.Fatalf("unknown path: %v, want ErrUnsupportedPath", err)
	}
}

func TestV2PathValidation(t *testing.T) {
	bad := []string{"a/../b", "..", "a/..", "./a", "a/./b", "a//b", "/a", "a/"}
	prefixes := []struct {
		prefix string
		op     logical.Operation
		data   map[string]any
	}{
		{"data/", logical.UpdateOperation, map[string]any{"data": map[string]any{"a": "b"}}},
		{"data/", logical.ReadOperation, nil},
		{"data/", logical.PatchOperation, map[string]any{"data": map[string]any{"a": "b"}}},
		{"data/", logical.DeleteOperation, nil},
		{"metadata/", logical.UpdateOperation, map[string]any{"max_versions": 3.0}},
		{"metadata/", logical.ReadOperation, nil},
		{"metadata/", logical.PatchOperation, map[string]any{"max_versions": 3.0}},
		{"metadata/", logical.DeleteOperation, nil},
		{"delete/", logical.UpdateOperation, map[string]any{"versions": []any{1.0}}},
		{"undelete/", logical.UpdateOperation, map[string]any{"versions": []any{1.0}}},
		{"destroy/", logical.UpdateOperation, map[string]any{"versions": []any{1.0}}},
	}
	e := newEnv(t, "2")
	for _, p := range prefixes {
		for _, key := range bad {
			t.Run(string(p.op)+" "+p.prefix+key, func(t *testing.T) {
				e.fails(p.op, p.prefix+key, p.data, logical.CodeInvalidRequest, "invalid path")
			})
		}
	}
	for _, folder := range []string{"../", "a/../", "a//"} {
		e.fails(logical.ListOperation, "metadata/"+folder, nil, logical.CodeInvalidRequest, "invalid path")
	}
	if keys := e.storageKeys(); len(keys) != 0 {
		t.Fatalf("rejected requests wrote %v", keys)
	}
}

// A body or query field named "path" must not stand in for the key the
// request path names (the framework only overrides it with a non-empty
// capture).
func TestV2BodyPathCannotRedirect(t *testing.T) {
	e := newEnv(t, "2")
	e.write("victim", map[string]any{"a": "b"})
	e.fails(logical.UpdateOperation, "data/", map[string]any{"path": "victim", "data": map[string]any{"x": "y"}},
		logical.CodeInvalidRequest, "missing path")
	e.fails(logical.ReadOperation, "data/", map[string]any{"path": "victim"}, logical.CodeInvalidRequest, "missing path")
	e.fails(logical.UpdateOperation, "destroy/", map[string]any{"path": "victim", "versions": []any{1.0}},
		logical.CodeInvalidRequest, "missing path")
	e.fails(logical.DeleteOperation, "metadata/", map[string]any{"path": "victim"}, logical.CodeInvalidRequest, "missing path")
	// Listing the root with ?path=victim still lists the root.
	resp := e.ok(logical.ListOperation, "metadata/", map[string]any{"path": "victim/", "list": "true"})
	if got := resp.Data["keys"]; !reflect.DeepEqual(got, []string{"victim"}) {
		t.Fatalf("keys = %v", got)
	}
	if resp := e.ok(logical.ReadOperation, "metadata/victim", nil); resp.Data["current_version"] != 1 {
		t.Fatalf("victim changed: %v", resp.Data)
	}
}

func TestV2MaxVersions(t *testing.T) {
	tests := []struct {
		name        string
		mountMax    int // 0: unset
		keyMax      int // 0: unset
		writes      int
		wantOldest  int   // oldest_version reported
		wantVersion []int // versions retained
	}{
		{"default 10 not reached", 0, 0, 10, 0, seq(1, 10)},
		{"default 10 exceeded", 0, 0, 12, 3, seq(3, 12)},
		{"mount 3", 3, 0, 5, 3, seq(3, 5)},
		{"key 2 beats mount 3", 3, 2, 5, 4, seq(4, 5)},
		{"key 4 beats mount 2", 2, 4, 5, 2, seq(2, 5)},
		{"key 1", 0, 1, 3, 3, seq(3, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "2")
			if tt.mountMax > 0 {
				e.ok(logical.UpdateOperation, "config", map[string]any{"max_versions": float64(tt.mountMax)})
			}
			if tt.keyMax > 0 {
				e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": float64(tt.keyMax)})
			}
			for i := 1; i <= tt.writes; i++ {
				e.write("k", map[string]any{"i": i})
			}
			md := e.ok(logical.ReadOperation, "metadata/k", nil).Data
			if md["oldest_version"] != tt.wantOldest || md["current_version"] != tt.writes {
				t.Fatalf("oldest %v current %v, want %d %d", md["oldest_version"], md["current_version"], tt.wantOldest, tt.writes)
			}
			var got []int
			for v := range md["versions"].(map[string]any) {
				n, _ := strconv.Atoi(v)
				got = append(got, n)
			}
			if !sameInts(got, tt.wantVersion) {
				t.Fatalf("versions %v, want %v", got, tt.wantVersion)
			}
			// Pruned data is gone from storage; retained data is there.
			for i := 1; i <= tt.writes; i++ {
				retained := containsInt(tt.wantVersion, i)
				if e.hasKey(versionKey("k", i)) != retained {
					t.Fatalf("version %d record present=%v, want %v", i, !retained, retained)
				}
				resp := e.ok(logical.ReadOperation, "data/k", map[string]any{"version": strconv.Itoa(i)})
				if (resp != nil) != retained {
					t.Fatalf("read version %d = %+v, retained=%v", i, resp, retained)
				}
			}
		})
	}
}

// Lowering max_versions prunes on the next write, as in Vault, and removes
// every excess version at once.
func TestV2MaxVersionsLowered(t *testing.T) {
	e := newEnv(t, "2")
	for i := 1; i <= 6; i++ {
		e.write("k", map[string]any{"i": i})
	}
	e.ok(logical.UpdateOperation, "destroy/k", map[string]any{"versions": []any{3.0}})
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": 2.0})
	if n := len(e.ok(logical.ReadOperation, "metadata/k", nil).Data["versions"].(map[string]any)); n != 6 {
		t.Fatalf("metadata write pruned: %d versions", n)
	}
	e.write("k", map[string]any{"i": 7})
	md := e.ok(logical.ReadOperation, "metadata/k", nil).Data
	if md["oldest_version"] != 6 || len(md["versions"].(map[string]any)) != 2 {
		t.Fatalf("after write: oldest %v versions %v", md["oldest_version"], md["versions"])
	}
	want := []string{"meta/k", "ver/k/6", "ver/k/7"} // no config: never written
	if got := e.storageKeys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("storage = %v, want %v", got, want)
	}
}

func TestV2SoftDeleteUndeleteDestroy(t *testing.T) {
	e := newEnv(t, "2")
	for i := 1; i <= 4; i++ {
		e.write("k", map[string]any{"i": i})
	}
	e.clock.Advance(time.Minute)
	del := ts(time.Minute)

	e.ok(logical.UpdateOperation, "delete/k", map[string]any{"versions": []any{1.0, "2", 99.0, 0.0}})
	e.ok(logical.UpdateOperation, "destroy/k", map[string]any{"versions": "3"})

	type state struct {
		deletion  string
		destroyed bool
		readable  bool
	}
	check := func(step string, want map[int]state) {
		t.Helper()
		md := e.ok(logical.ReadOperation, "metadata/k", nil).Data["versions"].(map[string]any)
		for n, w := range want {
			vm := md[strconv.Itoa(n)].(map[string]any)
			if vm["deletion_time"] != w.deletion || vm["destroyed"] != w.destroyed {
				t.Fatalf("%s: version %d metadata %v, want %+v", step, n, vm, w)
			}
			resp := e.ok(logical.ReadOperation, "data/k", map[string]any{"version": strconv.Itoa(n)})
			if w.readable {
				if resp.StatusCode != 0 || resp.Data["data"] == nil {
					t.Fatalf("%s: version %d not readable: %+v", step, n, resp)
				}
				continue
			}
			if resp.StatusCode != http.StatusNotFound || resp.Data["data"] != nil {
				t.Fatalf("%s: version %d readable: %+v", step, n, resp)
			}
			got := wire(t, resp)["metadata"].(map[string]any)
			if got["version"] != float64(n) || got["deletion_time"] != w.deletion || got["destroyed"] != w.destroyed {
				t.Fatalf("%s: 404 metadata of %d = %v", step, n, got)
			}
		}
	}
	check("after delete+destroy", map[int]state{
		1: {del, false, false}, 2: {del, false, false}, 3: {"", true, false}, 4: {"", false, true},
	})
	if e.hasKey(versionKey("k", 3)) {
		t.Fatal("destroyed version's data still stored")
	}
	if !e.hasKey(versionKey("k", 1)) {
		t.Fatal("soft delete removed data")
	}

	e.clock.Advance(time.Minute)
	e.ok(logical.UpdateOperation, "undelete/k", map[string]any{"versions": []any{1.0, 3.0}})
	check("after undelete", map[int]state{
		1: {"", false, true}, 2: {del, false, false}, 3: {"", true, false}, 4: {"", false, true},
	})
	// Destroying a soft-deleted version keeps its deletion_time, as in Vault.
	e.ok(logical.UpdateOperation, "destroy/k", map[string]any{"versions": []any{2.0}})
	check("after destroy of deleted", map[int]state{2: {del, true, false}})
	if e.hasKey(versionKey("k", 2)) {
		t.Fatal("destroyed version's data still stored")
	}

	// The latest version can be soft-deleted through data/ and restored.
	e.ok(logical.DeleteOperation, "data/k", nil)
	check("after data delete", map[int]state{4: {ts(2 * time.Minute), false, false}})
	e.ok(logical.UpdateOperation, "undelete/k", map[string]any{"versions": []any{4.0}})
	check("after undelete latest", map[int]state{4: {"", false, true}})

	// Errors and no-ops.
	for _, op := range []string{"delete", "undelete", "destroy"} {
		e.fails(logical.UpdateOperation, op+"/k", map[string]any{}, logical.CodeInvalidRequest, "no version number provided")
		e.fails(logical.UpdateOperation, op+"/k", map[string]any{"versions": []any{}}, logical.CodeInvalidRequest, "no version number provided")
		e.fails(logical.UpdateOperation, op+"/k", map[string]any{"versions": []any{"x"}}, logical.CodeInvalidRequest, "invalid version")
		e.fails(logical.UpdateOperation, op+"/k", map[string]any{"versions": map[string]any{}}, logical.CodeInvalidRequest, "invalid version")
		if resp := e.ok(logical.UpdateOperation, op+"/missing", map[string]any{"versions": []any{1.0}}); resp != nil {
			t.Fatalf("%s of a missing key = %+v", op, resp)
		}
	}
	// A destroyed latest version cannot be soft-deleted (nothing to do).
	e.write("k", map[string]any{"i": 5})
	e.ok(logical.UpdateOperation, "destroy/k", map[string]any{"versions": []any{5.0}})
	e.ok(logical.DeleteOperation, "data/k", nil)
	check("destroyed latest", map[int]state{5: {"", true, false}})
}

func TestV2DataPatch(t *testing.T) {
	base := map[string]any{"a": "1", "b": map[string]any{"c": "2", "d": "3"}, "list": []any{"x", "y"}}
	tests := []struct {
		name  string
		patch map[string]any
		want  map[string]any
	}{
		{"add key", map[string]any{"e": "4"},
			map[string]any{"a": "1", "b": map[string]any{"c": "2", "d": "3"}, "list": []any{"x", "y"}, "e": "4"}},
		{"replace key", map[string]any{"a": "9"},
			map[string]any{"a": "9", "b": map[string]any{"c": "2", "d": "3"}, "list": []any{"x", "y"}}},
		{"null removes key", map[string]any{"a": nil},
			map[string]any{"b": map[string]any{"c": "2", "d": "3"}, "list": []any{"x", "y"}}},
		{"nested merge", map[string]any{"b": map[string]any{"c": nil, "z": "0"}},
			map[string]any{"a": "1", "b": map[string]any{"d": "3", "z": "0"}, "list": []any{"x", "y"}}},
		{"array replaced", map[string]any{"list": []any{"z"}},
			map[string]any{"a": "1", "b": map[string]any{"c": "2", "d": "3"}, "list": []any{"z"}}},
		{"object replaces scalar", map[string]any{"a": map[string]any{"n": nil, "m": "1"}},
			map[string]any{"a": map[string]any{"m": "1"}, "b": map[string]any{"c": "2", "d": "3"}, "list": []any{"x", "y"}}},
		{"remove missing key", map[string]any{"nope": nil}, base},
		{"empty patch", map[string]any{}, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "2")
			e.write("k", base)
			resp := e.ok(logical.PatchOperation, "data/k", map[string]any{"data": tt.patch})
			if resp.Data["version"] != 2 {
				t.Fatalf("patch answered %v", resp.Data)
			}
			got := wire(t, e.ok(logical.ReadOperation, "data/k", nil))["data"]
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("after patch %#v\nwant %#v", got, tt.want)
			}
			old := wire(t, e.ok(logical.ReadOperation, "data/k", map[string]any{"version": "1"}))["data"]
			if !reflect.DeepEqual(old, base) {
				t.Fatalf("patch changed version 1: %#v", old)
			}
		})
	}
}

func TestV2DataPatchConditions(t *testing.T) {
	e := newEnv(t, "2")
	patch := map[string]any{"data": map[string]any{"b": "2"}}

	resp := e.ok(logical.PatchOperation, "data/k", patch)
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("patch of missing key = %+v, want 404", resp)
	}
	e.write("k", map[string]any{"a": "1"})

	// CAS applies to patches.
	e.fails(logical.PatchOperation, "data/k", map[string]any{"data": map[string]any{}, "options": map[string]any{"cas": 0.0}},
		logical.CodeInvalidRequest, "did not match")
	e.ok(logical.PatchOperation, "data/k", map[string]any{"data": map[string]any{"b": "2"}, "options": map[string]any{"cas": 1.0}})
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"cas_required": true})
	e.fails(logical.PatchOperation, "data/k", patch, logical.CodeInvalidRequest, "required")

	e.ok(logical.DeleteOperation, "data/k", nil)
	resp = e.ok(logical.PatchOperation, "data/k", map[string]any{"data": map[string]any{"c": "3"}, "options": map[string]any{"cas": 2.0}})
	if resp.StatusCode != http.StatusNotFound || resp.Data["version"] != 2 || resp.Data["deletion_time"] != ts(0) {
		t.Fatalf("patch of deleted latest = %+v, want 404 with its metadata", resp)
	}
	e.ok(logical.UpdateOperation, "destroy/k", map[string]any{"versions": []any{2.0}})
	resp = e.ok(logical.PatchOperation, "data/k", map[string]any{"data": map[string]any{"c": "3"}, "options": map[string]any{"cas": 2.0}})
	if resp.StatusCode != http.StatusNotFound || resp.Data["destroyed"] != true {
		t.Fatalf("patch of destroyed latest = %+v", resp)
	}
	if v := e.ok(logical.ReadOperation, "metadata/k", nil).Data["current_version"]; v != 2 {
		t.Fatalf("failed patches created versions: current %v", v)
	}
}

func TestV2DeleteVersionAfter(t *testing.T) {
	tests := []struct {
		name     string
		mount    string // "" : unset
		key      string
		wantLife time.Duration // 0: never deleted
	}{
		{"unset", "", "", 0},
		{"mount only", "1h", "", time.Hour},
		{"key only", "", "30m", 30 * time.Minute},
		{"key smaller wins", "1h", "30m", 30 * time.Minute},
		{"mount smaller wins", "10m", "30m", 10 * time.Minute},
		{"seconds as number", "", "90", 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "2")
			if tt.mount != "" {
				e.ok(logical.UpdateOperation, "config", map[string]any{"delete_version_after": tt.mount})
			}
			if tt.key != "" {
				e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"delete_version_after": tt.key})
			}
			resp := e.ok(logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"a": "b"}})
			wantDeletion := ""
			if tt.wantLife > 0 {
				wantDeletion = ts(tt.wantLife)
			}
			if resp.Data["deletion_time"] != wantDeletion {
				t.Fatalf("deletion_time = %q, want %q", resp.Data["deletion_time"], wantDeletion)
			}
			if tt.wantLife == 0 {
				e.clock.Advance(1000 * time.Hour)
				if resp := e.ok(logical.ReadOperation, "data/k", nil); resp.StatusCode != 0 {
					t.Fatalf("read = %+v", resp)
				}
				return
			}
			e.clock.Advance(tt.wantLife - time.Nanosecond)
			if resp := e.ok(logical.ReadOperation, "data/k", nil); resp.StatusCode != 0 || resp.Data["data"] == nil {
				t.Fatalf("read just before deletion = %+v", resp)
			}
			e.clock.Advance(time.Nanosecond)
			if resp := e.ok(logical.ReadOperation, "data/k", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("read at deletion = %+v, want 404", resp)
			}
			// An expired version can be undeleted, which clears the schedule.
			e.ok(logical.UpdateOperation, "undelete/k", map[string]any{"versions": []any{1.0}})
			if resp := e.ok(logical.ReadOperation, "data/k", nil); resp.StatusCode != 0 || resp.Data["metadata"].(map[string]any)["deletion_time"] != "" {
				t.Fatalf("read after undelete = %+v", resp)
			}
		})
	}
}

func TestV2Config(t *testing.T) {
	e := newEnv(t, "2")
	want := map[string]any{"max_versions": 0.0, "cas_required": false, "delete_version_after": "0s", "metadata_cas_required": false}
	if got := wire(t, e.ok(logical.ReadOperation, "config", nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("default config = %v", got)
	}
	if resp := e.ok(logical.UpdateOperation, "config", map[string]any{"max_versions": json.Number("5"), "delete_version_after": "1h30m"}); resp != nil {
		t.Fatalf("config write = %+v, want nil", resp)
	}
	e.ok(logical.CreateOperation, "config", map[string]any{"cas_required": true})
	want = map[string]any{"max_versions": 5.0, "cas_required": true, "delete_version_after": "1h30m0s", "metadata_cas_required": false}
	if got := wire(t, e.ok(logical.ReadOperation, "config", nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("config = %v, want %v", got, want)
	}
	e.ok(logical.UpdateOperation, "config", map[string]any{"delete_version_after": "0s"})
	if got := e.ok(logical.ReadOperation, "config", nil).Data["delete_version_after"]; got != "0s" {
		t.Fatalf("cleared delete_version_after = %v", got)
	}
	e.fails(logical.UpdateOperation, "config", map[string]any{"max_versions": -1.0}, logical.CodeInvalidRequest, "max_versions")
	e.fails(logical.UpdateOperation, "config", map[string]any{"delete_version_after": "-1h"}, logical.CodeInvalidRequest, "delete_version_after")
	e.fails(logical.UpdateOperation, "config", map[string]any{"cas_required": "maybe"}, logical.CodeInvalidRequest, "cas_required")
}

// Storage holds the documented layout and nothing else.
func TestV2StorageLayout(t *testing.T) {
	e := newEnv(t, "2")
	e.ok(logical.UpdateOperation, "config", map[string]any{"max_versions": 3.0})
	e.write("app/db", map[string]any{"a": "b"})
	e.write("app/db", map[string]any{"a": "c"})
	e.write("app/db/child", map[string]any{"a": "d"})
	want := []string{"config", "meta/app/db", "meta/app/db/child", "ver/app/db/1", "ver/app/db/2", "ver/app/db/child/1"}
	if got := e.storageKeys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("storage = %v\nwant %v", got, want)
	}
	// Deleting a key leaves its child alone.
	e.ok(logical.DeleteOperation, "metadata/app/db", nil)
	want = []string{"config", "meta/app/db/child", "ver/app/db/child/1"}
	if got := e.storageKeys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after delete = %v\nwant %v", got, want)
	}
}

// A failed storage write leaves the key as it was.
func TestV2StorageFaults(t *testing.T) {
	for _, failKey := range []string{"ver/k/2", "meta/k"} {
		t.Run(failKey, func(t *testing.T) {
			e := newEnv(t, "2")
			e.write("k", map[string]any{"a": "1"})
			fs := &faultyStorage{Storage: e.s, fail: func(op, key string) bool { return op == "put" && key == failKey }}
			_, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "data/k",
				Storage: fs, Data: map[string]any{"data": map[string]any{"a": "topsecret"}}})
			if err == nil || logical.CodeOf(err) != logical.CodeInternal {
				t.Fatalf("err = %v, want internal", err)
			}
			resp := e.ok(logical.ReadOperation, "data/k", nil)
			if resp.Data["metadata"].(map[string]any)["version"] != 1 || wire(t, resp)["data"].(map[string]any)["a"] != "1" {
				t.Fatalf("after failed write: %+v", resp.Data)
			}
			// The next write succeeds and takes version 2.
			if v := e.write("k", map[string]any{"a": "2"}); v != 2 {
				t.Fatalf("next write = version %d", v)
			}
		})
	}
	// A failing prune is a warning, not an error; metadata delete collects the record.
	e := newEnv(t, "2")
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": 1.0})
	e.write("k", map[string]any{"a": "1"})
	fs := &faultyStorage{Storage: e.s, fail: func(op, key string) bool { return op == "delete" }}
	resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "data/k",
		Storage: fs, Data: map[string]any{"data": map[string]any{"a": "2"}}})
	if err != nil || len(resp.Warnings) != 1 {
		t.Fatalf("write with failing prune: %+v, %v", resp, err)
	}
	if !e.hasKey("ver/k/1") {
		t.Fatal("pruned record unexpectedly removed")
	}
	e.ok(logical.DeleteOperation, "metadata/k", nil)
	if keys := e.storageKeys(); len(keys) != 0 {
		t.Fatalf("metadata delete left %v", keys)
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func containsInt(s []int, n int) bool {
	for _, v := range s {
		if v == n {
			return true
		}
	}
	return false
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for _, v := range a {
		if !containsInt(b, v) {
			return false
		}
	}
	return true
}
