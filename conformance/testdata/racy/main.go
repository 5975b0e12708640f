// Command racy is a broken sample plugin: its handlers assume requests
// never overlap and panic when they do (core.concurrency).
package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

var active atomic.Int32

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "racy", Version: "1.0.0", Type: logical.TypeSecret, Factory: factory})
}

func factory(context.Context, *logical.BackendConfig) (logical.Backend, error) {
	b := sample.Item(nil)
	for _, p := range b.Paths {
		for op, h := range p.Operations {
			p.Operations[op] = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				if active.Add(1) > 1 {
					active.Add(-1)
					panic("two requests at once")
				}
				defer active.Add(-1)
				time.Sleep(2 * time.Millisecond)
				return h(ctx, req, d)
			}
		}
	}
	return b, nil
}
