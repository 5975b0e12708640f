package framework

import (
	"context"
	"errors"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func echoPath() *Backend {
	return &Backend{Paths: []*Path{{
		Pattern: "data/" + MatchAllRegex("path"),
		Fields: map[string]*FieldSchema{
			"path":  {Type: TypeString},
			"count": {Type: TypeInt, Default: 3},
			"mode":  {Type: TypeString, AllowedValues: []any{"a", "b"}},
			"ttl":   {Type: TypeDurationSecond},
			"tags":  {Type: TypeCommaStringSlice},
		},
		ExistenceCheck: func(ctx context.Context, req *logical.Request, d *FieldData) (bool, error) {
			return d.Get("path").(string) == "exists", nil
		},
		Operations: map[logical.Operation]OperationFunc{
			logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *FieldData) (*logical.Response, error) {
				return &logical.Response{Data: map[string]any{"path": d.Get("path"), "count": d.Get("count"),
					"ttl": d.Get("ttl"), "tags": d.Get("tags")}}, nil
			},
			logical.CreateOperation: func(ctx context.Context, req *logical.Request, d *FieldData) (*logical.Response, error) {
				return &logical.Response{Data: map[string]any{"op": "create"}}, nil
			},
			logical.UpdateOperation: func(ctx context.Context, req *logical.Request, d *FieldData) (*logical.Response, error) {
				return &logical.Response{Data: map[string]any{"op": "update"}}, nil
			},
		},
	}}}
}

func TestCapturesOverrideRequestData(t *testing.T) {
	b := echoPath()
	for _, tc := range []struct{ path, want string }{{"data/", ""}, {"data/x/y", "x/y"}} {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: tc.path, Data: map[string]any{"path": "someone-else"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Data["path"]; got != tc.want {
			t.Errorf("%s: path = %q, want %q (a request field must not override the route)", tc.path, got, tc.want)
		}
	}
}

func TestFieldValidationAndDefaults(t *testing.T) {
	b := echoPath()
	cases := []struct {
		name    string
		data    map[string]any
		wantErr bool
		check   func(*logical.Response) bool
	}{
		{"defaults", nil, false, func(r *logical.Response) bool { return r.Data["count"] == 3 && r.Data["ttl"] == 0 }},
		{"duration string", map[string]any{"ttl": "1h"}, false, func(r *logical.Response) bool { return r.Data["ttl"] == 3600 }},
		{"duration days", map[string]any{"ttl": "2d"}, false, func(r *logical.Response) bool { return r.Data["ttl"] == 172800 }},
		{"comma slice", map[string]any{"tags": "a, b"}, false, func(r *logical.Response) bool {
			tags := r.Data["tags"].([]string)
			return len(tags) == 2 && tags[1] == "b"
		}},
		{"bad int", map[string]any{"count": "many"}, true, nil},
		{"fractional int", map[string]any{"count": 1.5}, true, nil},
		{"not allowed", map[string]any{"mode": "c"}, true, nil},
		{"negative duration", map[string]any{"ttl": "-5s"}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "data/k", Data: tc.data})
			if tc.wantErr {
				if logical.CodeOf(err) != logical.CodeInvalidRequest {
					t.Fatalf("want 400-class error, got %v", err)
				}
				return
			}
			if err != nil || !tc.check(resp) {
				t.Fatalf("resp %v err %v", resp, err)
			}
		})
	}
}

func TestExistenceCheckChoosesCreateOrUpdate(t *testing.T) {
	b := echoPath()
	for path, want := range map[string]string{"data/exists": "update", "data/new": "create"} {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: path})
		if err != nil || resp.Data["op"] != want {
			t.Errorf("%s: got %v %v, want %s", path, resp, err, want)
		}
	}
}

func TestUnknownPathAndOperation(t *testing.T) {
	b := echoPath()
	_, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "nope"})
	if !errors.Is(err, logical.ErrUnsupportedPath) {
		t.Errorf("unknown path: %v", err)
	}
	_, err = b.HandleRequest(context.Background(), &logical.Request{Operation: logical.DeleteOperation, Path: "data/x"})
	if !errors.Is(err, logical.ErrUnsupportedOperation) {
		t.Errorf("unsupported op: %v", err)
	}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Path: "data/x"})
	if err != nil || resp.Data["help"] == "" {
		t.Errorf("help: %v %v", resp, err)
	}
}

func TestSchemaListsPathsAndFields(t *testing.T) {
	s := echoPath().Schema()
	if len(s.Paths) != 1 || len(s.Paths[0].Fields) != 5 || len(s.Paths[0].Operations) != 3 {
		t.Fatalf("schema: %+v", s)
	}
}

func TestUnknownFieldsWarnOnWrites(t *testing.T) {
	b := echoPath()
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "data/new",
		Data: map[string]any{"bogus": 1}})
	if err != nil || len(resp.Warnings) != 1 {
		t.Fatalf("want one warning, got %v %v", resp, err)
	}
}

// TestRollbackRunsPeriodicFunc: the host's periodic call reaches
// PeriodicFunc whatever the paths; without one it is a no-op, not an error.
func TestRollbackRunsPeriodicFunc(t *testing.T) {
	ctx := context.Background()
	b := echoPath()
	rollback := &logical.Request{Operation: logical.RollbackOperation}
	if resp, err := b.HandleRequest(ctx, rollback); resp != nil || err != nil {
		t.Fatalf("rollback without PeriodicFunc: %v %v", resp, err)
	}
	var seen *logical.Request
	b.PeriodicFunc = func(ctx context.Context, req *logical.Request) error {
		seen = req
		return errors.New("database down")
	}
	if _, err := b.HandleRequest(ctx, rollback); err == nil || err.Error() != "database down" || seen != rollback {
		t.Fatalf("rollback with PeriodicFunc: %v (saw %v)", err, seen)
	}
}

// TestUnsupportedOperationBeforeFieldValidation: an operation the path
// does not serve is 405 even when a required field is missing.
func TestUnsupportedOperationBeforeFieldValidation(t *testing.T) {
	b := &Backend{Paths: []*Path{{
		Pattern: "role/" + GenericNameRegex("name"),
		Fields: map[string]*FieldSchema{
			"name":  {Type: TypeString},
			"count": {Type: TypeInt, Required: true},
		},
		Operations: map[logical.Operation]OperationFunc{
			logical.UpdateOperation: func(context.Context, *logical.Request, *FieldData) (*logical.Response, error) {
				return nil, nil
			},
		},
	}}}
	_, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "role/a"})
	if !errors.Is(err, logical.ErrUnsupportedOperation) {
		t.Fatalf("read of a write-only path: %v", err)
	}
	_, err = b.HandleRequest(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: "role/a"})
	if errors.Is(err, logical.ErrUnsupportedOperation) || err == nil {
		t.Fatalf("create without the required field: %v", err)
	}
}
