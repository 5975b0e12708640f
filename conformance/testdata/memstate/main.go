// Command memstate is a broken sample plugin: it keeps its items in the
// process's memory instead of the mount's storage, so a restart loses
// them (core.storage.restart).
package main

import (
	"context"

	"github.com/wardproject/ward/conformance/testdata/sample"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

func main() {
	sdkplugin.Serve(sdkplugin.ServeOpts{Name: "memstate", Version: "1.0.0", Type: logical.TypeSecret,
		Factory: func(context.Context, *logical.BackendConfig) (logical.Backend, error) {
			mem := logical.NewInmemStorage() // one per mount, gone with the process
			return sample.Item(func(*logical.Request) logical.Storage { return mem }), nil
		}})
}
