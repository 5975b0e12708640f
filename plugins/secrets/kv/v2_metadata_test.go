package kv

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// TestV2MetadataTranscript checks the "kv v2 metadata" transcript's shape.
func TestV2MetadataTranscript(t *testing.T) {
	e := newEnv(t, "2")
	e.write("app/db", map[string]any{"password": "s3cr3t"})
	want := map[string]any{
		"cas_required":             false,
		"created_time":             "2026-11-24T04:38:52.226743763Z",
		"current_metadata_version": 0.0,
		"current_version":          1.0,
		"custom_metadata":          nil,
		"delete_version_after":     "0s",
		"max_versions":             0.0,
		"metadata_cas_required":    false,
		"oldest_version":           0.0,
		"updated_time":             "2026-11-24T04:38:52.226743763Z",
		"versions": map[string]any{
			"1": map[string]any{"created_time": "2026-11-24T04:38:52.226743763Z", "deletion_time": "", "destroyed": false},
		},
	}
	if got := wire(t, e.ok(logical.ReadOperation, "metadata/app/db", nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("metadata = %#v\nwant %#v", got, want)
	}
	if resp := e.ok(logical.ReadOperation, "metadata/app/none", nil); resp != nil {
		t.Fatalf("metadata of missing key = %+v", resp)
	}
}

func TestV2MetadataWritePatchDelete(t *testing.T) {
	e := newEnv(t, "2")
	// A metadata write creates the key without versions.
	if resp := e.ok(logical.UpdateOperation, "metadata/k", map[string]any{
		"max_versions": 5.0, "cas_required": true, "delete_version_after": "1h",
		"custom_metadata": map[string]any{"owner": "team-a", "n": 3.0},
	}); resp != nil {
		t.Fatalf("metadata write = %+v, want nil", resp)
	}
	md := wire(t, e.ok(logical.ReadOperation, "metadata/k", nil))
	for k, v := range map[string]any{
		"max_versions": 5.0, "cas_required": true, "delete_version_after": "1h0m0s", "current_version": 0.0,
		"current_metadata_version": 1.0, "custom_metadata": map[string]any{"owner": "team-a", "n": "3"},
		"versions": map[string]any{}, "created_time": ts(0), "updated_time": ts(0),
	} {
		if !reflect.DeepEqual(md[k], v) {
			t.Fatalf("%s = %#v, want %#v", k, md[k], v)
		}
	}
	if resp := e.ok(logical.ReadOperation, "data/k", nil); resp != nil {
		t.Fatalf("data of metadata-only key = %+v", resp)
	}
	// A data write picks up the key's custom_metadata and settings.
	e.clock.Advance(time.Second)
	resp := e.ok(logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"a": "b"}, "options": map[string]any{"cas": 0.0}})
	if got := wire(t, resp); got["custom_metadata"].(map[string]any)["owner"] != "team-a" || got["deletion_time"] != ts(time.Hour+time.Second) {
		t.Fatalf("write = %v", got)
	}

	// A write replaces custom_metadata and keeps fields it does not set.
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"x": "1"}})
	md = wire(t, e.ok(logical.ReadOperation, "metadata/k", nil))
	if !reflect.DeepEqual(md["custom_metadata"], map[string]any{"x": "1"}) || md["max_versions"] != 5.0 || md["current_metadata_version"] != 2.0 {
		t.Fatalf("after write: %v", md)
	}
	// A patch merges custom_metadata (null deletes) and changes only given fields.
	e.ok(logical.PatchOperation, "metadata/k", map[string]any{
		"custom_metadata": map[string]any{"x": nil, "y": "2", "z": "3"}, "max_versions": 7.0,
	})
	md = wire(t, e.ok(logical.ReadOperation, "metadata/k", nil))
	if !reflect.DeepEqual(md["custom_metadata"], map[string]any{"y": "2", "z": "3"}) || md["max_versions"] != 7.0 ||
		md["cas_required"] != true || md["delete_version_after"] != "1h0m0s" || md["current_metadata_version"] != 3.0 {
		t.Fatalf("after patch: %v", md)
	}
	// Metadata writes do not touch versions or updated_time.
	if md["current_version"] != 1.0 || md["updated_time"] != ts(time.Second) {
		t.Fatalf("metadata write touched versions: %v", md)
	}
	// Clearing custom_metadata renders null again.
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{}})
	if got := e.ok(logical.ReadOperation, "metadata/k", nil).Data["custom_metadata"]; got != nil {
		t.Fatalf("cleared custom_metadata = %#v", got)
	}
	// Empty writes and patches change nothing.
	before := e.ok(logical.ReadOperation, "metadata/k", nil).Data
	for _, op := range []logical.Operation{logical.UpdateOperation, logical.PatchOperation} {
		for _, body := range []map[string]any{{}, {"metadata_cas": 999.0}} {
			if resp := e.ok(op, "metadata/k", body); resp != nil {
				t.Fatalf("%s %v = %+v, want nil", op, body, resp)
			}
		}
	}
	if after := e.ok(logical.ReadOperation, "metadata/k", nil).Data; !reflect.DeepEqual(before, after) {
		t.Fatalf("no-op writes changed metadata:\n%v\n%v", before, after)
	}
	// Patching a missing key answers 404 and creates nothing.
	if resp := e.ok(logical.PatchOperation, "metadata/missing", map[string]any{"max_versions": 1.0}); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("patch of missing = %+v", resp)
	}
	if resp := e.ok(logical.ReadOperation, "metadata/missing", nil); resp != nil {
		t.Fatalf("patch created metadata: %+v", resp)
	}
	e.fails(logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": -1.0}, logical.CodeInvalidRequest, "max_versions")
	e.fails(logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": "x"}, logical.CodeInvalidRequest, "max_versions")
	e.fails(logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": "x"}, logical.CodeInvalidRequest, "custom_metadata")

	// Delete removes the key and every version.
	e.ok(logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"a": "c"}, "options": map[string]any{"cas": 1.0}})
	e.ok(logical.DeleteOperation, "metadata/k", nil)
	if resp := e.ok(logical.ReadOperation, "metadata/k", nil); resp != nil {
		t.Fatalf("metadata after delete = %+v", resp)
	}
	if resp := e.ok(logical.ReadOperation, "data/k", map[string]any{"version": "1"}); resp != nil {
		t.Fatalf("data after delete = %+v", resp)
	}
	if keys := e.storageKeys(); len(keys) != 0 {
		t.Fatalf("storage after delete = %v", keys)
	}
	// Deleting again, or a missing key, answers 204.
	if resp := e.ok(logical.DeleteOperation, "metadata/k", nil); resp != nil {
		t.Fatalf("second delete = %+v", resp)
	}
	// A new write starts again at version 1.
	if v := e.write("k", map[string]any{"a": "d"}); v != 1 {
		t.Fatalf("write after delete = version %d", v)
	}
}

