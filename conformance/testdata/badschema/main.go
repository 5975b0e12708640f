// Command badschema is a broken sample plugin: its schema declares a path
// without operations and a field without a type (core.schema), and a
// pattern no OpenAPI path can express (core.openapi).
package main

import (
	"context"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "badschema", Version: "1.0.0", Type: logical.TypeSecret, Factory: factory})
}

func factory(context.Context, *logical.BackendConfig) (logical.Backend, error) {
	b := sample.Item(nil)
	sample.Path(b, "item/").Fields["weird"] = &framework.FieldSchema{Description: "A field whose type was forgotten."}
	b.Paths = append(b.Paths,
		&framework.Path{
			Pattern: "raw/.*",
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					return &logical.Response{Data: map[string]any{"raw": true}}, nil
				},
			},
			HelpSynopsis: "Anything under raw/.",
		},
		&framework.Path{Pattern: "empty", HelpSynopsis: "A path that serves nothing."},
	)
	return b, nil
}
