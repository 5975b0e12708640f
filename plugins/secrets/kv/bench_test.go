package kv

import (
	"context"
	"fmt"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// BenchmarkV2Write writes new versions of one key (pruning past 10 versions
// on every write once warm) and, in parallel, of distinct keys.
func BenchmarkV2Write(b *testing.B) {
	data := map[string]any{"data": map[string]any{"user": "app", "password": "0123456789abcdef"}}
	b.Run("same-key", func(b *testing.B) {
		e := newEnv(b, "2")
		req := &logical.Request{Operation: logical.UpdateOperation, Path: "data/bench/key", Data: data, Storage: e.s}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.b.HandleRequest(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-keys", func(b *testing.B) {
		e := newEnv(b, "2")
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				req := &logical.Request{Operation: logical.UpdateOperation, Path: fmt.Sprintf("data/bench/%d", i%64), Data: data, Storage: e.s}
				if _, err := e.b.HandleRequest(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkV2Read reads the latest version of a key with 10 versions.
func BenchmarkV2Read(b *testing.B) {
	e := newEnv(b, "2")
	for i := range 10 {
		e.write("bench/key", map[string]any{"user": "app", "password": "0123456789abcdef", "i": i})
	}
	ctx := context.Background()
	req := &logical.Request{Operation: logical.ReadOperation, Path: "data/bench/key", Storage: e.s}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if resp, err := e.b.HandleRequest(ctx, req); err != nil || resp == nil {
				b.Fatal(resp, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.b.HandleRequest(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