func TestV2MetadataWarnings(t *testing.T) {
	e := newEnv(t, "2")
	e.ok(logical.UpdateOperation, "config", map[string]any{"cas_required": true, "metadata_cas_required": true})
	resp := e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"cas_required": false, "metadata_cas_required": false, "metadata_cas": 0.0})
	want := []string{casRequiredIgnoredWarning, metadataCASRequiredIgnoredWarning}
	if resp == nil || !reflect.DeepEqual(resp.Warnings, want) {
		t.Fatalf("warnings = %+v, want %v", resp, want)
	}
	// The mount's requirement still holds.
	e.fails(logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"a": "b"}}, logical.CodeInvalidRequest, "required")
	e.fails(logical.UpdateOperation, "metadata/k", map[string]any{"max_versions": 1.0}, logical.CodeInvalidRequest, "metadata check-and-set parameter required")
}

// TestV2MetadataCAS follows OpenBao's metadata check-and-set scenario.
func TestV2MetadataCAS(t *testing.T) {
	e := newEnv(t, "2")
	mdVersion := func(key string) any {
		t.Helper()
		return e.ok(logical.ReadOperation, "metadata/"+key, nil).Data["current_metadata_version"]
	}
	e.write("first", map[string]any{"v": "x"})
	if v := mdVersion("first"); v != 0 {
		t.Fatalf("after data write: %v", v)
	}
	e.ok(logical.UpdateOperation, "metadata/first", map[string]any{"metadata_cas": 0.0, "custom_metadata": map[string]any{"owner": "first"}})
	if v := mdVersion("first"); v != 1 {
		t.Fatalf("after metadata write: %v", v)
	}

	e.fails(logical.UpdateOperation, "metadata/new", map[string]any{"metadata_cas": 1.0, "custom_metadata": map[string]any{"o": "bad"}},
		logical.CodeInvalidRequest, "metadata check-and-set parameter did not match")
	if resp := e.ok(logical.ReadOperation, "metadata/new", nil); resp != nil {
		t.Fatal("rejected create left metadata")
	}
	e.ok(logical.UpdateOperation, "metadata/new", map[string]any{"metadata_cas": 0.0, "metadata_cas_required": true,
		"custom_metadata": map[string]any{"owner": "first", "keep": "yes"}})

	rejected := []struct {
		name string
		op   logical.Operation
		body map[string]any
		msg  string
	}{
		{"missing", logical.UpdateOperation, map[string]any{"custom_metadata": map[string]any{"owner": "bad"}}, "required"},
		{"stale", logical.UpdateOperation, map[string]any{"metadata_cas": 0.0, "custom_metadata": map[string]any{"owner": "bad"}}, "did not match"},
		{"future", logical.UpdateOperation, map[string]any{"metadata_cas": 2.0, "custom_metadata": map[string]any{"owner": "bad"}}, "did not match"},
		{"patch missing", logical.PatchOperation, map[string]any{"max_versions": 3.0}, "required"},
		{"patch invalid", logical.PatchOperation, map[string]any{"metadata_cas": 1.0, "cas_required": true,
			"custom_metadata": map[string]any{"owner": []any{"invalid"}}}, "custom_metadata validation failed"},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			before := e.ok(logical.ReadOperation, "metadata/new", nil).Data
			e.fails(tt.op, "metadata/new", tt.body, logical.CodeInvalidRequest, tt.msg)
			if after := e.ok(logical.ReadOperation, "metadata/new", nil).Data; !reflect.DeepEqual(before, after) {
				t.Fatalf("rejected write changed metadata")
			}
		})
	}
	e.ok(logical.PatchOperation, "metadata/new", map[string]any{"metadata_cas": 1.0, "custom_metadata": map[string]any{"owner": nil, "team": "second"}})
	md := e.ok(logical.ReadOperation, "metadata/new", nil).Data
	if md["current_metadata_version"] != 2 || !reflect.DeepEqual(md["custom_metadata"], map[string]any{"keep": "yes", "team": "second"}) {
		t.Fatalf("after patch: %v", md)
	}
	// Data writes do not move the metadata version.
	e.write("new", map[string]any{"v": "x"})
	if v := mdVersion("new"); v != 2 {
		t.Fatalf("data write moved metadata version to %v", v)
	}
	e.ok(logical.UpdateOperation, "metadata/new", map[string]any{"metadata_cas": 2.0, "metadata_cas_required": false})
	e.ok(logical.UpdateOperation, "metadata/new", map[string]any{"custom_metadata": map[string]any{"owner": "unforced"}})
	if v := mdVersion("new"); v != 4 {
		t.Fatalf("final metadata version %v", v)
	}
}

