package transit_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/wardproject/ward/plugins/secrets/transit"
	"github.com/wardproject/ward/sdk/logical"
)

// A transit mount driven as the kernel drives it: create a key, encrypt,
// rotate, rewrap the old ciphertext and decrypt it.
func ExampleFactory() {
	ctx := context.Background()
	storage := logical.NewInmemStorage()
	b, err := transit.Factory(ctx, &logical.BackendConfig{StorageView: storage})
	if err != nil {
		panic(err)
	}
	do := func(path string, data map[string]any) map[string]any {
		resp, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: path, Data: data, Storage: storage})
		if err != nil {
			fmt.Println("error:", err)
			return nil
		}
		return resp.Data
	}

	// POST /v1/transit/keys/orders
	do("keys/orders", nil)
	// POST /v1/transit/encrypt/orders {"plaintext": "<base64>"}
	ct := do("encrypt/orders", map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("card 4111"))})["ciphertext"].(string)
	fmt.Println(strings.HasPrefix(ct, "vault:v1:"))
	// POST /v1/transit/keys/orders/rotate, then rewrap the old ciphertext.
	do("keys/orders/rotate", nil)
	rw := do("rewrap/orders", map[string]any{"ciphertext": ct})
	fmt.Println(strings.HasPrefix(rw["ciphertext"].(string), "vault:v2:"), rw["key_version"])
	pt := do("decrypt/orders", map[string]any{"ciphertext": rw["ciphertext"]})["plaintext"].(string)
	raw, _ := base64.StdEncoding.DecodeString(pt)
	fmt.Println(string(raw))
	// Tampering is detected.
	do("decrypt/orders", map[string]any{"ciphertext": ct[:len(ct)-4] + "AAA="})
	// Output:
	// true
	// true 2
	// card 4111
	// error: cipher: message authentication failed
}
