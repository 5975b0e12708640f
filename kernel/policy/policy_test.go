package policy

import (
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

func TestRootAllowsEverything(t *testing.T) {
	a := New([]string{"root"})
	if !a.IsRoot() || !a.Allowed("secret/data/x", logical.DeleteOperation, true) {
		t.Fatal("root must allow everything, sudo included")
	}
}

func TestDefaultPolicy(t *testing.T) {
	a := New([]string{"default", "custom-not-yet-supported"})
	cases := []struct {
		path string
		op   logical.Operation
		sudo bool
		want bool
	}{
		{"auth/token/lookup-self", logical.ReadOperation, false, true},
		{"auth/token/renew-self", logical.UpdateOperation, false, true},
		{"auth/token/revoke-self", logical.UpdateOperation, false, true},
		{"auth/token/create", logical.UpdateOperation, false, false},
		{"auth/token/lookup-self", logical.DeleteOperation, false, false},
		{"sys/internal/ui/mounts/secret/x", logical.ReadOperation, false, true},
		{"cubbyhole/mine", logical.CreateOperation, false, true},
		{"secret/data/x", logical.ReadOperation, false, false},
		{"sys/mounts", logical.ReadOperation, false, false},
		{"sys/seal", logical.UpdateOperation, true, false},
		{"sys/tools/hash", logical.UpdateOperation, true, false}, // sudo never granted by default
	}
	for _, c := range cases {
		if got := a.Allowed(c.path, c.op, c.sudo); got != c.want {
			t.Errorf("Allowed(%q, %s, sudo=%v) = %v, want %v", c.path, c.op, c.sudo, got, c.want)
		}
	}
	if New(nil).Allowed("auth/token/lookup-self", logical.ReadOperation, false) {
		t.Error("a token without the default policy gets its grants")
	}
}