func TestV2CustomMetadataLimits(t *testing.T) {
	many := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[strings.Repeat("k", 1)+string(rune('A'+i/26))+string(rune('a'+i%26))] = "v"
		}
		return m
	}
	tests := []struct {
		name string
		cm   map[string]any
		msg  string // "" : accepted
	}{
		{"64 keys", many(64), ""},
		{"65 keys", many(65), "payload must contain at most 64 keys, provided 65"},
		{"key 128 bytes", map[string]any{strings.Repeat("k", 128): "v"}, ""},
		{"key 129 bytes", map[string]any{strings.Repeat("k", 129): "v"}, "length of key"},
		{"empty key", map[string]any{"": "v"}, "length of key"},
		{"value 512 bytes", map[string]any{"k": strings.Repeat("v", 512)}, ""},
		{"value 513 bytes", map[string]any{"k": strings.Repeat("v", 513)}, "length of value for key \"k\" is 513"},
		{"empty value", map[string]any{"k": ""}, "length of value"},
		{"null value on write", map[string]any{"k": nil}, "length of value"},
		{"unprintable key", map[string]any{"k\x00": "v"}, "unprintable"},
		{"unprintable value", map[string]any{"k": "a\nb"}, "unprintable"},
		{"object value", map[string]any{"k": map[string]any{}}, "not a string"},
		{"number and bool", map[string]any{"n": 1.5, "b": true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "2")
			body := map[string]any{"custom_metadata": tt.cm}
			if tt.msg != "" {
				e.fails(logical.UpdateOperation, "metadata/k", body, logical.CodeInvalidRequest, tt.msg)
				return
			}
			e.ok(logical.UpdateOperation, "metadata/k", body)
		})
	}
	// A patch is checked after merging: 63 + 2 new keys is too many.
	e := newEnv(t, "2")
	e.ok(logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": many(63)})
	e.fails(logical.PatchOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"new1": "v", "new2": "v"}},
		logical.CodeInvalidRequest, "at most 64 keys")
	e.ok(logical.PatchOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"new1": "v", "kAa": nil}})
	if n := len(e.ok(logical.ReadOperation, "metadata/k", nil).Data["custom_metadata"].(map[string]any)); n != 63 {
		t.Fatalf("after patch: %d keys", n)
	}
}

