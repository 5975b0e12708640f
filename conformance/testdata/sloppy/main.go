// Command sloppy is a broken sample plugin written without sdk/framework.
// It has no help (core.help), answers a list with keys that are not a
// list (core.operations), answers nothing instead of not found for an
// unknown path (core.unknown-path), refuses undeclared operations as
// invalid requests (core.unsupported-operation), and trusts the types of
// its input: it stores a wrong-typed value and panics on a wrong-typed
// count (core.malformed-input).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "sloppy", Version: "1.0.0", Type: logical.TypeSecret,
		Factory: func(context.Context, *logical.BackendConfig) (logical.Backend, error) { return backend{}, nil }})
}

var itemRe = regexp.MustCompile(`^item/(?P<name>\w+)$`)

type backend struct{}

func (backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.HelpOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	if (req.Path == "items" || req.Path == "items/") && req.Operation == logical.ListOperation {
		return &logical.Response{Data: map[string]any{"keys": "a,b"}}, nil
	}
	m := itemRe.FindStringSubmatch(req.Path)
	if m == nil {
		return nil, nil
	}
	key := "item/" + m[1]
	switch req.Operation {
	case logical.ReadOperation:
		e, err := req.Storage.Get(ctx, key)
		if err != nil || e == nil {
			return nil, err
		}
		var data map[string]any
		if err := json.Unmarshal(e.Value, &data); err != nil {
			return nil, err
		}
		return &logical.Response{Data: data}, nil
	case logical.CreateOperation, logical.UpdateOperation:
		switch c := req.Data["count"].(type) {
		case nil, json.Number:
		default:
			panic(fmt.Sprintf("count is a %T", c))
		}
		b, err := json.Marshal(req.Data)
		if err != nil {
			return nil, err
		}
		return nil, req.Storage.Put(ctx, &logical.StorageEntry{Key: key, Value: b})
	}
	return nil, logical.InvalidRequest("operation %s is not allowed here", req.Operation)
}

func (backend) SpecialPaths() *logical.Paths { return &logical.Paths{} }

func (backend) Schema() *logical.Schema {
	return &logical.Schema{Help: "Stores items, sloppily.", Paths: []logical.PathSchema{
		{Pattern: `item/(?P<name>\w+)`, Synopsis: "An item.",
			Operations: []logical.Operation{logical.CreateOperation, logical.ReadOperation, logical.UpdateOperation},
			Fields:     []logical.FieldInfo{{Name: "count", Type: "int"}, {Name: "name", Type: "string"}, {Name: "value", Type: "string"}}},
		{Pattern: `items/?`, Synopsis: "The items.", Operations: []logical.Operation{logical.ListOperation}},
	}}
}

func (backend) Type() logical.BackendType             { return logical.TypeSecret }
func (backend) Initialize(context.Context) error      { return nil }
func (backend) InvalidateKey(context.Context, string) {}
func (backend) Cleanup(context.Context)               {}
