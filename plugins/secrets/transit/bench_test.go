package transit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// benchPlaintext is 1 KiB of random data, base64-encoded as a client sends it.
func benchPlaintext() string {
	pt := make([]byte, 1024)
	_, _ = rand.Read(pt)
	return base64.StdEncoding.EncodeToString(pt)
}

// BenchmarkEncrypt1KiB encrypts 1 KiB with an aes256-gcm96 key through the
// backend's HandleRequest, as the plugin process does for each request
// (routing, field validation, decode, seal, encode), from GOMAXPROCS
// goroutines. Report ops/s = 1e9 / ns/op.
func BenchmarkEncrypt1KiB(b *testing.B) {
	e := newEnv(b)
	e.createKey("bench", nil)
	data := map[string]any{"plaintext": benchPlaintext()}
	ctx := context.Background()
	b.SetBytes(1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/bench", Data: data, Storage: e.s}
		for pb.Next() {
			if _, err := e.b.HandleRequest(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkDecrypt1KiB is the reverse path.
func BenchmarkDecrypt1KiB(b *testing.B) {
	e := newEnv(b)
	e.createKey("bench", nil)
	ct := e.write("encrypt/bench", map[string]any{"plaintext": benchPlaintext()}).Data["ciphertext"].(string)
	data := map[string]any{"ciphertext": ct}
	ctx := context.Background()
	b.SetBytes(1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := &logical.Request{Operation: logical.UpdateOperation, Path: "decrypt/bench", Data: data, Storage: e.s}
		for pb.Next() {
			if _, err := e.b.HandleRequest(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkEncryptBatch1000 encrypts a batch of 1,000 64-byte items.
func BenchmarkEncryptBatch1000(b *testing.B) {
	e := newEnv(b)
	e.createKey("bench", nil)
	items := make([]any, 1000)
	for i := range items {
		items[i] = map[string]any{"plaintext": base64.StdEncoding.EncodeToString(make([]byte, 64))}
	}
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "encrypt/bench", Data: map[string]any{"batch_input": items}, Storage: e.s}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.b.HandleRequest(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
