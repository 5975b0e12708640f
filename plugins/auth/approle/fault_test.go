package approle

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// faultyStorage fails reads and writes of keys with a given prefix, with an
// error that quotes the key, as a real backend's error might.
type faultyStorage struct {
	logical.Storage
	prefix string
}

func (f *faultyStorage) fault(key string) error {
	if strings.HasPrefix(key, f.prefix) {
		return errors.New("disk on fire at " + key)
	}
	return nil
}

func (f *faultyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := f.fault(key); err != nil {
		return nil, err
	}
	return f.Storage.Get(ctx, key)
}

func (f *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := f.fault(e.Key); err != nil {
		return err
	}
	return f.Storage.Put(ctx, e)
}

// Storage failures are internal errors that never quote a key (which can
// hold a secret ID's HMAC), and a failed issue leaves nothing usable.
func TestStorageFaults(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", nil)
	secret, _ := e.secretID("r", map[string]any{"num_uses": 3})
	ctx := context.Background()
	for _, prefix := range []string{secretIDPrefix, roleIDPrefix, rolePrefix} {
		fs := &faultyStorage{Storage: e.s, prefix: prefix}
		_, err := e.b.HandleRequest(ctx, &logical.Request{
			Operation: logical.UpdateOperation, Path: "login", Storage: fs, RemoteAddr: "127.0.0.1",
			Data: map[string]any{"role_id": roleID, "secret_id": secret},
		})
		if logical.CodeOf(err) != logical.CodeInternal || strings.Contains(err.Error(), "fire") {
			t.Fatalf("login with failing %s: %v", prefix, err)
		}
	}
	// Issuing with a failing accessor write (no batch support here: the
	// faulty wrapper hides InmemStorage's Batch) stores no secret ID.
	before := len(e.keysUnder(secretIDPrefix))
	fs := &faultyStorage{Storage: e.s, prefix: accessorPrefix}
	_, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "role/r/secret-id", Storage: fs})
	if logical.CodeOf(err) != logical.CodeInternal || strings.Contains(err.Error(), "fire") {
		t.Fatalf("issue: %v", err)
	}
	if after := len(e.keysUnder(secretIDPrefix)); after != before {
		t.Fatalf("failed issue stored a secret ID (%d -> %d)", before, after)
	}
	// The uses were not spent by the failed logins.
	if got := e.ok(logical.UpdateOperation, "role/r/secret-id/lookup", map[string]any{"secret_id": secret}).Data["secret_id_num_uses"]; got != 3 {
		t.Fatalf("uses left %v", got)
	}
}
