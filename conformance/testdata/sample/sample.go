// Package sample is the well-behaved backend the broken sample plugins of
// the conformance tests start from: items stored in the mount's storage.
// Each sample breaks one contract on purpose (see its main.go).
package sample

import (
	"context"
	"strings"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Item returns a secret engine serving item/NAME (create, update, read,
// delete) and items/ (list), keeping every item in store (the mount's
// storage view unless the caller passes another).
func Item(store func(req *logical.Request) logical.Storage) *framework.Backend {
	store = orRequest(store)
	b := &framework.Backend{Help: "Stores items.", BackendType: logical.TypeSecret}
	b.Paths = []*framework.Path{
		{
			Pattern: "items/?",
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ListOperation: func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
					keys, err := store(req).List(ctx, "item/")
					if err != nil {
						return nil, err
					}
					return logical.ListResponse(keys), nil
				},
			},
			HelpSynopsis: "List the items.",
		},
		{
			Pattern: "item/" + framework.GenericNameRegex("name"),
			Fields: map[string]*framework.FieldSchema{
				"name":  {Type: framework.TypeString, Description: "Name of the item."},
				"value": {Type: framework.TypeString, Description: "Value of the item."},
				"count": {Type: framework.TypeInt, Description: "A number."},
			},
			ExistenceCheck: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
				e, err := store(req).Get(ctx, "item/"+d.Get("name").(string))
				return e != nil, err
			},
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.CreateOperation: Write(store),
				logical.UpdateOperation: Write(store),
				logical.ReadOperation:   Read(store),
				logical.DeleteOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					return nil, store(req).Delete(ctx, "item/"+d.Get("name").(string))
				},
			},
			HelpSynopsis: "Manage an item.",
		},
	}
	return b
}

// orRequest defaults a store to the request's storage view.
func orRequest(store func(req *logical.Request) logical.Storage) func(req *logical.Request) logical.Storage {
	if store != nil {
		return store
	}
	return func(req *logical.Request) logical.Storage { return req.Storage }
}

// Write stores an item's value and count (in the request's storage when
// store is nil).
func Write(store func(req *logical.Request) logical.Storage) framework.OperationFunc {
	store = orRequest(store)
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		e, err := logical.StorageEntryJSON("item/"+d.Get("name").(string),
			map[string]any{"value": d.Get("value"), "count": d.Get("count")})
		if err != nil {
			return nil, err
		}
		return nil, store(req).Put(ctx, e)
	}
}

// Read answers a stored item.
func Read(store func(req *logical.Request) logical.Storage) framework.OperationFunc {
	store = orRequest(store)
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		e, err := store(req).Get(ctx, "item/"+d.Get("name").(string))
		if err != nil || e == nil {
			return nil, err
		}
		var data map[string]any
		if err := e.DecodeJSON(&data); err != nil {
			return nil, err
		}
		return &logical.Response{Data: data}, nil
	}
}

// Path returns the path of b whose pattern starts with prefix.
func Path(b *framework.Backend, prefix string) *framework.Path {
	for _, p := range b.Paths {
		if strings.HasPrefix(p.Pattern, prefix) {
			return p
		}
	}
	panic("sample: no path " + prefix)
}
