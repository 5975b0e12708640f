package approle

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/logical"
)

func TestTidy(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", nil)
	expiring, _ := e.secretID("r", map[string]any{"ttl": "1m"})
	keep, keepAcc := e.secretID("r", nil)
	e.clock.Advance(time.Minute)

	ctx := context.Background()
	r, err := loadRole(ctx, e.s, "r")
	if err != nil || r == nil {
		t.Fatal(r, err)
	}
	// A dangling accessor (its secret ID gone), and leftovers of a deleted
	// role incarnation, as a crash part way through a delete leaves them.
	dangling := uuid.NewString()
	put := func(key string, v any) {
		ent, _ := logical.StorageEntryJSON(key, v)
		if err := e.s.Put(ctx, ent); err != nil {
			t.Fatal(err)
		}
	}
	put(accessorKey(r.Instance, dangling), accessorEntry{SecretIDHMAC: "00ff"})
	dead, deadAcc := uuid.NewString(), uuid.NewString()
	put(secretKey(dead, "abcd"), secretIDEntry{RoleName: "r", Accessor: deadAcc})
	put(accessorKey(dead, deadAcc), accessorEntry{SecretIDHMAC: "abcd"})
	// A corrupt record is skipped, not fatal.
	_ = e.s.Put(ctx, &logical.StorageEntry{Key: secretKey(r.Instance, "corrupt"), Value: []byte("{")})

	resp := e.ok(logical.UpdateOperation, "tidy/secret-id", nil)
	if resp.Data["secret_ids_deleted"] != 2 || resp.Data["accessors_deleted"] != 1 {
		t.Fatalf("tidy answered %#v", resp.Data)
	}
	e.loginFails(roleID, expiring, "127.0.0.1")
	e.mustLogin(roleID, keep, "127.0.0.1")
	accs := e.ok(logical.ListOperation, "role/r/secret-id", nil).Data["keys"].([]string)
	if len(accs) != 1 || accs[0] != keepAcc {
		t.Fatalf("accessors after tidy %v", accs)
	}
	if keys := append(e.keysUnder(secretIDPrefix+dead), e.keysUnder(accessorPrefix+dead)...); len(keys) != 0 {
		t.Fatalf("orphans left: %v", keys)
	}
	if len(e.keysUnder(secretIDPrefix)) != 2 { // keep + the corrupt record
		t.Fatalf("secret IDs left %v", e.keysUnder(secretIDPrefix))
	}
	// A second run finds nothing more.
	resp = e.ok(logical.UpdateOperation, "tidy/secret-id", nil)
	if resp.Data["secret_ids_deleted"] != 0 || resp.Data["accessors_deleted"] != 0 {
		t.Fatalf("second tidy answered %#v", resp.Data)
	}
}

func TestTidyBusy(t *testing.T) {
	e := newEnv(t)
	e.b.tidyMu.Lock()
	e.fails(logical.UpdateOperation, "tidy/secret-id", nil, logical.CodeInvalidRequest, "already running")
	e.b.tidyMu.Unlock()
	e.ok(logical.UpdateOperation, "tidy/secret-id", nil)
}
