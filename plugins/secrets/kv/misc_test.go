package kv

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// Every path has help; the schema lists what each path serves.
func TestHelpAndSchema(t *testing.T) {
	tests := []struct {
		version string
		paths   []string // one request path per pattern
		ops     map[string][]logical.Operation
	}{
		{"1", []string{"a/b"}, map[string][]logical.Operation{
			"a/b": {logical.CreateOperation, logical.DeleteOperation, logical.ListOperation, logical.ReadOperation, logical.UpdateOperation},
		}},
		{"2", []string{"config", "data/a", "delete/a", "undelete/a", "destroy/a", "metadata/a"}, map[string][]logical.Operation{
			"config":     {logical.CreateOperation, logical.ReadOperation, logical.UpdateOperation},
			"data/a":     {logical.CreateOperation, logical.DeleteOperation, logical.PatchOperation, logical.ReadOperation, logical.UpdateOperation},
			"delete/a":   {logical.UpdateOperation},
			"metadata/a": {logical.CreateOperation, logical.DeleteOperation, logical.ListOperation, logical.PatchOperation, logical.ReadOperation, logical.UpdateOperation},
		}},
	}
	for _, tt := range tests {
		t.Run("v"+tt.version, func(t *testing.T) {
			e := newEnv(t, tt.version)
			schema := e.b.Schema()
			if schema.Help == "" || len(schema.Paths) != len(tt.paths) {
				t.Fatalf("schema help %q, %d paths", schema.Help, len(schema.Paths))
			}
			for i, ps := range schema.Paths {
				if ps.Synopsis == "" || ps.Description == "" {
					t.Errorf("pattern %q lacks help", ps.Pattern)
				}
				if want, ok := tt.ops[tt.paths[i]]; ok && !reflect.DeepEqual(ps.Operations, want) {
					t.Errorf("pattern %q operations %v, want %v", ps.Pattern, ps.Operations, want)
				}
			}
			for _, p := range tt.paths {
				resp := e.ok(logical.HelpOperation, p, nil)
				if h, _ := resp.Data["help"].(string); h == "" {
					t.Errorf("no help for %q", p)
				}
			}
		})
	}
}

// No error or warning carries secret material, whatever fails.
func TestErrorsHoldNoSecrets(t *testing.T) {
	const secret = "hunter2-TOP-SECRET"
	e := newEnv(t, "2")
	e.write("k", map[string]any{"password": secret})
	e.ok(logical.UpdateOperation, "metadata/cm", map[string]any{"custom_metadata": map[string]any{"a": "b"}})
	requests := []struct {
		op   logical.Operation
		path string
		data map[string]any
	}{
		{logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"password": secret}, "options": map[string]any{"cas": 0}}},
		{logical.UpdateOperation, "data/k", map[string]any{"data": map[string]any{"password": secret}, "options": map[string]any{"cas": secret}}},
		{logical.UpdateOperation, "data/k", map[string]any{"data": secret}},
		{logical.PatchOperation, "data/k", map[string]any{"data": map[string]any{"password": secret}, "options": map[string]any{"cas": 7}}},
		{logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"k": strings.Repeat(secret, 40)}}},
		{logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"k": secret + "\x00"}}},
		{logical.UpdateOperation, "metadata/k", map[string]any{"custom_metadata": map[string]any{"k": []any{secret}}}},
		{logical.UpdateOperation, "delete/k", map[string]any{"versions": []any{secret}}},
		{logical.ReadOperation, "data/k", map[string]any{"version": secret}},
	}
	for _, r := range requests {
		_, err := e.do(r.op, r.path, r.data)
		if err == nil {
			t.Fatalf("%s %s succeeded", r.op, r.path)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s %s: error leaks the secret: %q", r.op, r.path, err)
		}
	}
	// A corrupt stored record is reported without its bytes.
	if err := e.s.Put(t.Context(), &logical.StorageEntry{Key: "ver/k/1", Value: []byte(`{"data": hunter2`)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.do(logical.ReadOperation, "data/k", nil)
	if err == nil || logical.CodeOf(err) != logical.CodeInternal || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("corrupt record: %v", err)
	}
}

func TestParseVersions(t *testing.T) {
	tests := []struct {
		name string
		raw  any
		want []int
		err  error
	}{
		{"floats", []any{1.0, 2.0}, []int{1, 2}, nil},
		{"strings", []any{"3", "4"}, []int{3, 4}, nil},
		{"comma string", "1,2, 3", []int{1, 2, 3}, nil},
		{"comma in array", []any{"1,2"}, []int{1, 2}, nil},
		{"ints", []int{5}, []int{5}, nil},
		{"missing", nil, nil, errNoVersions},
		{"empty", []any{}, nil, errNoVersions},
		{"empty string", "", nil, errInvalidVersion},
		{"fraction", []any{1.5}, nil, errInvalidVersion},
		{"word", []any{"one"}, nil, errInvalidVersion},
		{"object", map[string]any{}, nil, errInvalidVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVersions(tt.raw)
			if err != tt.err || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseVersions(%v) = %v, %v; want %v, %v", tt.raw, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		err error
	}{
		{"a", nil},
		{"a/b/c", nil},
		{"a.b/..c/c..", nil},
		{"", errMissingPath},
		{"..", errInvalidPath},
		{".", errInvalidPath},
		{"a/../b", errInvalidPath},
		{"a//b", errInvalidPath},
		{"/a", errInvalidPath},
		{"a/", errInvalidPath},
	}
	for _, tt := range tests {
		if err := validateKey(tt.key); err != tt.err {
			t.Errorf("validateKey(%q) = %v, want %v", tt.key, err, tt.err)
		}
	}
}

// FuzzValidateKey checks that an accepted path maps into its own storage
// namespace and cannot climb out of it.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "a//b", "./", "a/./b", "\x00", "a/.../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if validateKey(key) != nil {
			return
		}
		for _, k := range []string{metaKey(key), versionKey(key, 1)} {
			for _, seg := range strings.Split(k, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("key %q gives storage key %q", key, k)
				}
			}
		}
		if p, err := listPrefix(key + "/"); err != nil || p != key+"/" {
			t.Fatalf("listPrefix(%q/) = %q, %v", key, p, err)
		}
	})
}

// FuzzMergePatch checks RFC 7386 invariants: the patch's non-null members
// win, null members vanish, and the target is never modified.
func FuzzMergePatch(f *testing.F) {
	f.Add(`{"a":1,"b":{"c":2}}`, `{"a":null,"b":{"d":3}}`)
	f.Add(`{}`, `{"x":[1,2]}`)
	f.Fuzz(func(t *testing.T, target, patch string) {
		tm, err1 := decodeObject([]byte(target))
		pm, err2 := decodeObject([]byte(patch))
		if err1 != nil || err2 != nil {
			return
		}
		before, _ := encodeObject(tm)
		out := mergePatch(tm, pm).(map[string]any)
		if after, _ := encodeObject(tm); string(after) != string(before) {
			t.Fatalf("target modified")
		}
		for k, v := range pm {
			got, ok := out[k]
			switch {
			case v == nil && ok:
				t.Fatalf("null member %q kept", k)
			case v != nil && !ok:
				t.Fatalf("member %q lost", k)
			}
			if _, isObj := v.(map[string]any); v != nil && !isObj && !reflect.DeepEqual(got, v) {
				t.Fatalf("member %q = %v, want %v", k, got, v)
			}
		}
	})
}
