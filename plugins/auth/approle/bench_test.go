package approle

import (
	"context"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// BenchmarkLogin logs in in parallel with one role and one secret ID of
// unlimited uses: the backend's share of an AppRole login (three storage
// reads, two HMACs, no writes).
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b)
	roleID := e.role("bench", map[string]any{"token_policies": "app", "token_ttl": "1h"})
	secret, _ := e.secretID("bench", nil)
	ctx := context.Background()
	data := map[string]any{"role_id": roleID, "secret_id": secret}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := e.b.HandleRequest(ctx, &logical.Request{
				Operation: logical.UpdateOperation, Path: "login", Data: data, Storage: e.s,
				RemoteAddr: "127.0.0.1:40000", Unauthenticated: true,
			})
			if err != nil || resp.Auth == nil {
				b.Error(resp, err)
				return
			}
		}
	})
}
