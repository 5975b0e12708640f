// Command badlifecycle is a broken sample plugin: invalidating a key a
// second time closes a channel twice (core.invalidate), and its cleanup
// wipes the mount's storage, as if the mount were being deleted, so a
// mount set up again has lost its state (core.cleanup).
package main

import (
	"context"
	"sync"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "badlifecycle", Version: "1.0.0", Type: logical.TypeSecret, Factory: factory})
}

func factory(_ context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := sample.Item(nil)
	var mu sync.Mutex
	watchers := map[string]chan struct{}{}
	b.Invalidate = func(_ context.Context, key string) {
		mu.Lock()
		defer mu.Unlock()
		ch, ok := watchers[key]
		if !ok {
			ch = make(chan struct{})
			watchers[key] = ch
		}
		close(ch) // panics the second time
	}
	b.Clean = func(ctx context.Context) {
		keys, _ := logical.CollectKeys(ctx, conf.StorageView, "")
		for _, k := range keys {
			_ = conf.StorageView.Delete(ctx, k)
		}
	}
	return b, nil
}
