package approle_test

import (
	"context"
	"fmt"

	"github.com/wardproject/ward/plugins/auth/approle"
	"github.com/wardproject/ward/sdk/logical"
)

// An AppRole mount driven as the kernel drives it: create a role, fetch its
// role ID, issue a secret ID and log in with both.
func ExampleFactory() {
	ctx := context.Background()
	storage := logical.NewInmemStorage()
	b, err := approle.Factory(ctx, &logical.BackendConfig{StorageView: storage})
	if err != nil {
		panic(err)
	}
	do := func(op logical.Operation, path string, data map[string]any) *logical.Response {
		resp, err := b.HandleRequest(ctx, &logical.Request{
			Operation: op, Path: path, Data: data, Storage: storage, RemoteAddr: "10.0.0.7:51000",
		})
		if err != nil {
			fmt.Println("error:", err)
		}
		return resp
	}

	// POST /v1/auth/approle/role/ci {"token_policies": "deploy", "secret_id_num_uses": 1}
	do(logical.UpdateOperation, "role/ci", map[string]any{"token_policies": "deploy", "secret_id_num_uses": 1})
	roleID := do(logical.ReadOperation, "role/ci/role-id", nil).Data["role_id"]
	secretID := do(logical.UpdateOperation, "role/ci/secret-id", nil).Data["secret_id"]

	resp := do(logical.UpdateOperation, "login", map[string]any{"role_id": roleID, "secret_id": secretID})
	fmt.Println(resp.Auth.DisplayName, resp.Auth.Policies, resp.Auth.Metadata["role_name"])
	// The secret ID allowed one login.
	do(logical.UpdateOperation, "login", map[string]any{"role_id": roleID, "secret_id": secretID})
	// Output:
	// ci [deploy] ci
	// error: invalid role ID or secret ID
}
