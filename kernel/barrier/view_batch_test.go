package barrier

import (
	"context"
	"testing"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

func TestViewBatchIsAtomicAndConfined(t *testing.T) {
	ctx := context.Background()
	b := New(storage.NewInmem())
	key := make([]byte, KeySize)
	if err := b.Initialize(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, key); err != nil {
		t.Fatal(err)
	}
	v := b.View("logical/m1/")
	if err := v.Put(ctx, &logical.StorageEntry{Key: "old", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	err := v.Batch(ctx, []logical.StorageOp{{Key: "a", Value: []byte("1")}, {Key: "old", Delete: true}})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := v.Get(ctx, "a"); e == nil || string(e.Value) != "1" {
		t.Fatal("batch put missing")
	}
	if e, _ := v.Get(ctx, "old"); e != nil {
		t.Fatal("batch delete missing")
	}
	// One bad key rejects the whole batch, and nothing leaves the view.
	err = v.Batch(ctx, []logical.StorageOp{{Key: "b", Value: []byte("2")}, {Key: "../m2/x", Value: []byte("evil")}})
	if logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("want 400-class error, got %v", err)
	}
	if e, _ := v.Get(ctx, "b"); e != nil {
		t.Fatal("a rejected batch was partly applied")
	}
	if e, _ := b.View("logical/").Get(ctx, "m2/x"); e != nil {
		t.Fatal("batch escaped its view")
	}
	b.Seal()
	if err := v.Batch(ctx, []logical.StorageOp{{Key: "c", Value: []byte("3")}}); err == nil {
		t.Fatal("batch on a sealed barrier")
	}
}
