// Command slowpoke is a broken sample plugin ignoring its requests'
// deadlines (core.deadline): a create sleeps, then stores anyway; a list
// waits out a storage call past the deadline, then makes another.
package main

import (
	"context"
	"time"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "slowpoke", Version: "1.0.0", Type: logical.TypeSecret, Factory: factory})
}

func factory(context.Context, *logical.BackendConfig) (logical.Backend, error) {
	b := sample.Item(nil)
	p := sample.Path(b, "item/")
	write := sample.Write(nil)
	p.Operations[logical.CreateOperation] = func(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		time.Sleep(1100 * time.Millisecond)
		return write(context.Background(), req, d)
	}
	sample.Path(b, "items").Operations[logical.ListOperation] = func(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
		keys, err := req.Storage.List(context.Background(), "item/")
		if err != nil || len(keys) == 0 {
			return nil, err
		}
		if _, err := req.Storage.Get(context.Background(), "item/"+keys[0]); err != nil {
			return nil, err
		}
		return logical.ListResponse(keys), nil
	}
	return b, nil
}
