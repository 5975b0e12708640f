package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/kernel/storage/storagetest"
)

func TestInmemConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return storage.NewInmem() })
}

func TestInmemClosedReturnsErrClosed(t *testing.T) {
	ctx := context.Background()
	b := storage.NewInmem()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, getErr := b.Get(ctx, "k")
	_, listErr := b.List(ctx, "")
	for name, err := range map[string]error{
		"Get":    getErr,
		"List":   listErr,
		"Put":    b.Put(ctx, "k", nil),
		"Delete": b.Delete(ctx, "k"),
		"Batch":  b.Batch(ctx, nil),
	} {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}
