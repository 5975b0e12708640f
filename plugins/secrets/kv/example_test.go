package kv_test

import (
	"context"
	"fmt"

	"github.com/wardproject/ward/plugins/secrets/kv"
	"github.com/wardproject/ward/sdk/logical"
)

// A KV v2 mount driven as the kernel drives it: write two versions with
// check-and-set, read the latest and an older one, then soft-delete.
func ExampleFactory() {
	ctx := context.Background()
	storage := logical.NewInmemStorage()
	b, err := kv.Factory(ctx, &logical.BackendConfig{
		StorageView: storage,
		Config:      map[string]string{"version": "2"},
	})
	if err != nil {
		panic(err)
	}
	do := func(op logical.Operation, path string, data map[string]any) *logical.Response {
		resp, err := b.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: storage})
		if err != nil {
			fmt.Println("error:", err)
		}
		return resp
	}

	// POST /v1/secret/data/app/db {"data": {...}, "options": {"cas": 0}}
	resp := do(logical.UpdateOperation, "data/app/db", map[string]any{
		"data": map[string]any{"password": "s3cr3t"}, "options": map[string]any{"cas": 0},
	})
	fmt.Println("wrote version", resp.Data["version"])
	do(logical.UpdateOperation, "data/app/db", map[string]any{
		"data": map[string]any{"password": "rotated"}, "options": map[string]any{"cas": 1},
	})
	// A stale check-and-set is refused.
	do(logical.UpdateOperation, "data/app/db", map[string]any{
		"data": map[string]any{"password": "lost"}, "options": map[string]any{"cas": 1},
	})

	// GET /v1/secret/data/app/db and ?version=1
	resp = do(logical.ReadOperation, "data/app/db", nil)
	fmt.Println("latest:", resp.Data["data"], "version", resp.Data["metadata"].(map[string]any)["version"])
	resp = do(logical.ReadOperation, "data/app/db", map[string]any{"version": "1"})
	fmt.Println("version 1:", resp.Data["data"])

	// DELETE /v1/secret/data/app/db, then GET answers 404 with metadata.
	do(logical.DeleteOperation, "data/app/db", nil)
	resp = do(logical.ReadOperation, "data/app/db", nil)
	fmt.Println("after delete: status", resp.StatusCode, "data", resp.Data["data"])

	// LIST /v1/secret/metadata/app
	resp = do(logical.ListOperation, "metadata/app", nil)
	fmt.Println("keys:", resp.Data["keys"])

	// Output:
	// wrote version 1
	// error: check-and-set parameter did not match the current version
	// latest: map[password:rotated] version 2
	// version 1: map[password:s3cr3t]
	// after delete: status 404 data <nil>
	// keys: [db]
}
