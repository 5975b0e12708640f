package plugin

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
	sdkplugin "github.com/wardproject/ward/sdk/plugin"
)

// The test binary doubles as the plugins under test: the runner re-executes
// it with WARD_TEST_PLUGIN set, and TestMain serves that plugin instead of
// running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("WARD_TEST_PLUGIN") {
	case "":
		os.Exit(m.Run())
	case "echo":
		sdkplugin.Serve(sdkplugin.ServeOpts{Name: "echo", Type: logical.TypeSecret, Version: "0.0.1", Factory: echoFactory})
	case "protocol2":
		// A plugin built for a future major of the protocol.
		hs := sdkplugin.Handshake
		hs.ProtocolVersion = 2
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]goplugin.PluginSet{2: {"backend": &goplugin.NetRPCUnsupportedPlugin{}}},
			GRPCServer:       goplugin.DefaultGRPCServer,
		})
	case "auth-typed":
		sdkplugin.Serve(sdkplugin.ServeOpts{Name: "auth-typed", Type: logical.TypeAuth, Factory: echoFactory})
	default:
		fmt.Fprintln(os.Stderr, "unknown WARD_TEST_PLUGIN")
		os.Exit(3)
	}
	os.Exit(0)
}

// echoFactory builds a tiny backend: "kv/<key>" reads and writes storage,
// "pid" reports the process, "sleep" blocks until the deadline, "panic" panics.
func echoFactory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return &framework.Backend{
		Paths: []*framework.Path{
			{
				Pattern: "kv/(?P<key>.+)",
				Fields:  map[string]*framework.FieldSchema{"key": {Type: framework.TypeString}, "value": {Type: framework.TypeString}},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						e, err := req.Storage.Get(ctx, d.Get("key").(string))
						if err != nil || e == nil {
							return nil, err
						}
						return &logical.Response{Data: map[string]any{"value": string(e.Value)}}, nil
					},
					logical.UpdateOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						return nil, req.Storage.Put(ctx, &logical.StorageEntry{Key: d.Get("key").(string), Value: []byte(d.Get("value").(string))})
					},
				},
			},
			{
				// Writes two keys in one atomic batch through the data channel.
				Pattern: "batch/(?P<a>[^/]+)/(?P<b>[^/]+)",
				Fields:  map[string]*framework.FieldSchema{"a": {Type: framework.TypeString}, "b": {Type: framework.TypeString}},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.UpdateOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						bs, ok := req.Storage.(logical.BatchStorage)
						if !ok {
							return nil, fmt.Errorf("storage is not a BatchStorage")
						}
						return nil, bs.Batch(ctx, []logical.StorageOp{
							{Key: d.Get("a").(string), Value: []byte("A")},
							{Key: d.Get("b").(string), Value: []byte("B")},
						})
					},
				},
			},
			{
				Pattern: "pid",
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						return &logical.Response{Data: map[string]any{"pid": os.Getpid(), "mount": conf.MountPoint}}, nil
					},
				},
			},
			{
				Pattern: "sleep",
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						select {
						case <-ctx.Done():
							return nil, ctx.Err()
						case <-time.After(time.Minute):
							return nil, nil
						}
					},
				},
			},
			{
				Pattern: "panic",
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						panic("secret-value-must-not-leak")
					},
				},
			},
			{
				Pattern: "exit",
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						os.Exit(7)
						return nil, nil
					},
				},
			},
			{
				// Tries to reach another mount's storage by forging its ID
				// through the raw client: see TestStorageConfinedToOwnMounts.
				Pattern: "env",
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
						return &logical.Response{Data: map[string]any{"env": os.Environ()}}, nil
					},
				},
			},
		},
	}, nil
}
