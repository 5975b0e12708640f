package kv

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func TestFactoryMountVersion(t *testing.T) {
	tests := []struct {
		version string
		want    int // 0: Factory fails
	}{
		{"", 1},
		{"1", 1},
		{"2", 2},
		{" 2 ", 2},
		{"3", 0},
		{"v2", 0},
		{"0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			b, err := Factory(context.Background(), &logical.BackendConfig{
				StorageView: logical.NewInmemStorage(), Config: map[string]string{"version": tt.version},
			})
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("Factory(version=%q) succeeded, want error", tt.version)
				}
				return
			}
			if err != nil {
				t.Fatalf("Factory(version=%q): %v", tt.version, err)
			}
			if got := b.(*backend).version; got != tt.want {
				t.Fatalf("version = %d, want %d", got, tt.want)
			}
			if b.Type() != logical.TypeSecret {
				t.Fatalf("Type() = %q", b.Type())
			}
		})
	}
	if _, err := Factory(context.Background(), nil); err == nil {
		t.Fatal("Factory(nil) succeeded")
	}
	if _, err := Factory(context.Background(), &logical.BackendConfig{}); err != nil {
		t.Fatalf("Factory with no options (v1 default): %v", err)
	}
}

func TestV1CRUD(t *testing.T) {
	e := newEnv(t, "1")
	secret := map[string]any{"password": "s3cr3t", "n": json.Number("12345678901234567890"), "nested": map[string]any{"a": true}}

	// Missing: nil response (the kernel answers 404).
	if resp := e.ok(logical.ReadOperation, "app/db", nil); resp != nil {
		t.Fatalf("read missing = %+v, want nil", resp)
	}
	if resp := e.ok(logical.CreateOperation, "app/db", secret); resp != nil {
		t.Fatalf("write answered %+v, want nil (204)", resp)
	}
	resp := e.ok(logical.ReadOperation, "app/db", nil)
	if !reflect.DeepEqual(resp.Data, secret) {
		t.Fatalf("read = %#v, want %#v", resp.Data, secret)
	}
	// The big integer survives exactly.
	if b, _ := json.Marshal(resp.Data["n"]); string(b) != "12345678901234567890" {
		t.Fatalf("number = %s", b)
	}
	// Update replaces the whole object.
	e.ok(logical.UpdateOperation, "app/db", map[string]any{"user": "u"})
	if resp := e.ok(logical.ReadOperation, "app/db", nil); !reflect.DeepEqual(resp.Data, map[string]any{"user": "u"}) {
		t.Fatalf("after update = %#v", resp.Data)
	}
	// float64 input (a decoder without UseNumber) works as well.
	e.ok(logical.UpdateOperation, "app/num", map[string]any{"f": 1.5})
	if resp := e.ok(logical.ReadOperation, "app/num", nil); resp.Data["f"] != json.Number("1.5") {
		t.Fatalf("float = %#v", resp.Data["f"])
	}
	e.ok(logical.DeleteOperation, "app/db", nil)
	if resp := e.ok(logical.ReadOperation, "app/db", nil); resp != nil {
		t.Fatalf("read after delete = %+v", resp)
	}
	// Deleting a missing secret is not an error.
	e.ok(logical.DeleteOperation, "app/db", nil)
}

func TestV1Errors(t *testing.T) {
	e := newEnv(t, "1")
	tests := []struct {
		name string
		op   logical.Operation
		path string
		data map[string]any
		msg  string
	}{
		{"empty data", logical.UpdateOperation, "a", map[string]any{}, "missing data fields"},
		{"nil data", logical.CreateOperation, "a", nil, "missing data fields"},
		{"empty path write", logical.UpdateOperation, "", map[string]any{"a": "b"}, "missing path"},
		{"dotdot", logical.UpdateOperation, "a/../b", map[string]any{"a": "b"}, "invalid path"},
		{"dot", logical.ReadOperation, "./b", nil, "invalid path"},
		{"double slash", logical.UpdateOperation, "a//b", map[string]any{"a": "b"}, "invalid path"},
		{"trailing slash read", logical.ReadOperation, "a/", nil, "invalid path"},
		{"leading slash", logical.DeleteOperation, "/a", nil, "invalid path"},
		{"list dotdot", logical.ListOperation, "../", nil, "invalid path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.fails(tt.op, tt.path, tt.data, logical.CodeInvalidRequest, tt.msg)
		})
	}
	if keys := e.storageKeys(); len(keys) != 0 {
		t.Fatalf("failed requests wrote %v", keys)
	}
	// Patch is not a v1 operation.
	if _, err := e.do(logical.PatchOperation, "a", map[string]any{"a": "b"}); !errors.Is(err, logical.ErrUnsupportedOperation) {
		t.Fatalf("patch: %v, want unsupported operation", err)
	}
}

func TestV1List(t *testing.T) {
	e := newEnv(t, "1")
	for _, p := range []string{"a", "b/c", "b/d/e", "b/f", "z"} {
		e.ok(logical.UpdateOperation, p, map[string]any{"v": p})
	}
	tests := []struct {
		path string
		want []string // nil: no keys (404)
	}{
		{"", []string{"a", "b/", "z"}},
		{"b/", []string{"c", "d/", "f"}},
		{"b", []string{"c", "d/", "f"}}, // a folder without its slash
		{"b/d/", []string{"e"}},
		{"none/", nil},
		{"a/", nil}, // a secret is not a folder
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp := e.ok(logical.ListOperation, tt.path, nil)
			if tt.want == nil {
				if resp != nil {
					t.Fatalf("list %q = %+v, want nil", tt.path, resp)
				}
				return
			}
			if got := resp.Data["keys"]; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("list %q = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestV1StorageLayout(t *testing.T) {
	e := newEnv(t, "1")
	e.ok(logical.UpdateOperation, "app/db", map[string]any{"k": "v"})
	if got, want := e.storageKeys(), []string{"entry/app/db"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("storage keys = %v, want %v", got, want)
	}
}
