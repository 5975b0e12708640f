// Command leakycache is a broken sample plugin: it caches items in a
// process-wide map keyed by path alone, so one mount reads another's
// items (core.storage.isolation).
package main

import (
	"context"
	"sync"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

var (
	mu    sync.Mutex // protects cache
	cache = map[string]*logical.Response{}
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "leakycache", Version: "1.0.0", Type: logical.TypeSecret, Factory: factory})
}

func factory(context.Context, *logical.BackendConfig) (logical.Backend, error) {
	b := sample.Item(nil)
	p := sample.Path(b, "item/")
	read, write, del := p.Operations[logical.ReadOperation], p.Operations[logical.UpdateOperation], p.Operations[logical.DeleteOperation]
	remember := func(path string, r *logical.Response) {
		mu.Lock()
		defer mu.Unlock()
		if r == nil {
			delete(cache, path)
		} else {
			cache[path] = r
		}
	}
	p.Operations[logical.ReadOperation] = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		mu.Lock()
		r := cache[req.Path]
		mu.Unlock()
		if r != nil {
			return r, nil
		}
		r, err := read(ctx, req, d)
		if err == nil {
			remember(req.Path, r)
		}
		return r, err
	}
	wr := func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		remember(req.Path, nil)
		return write(ctx, req, d)
	}
	p.Operations[logical.CreateOperation], p.Operations[logical.UpdateOperation] = wr, wr
	p.Operations[logical.DeleteOperation] = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		remember(req.Path, nil)
		return del(ctx, req, d)
	}
	return b, nil
}