// TestV2List covers the "kv v2 list", "list via GET ?list=true" and "list
// of nothing" transcripts, with nested folders.
func TestV2List(t *testing.T) {
	e := newEnv(t, "2")
	for _, p := range []string{"app/db", "app/web/a", "app/web/b", "other", "deep/x/y/z"} {
		e.write(p, map[string]any{"v": "x"})
	}
	e.ok(logical.UpdateOperation, "metadata/app/meta-only", map[string]any{"max_versions": 1.0})
	tests := []struct {
		path string
		data map[string]any
		want []string // nil: 404
	}{
		{"metadata/app", nil, []string{"db", "meta-only", "web/"}},
		{"metadata/app/", map[string]any{"list": "true"}, []string{"db", "meta-only", "web/"}},
		{"metadata/", nil, []string{"app/", "deep/", "other"}},
		{"metadata", nil, []string{"app/", "deep/", "other"}},
		{"metadata/app/web/", nil, []string{"a", "b"}},
		{"metadata/deep/x/", nil, []string{"y/"}},
		{"metadata/none", nil, nil},
		{"metadata/other/", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp := e.ok(logical.ListOperation, tt.path, tt.data)
			if tt.want == nil {
				if resp != nil {
					t.Fatalf("list = %+v, want nil (404)", resp)
				}
				return
			}
			if got := resp.Data["keys"]; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("keys = %v, want %v", got, tt.want)
			}
		})
	}
	// Deleting the only key under a folder removes the folder from listings.
	e.ok(logical.DeleteOperation, "metadata/deep/x/y/z", nil)
	if resp := e.ok(logical.ListOperation, "metadata/", nil); !reflect.DeepEqual(resp.Data["keys"], []string{"app/", "other"}) {
		t.Fatalf("after delete: %v", resp.Data["keys"])
	}
	// Soft-deleted and destroyed keys are still listed, as in Vault.
	e.ok(logical.DeleteOperation, "data/other", nil)
	if resp := e.ok(logical.ListOperation, "metadata/", nil); !reflect.DeepEqual(resp.Data["keys"], []string{"app/", "other"}) {
		t.Fatalf("after soft delete: %v", resp.Data["keys"])
	}
}
