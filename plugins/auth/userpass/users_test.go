package userpass

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wardproject/ward/sdk/logical"
)

func TestFactory(t *testing.T) {
	s := logical.NewInmemStorage()
	lb, err := Factory(context.Background(), &logical.BackendConfig{StorageView: s})
	if err != nil {
		t.Fatal(err)
	}
	if lb.Type() != logical.TypeAuth {
		t.Fatalf("type %q", lb.Type())
	}
	if got := lb.SpecialPaths().Unauthenticated; !slices.Equal(got, []string{"login", "login/*"}) {
		t.Fatalf("unauthenticated paths %v", got)
	}
	if _, err := Factory(context.Background(), nil); err == nil {
		t.Fatal("nil config accepted")
	}

	// Production hashes (and the dummy hash) use bcrypt.DefaultCost. The
	// request carries no storage: the mount's view serves.
	_, err = lb.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.CreateOperation, Path: "users/bob", Data: map[string]any{"password": "pw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := getUser(context.Background(), s, "bob")
	if err != nil || u == nil {
		t.Fatalf("user not stored in the mount's view: %v", err)
	}
	if c, _ := bcrypt.Cost(u.PasswordHash); c != bcrypt.DefaultCost {
		t.Fatalf("hash cost %d, want %d", c, bcrypt.DefaultCost)
	}
	if c, _ := bcrypt.Cost(lb.(*backend).dummyHash()); c != bcrypt.DefaultCost {
		t.Fatalf("dummy hash cost %d, want %d", c, bcrypt.DefaultCost)
	}
}

func TestNoStorage(t *testing.T) {
	b, err := newBackend(&logical.BackendConfig{}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "users/bob"})
	fails(t, "read", err, logical.CodeInternal, "no storage")
}

func TestUserLifecycle(t *testing.T) {
	e := newEnv(t)
	if resp := e.ok(logical.ListOperation, "users/", nil); resp != nil {
		t.Fatalf("empty list: %+v", resp)
	}
	if resp := e.ok(logical.ReadOperation, "users/alice", nil); resp != nil {
		t.Fatalf("read of a missing user: %+v", resp)
	}

	// The kernel's existence check decides create vs update.
	found, exists, err := e.b.HandleExistenceCheck(context.Background(), &logical.Request{Path: "users/alice", Storage: e.s})
	if err != nil || !found || exists {
		t.Fatalf("existence before create: %v %v %v", found, exists, err)
	}
	e.ok(logical.CreateOperation, "users/Alice", map[string]any{
		"password":          "s3cret-pw",
		"token_policies":    "Dev, ops,dev",
		"token_ttl":         "1h",
		"token_max_ttl":     7200,
		"token_bound_cidrs": []any{"127.0.0.0/8", "192.168.1.7"},
		"token_num_uses":    3,
	})
	found, exists, err = e.b.HandleExistenceCheck(context.Background(), &logical.Request{Path: "users/ALICE", Storage: e.s})
	if err != nil || !found || !exists {
		t.Fatalf("existence after create: %v %v %v", found, exists, err)
	}

	list := e.ok(logical.ListOperation, "users", nil)
	if got := list.Data["keys"]; !reflect.DeepEqual(got, []string{"alice"}) {
		t.Fatalf("list %v", got)
	}

	resp := e.ok(logical.ReadOperation, "users/ALICE", nil)
	want := map[string]any{
		"token_ttl":               int64(3600),
		"token_max_ttl":           int64(7200),
		"token_period":            int64(0),
		"token_explicit_max_ttl":  int64(0),
		"token_policies":          []string{"dev", "ops"},
		"token_no_default_policy": false,
		"token_num_uses":          3,
		"token_bound_cidrs":       []string{"127.0.0.0/8", "192.168.1.7/32"},
		"token_type":              "default",
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Fatalf("read:\n got %#v\nwant %#v", resp.Data, want)
	}

	// The password is stored only as a bcrypt hash.
	raw, _ := e.s.Get(context.Background(), "user/alice")
	if strings.Contains(string(raw.Value), "s3cret-pw") {
		t.Fatal("password stored in clear")
	}
	if bcrypt.CompareHashAndPassword(e.record("alice").PasswordHash, []byte("s3cret-pw")) != nil {
		t.Fatal("stored hash does not match the password")
	}

	// An update without a password keeps it and the fields not given.
	e.ok(logical.UpdateOperation, "users/alice", map[string]any{"token_ttl": "30m"})
	u := e.record("alice")
	if u.TTL != 30*time.Minute || u.MaxTTL != 2*time.Hour || !slices.Equal(u.Policies, []string{"dev", "ops"}) {
		t.Fatalf("partial update: %+v", u.TokenParams)
	}
	e.login("alice", "s3cret-pw")

	// A new password through users/<name> replaces the old one.
	e.ok(logical.UpdateOperation, "users/alice", map[string]any{"password": "other"})
	e.login("alice", "other")
	e.loginFails("127.0.0.1", "alice", "s3cret-pw")

	e.ok(logical.DeleteOperation, "users/aLiCe", nil)
	if resp := e.ok(logical.ReadOperation, "users/alice", nil); resp != nil {
		t.Fatalf("read after delete: %+v", resp)
	}
	// Deleting a missing user is not an error (Vault).
	e.ok(logical.DeleteOperation, "users/alice", nil)
	e.loginFails("127.0.0.1", "alice", "other")
}

func TestUserWriteRefusals(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("p", 73)
	e.fails(logical.CreateOperation, "users/bob", nil, logical.CodeInvalidRequest, "missing password")
	e.fails(logical.CreateOperation, "users/bob", map[string]any{"token_ttl": 60}, logical.CodeInvalidRequest, "missing password")
	e.fails(logical.CreateOperation, "users/bob", map[string]any{"password": ""}, logical.CodeInvalidRequest, "missing password")
	e.fails(logical.CreateOperation, "users/bob", map[string]any{"password": long}, logical.CodeInvalidRequest, "longer than 72 bytes")
	// An update that reaches the backend without the kernel's decision is
	// still a create when the user is missing.
	e.fails(logical.UpdateOperation, "users/bob", map[string]any{"token_ttl": 60}, logical.CodeInvalidRequest, "missing password")
	if resp := e.ok(logical.ListOperation, "users/", nil); resp != nil {
		t.Fatalf("refused creates stored something: %+v", resp)
	}

	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "pw", "token_ttl": 60})
	before := e.record("bob")
	cases := []struct {
		name string
		data map[string]any
		msg  string
	}{
		{"empty password", map[string]any{"password": ""}, "missing password"},
		{"long password", map[string]any{"password": long}, "longer than 72 bytes"},
		{"ttl over max", map[string]any{"token_max_ttl": 30}, "token_ttl must not be greater than token_max_ttl"},
		{"bad cidr", map[string]any{"token_bound_cidrs": "10.0.0.0/33"}, "token_bound_cidrs"},
		{"bad legacy cidr", map[string]any{"bound_cidrs": "nope"}, "token_bound_cidrs"},
		{"bad duration", map[string]any{"token_ttl": "soon"}, `field "token_ttl"`},
		{"negative duration", map[string]any{"token_period": -5}, `field "token_period"`},
		{"negative uses", map[string]any{"token_num_uses": -1}, "token_num_uses cannot be negative"},
		{"bad type", map[string]any{"token_type": "batch"}, `field "token_type"`},
		{"policies not strings", map[string]any{"token_policies": []any{1, 2}}, `field "token_policies"`},
		{"bool", map[string]any{"token_no_default_policy": "maybe"}, `field "token_no_default_policy"`},
		{"password object", map[string]any{"password": map[string]any{"a": 1}}, `field "password"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.tb = t
			e.fails(logical.UpdateOperation, "users/bob", c.data, logical.CodeInvalidRequest, c.msg)
			if after := e.record("bob"); !reflect.DeepEqual(after, before) {
				t.Fatalf("refused update changed the record: %+v", after)
			}
		})
	}
	e.tb = t

	// Paths that are not a single valid name do not route.
	for _, p := range []string{"users/a/b", "users/-x", "users/a%2Fb", "login/", "login/a/b"} {
		_, err := e.do(logical.UpdateOperation, p, map[string]any{"password": "pw"})
		fails(t, p, err, logical.CodeNotFound, "unsupported path")
	}
	_, err := e.do(logical.ReadOperation, "users/", nil)
	fails(t, "read users/", err, logical.CodeUnsupportedOperation, "unsupported operation")
	_, err = e.do(logical.ReadOperation, "login/bob", nil)
	fails(t, "read login/bob", err, logical.CodeUnsupportedOperation, "unsupported operation")

	// Unknown fields are tolerated with a warning.
	resp := e.ok(logical.UpdateOperation, "users/bob", map[string]any{"colour": "blue"})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "colour") {
		t.Fatalf("warning for unknown field: %+v", resp)
	}
}

func TestReadNeverShowsPassword(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "hunter2", "policies": "a"})
	resp := e.ok(logical.ReadOperation, "users/bob", nil)
	for k, v := range resp.Data {
		if strings.Contains(k, "password") || strings.Contains(k, "hash") {
			t.Fatalf("read shows %q", k)
		}
		if s, ok := v.(string); ok && (strings.Contains(s, "hunter2") || strings.HasPrefix(s, "$2")) {
			t.Fatalf("read shows secret material in %q", k)
		}
	}
}

func TestLegacyAliases(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.CreateOperation, "users/bob", map[string]any{
		"password": "pw", "policies": "b,A", "bound_cidrs": "10.1.0.0/16", "ttl": "10m", "max_ttl": "1h",
	})
	data := e.ok(logical.ReadOperation, "users/bob", nil).Data
	for k, v := range map[string]any{
		"token_policies": []string{"a", "b"}, "policies": []string{"a", "b"},
		"token_bound_cidrs": []string{"10.1.0.0/16"}, "bound_cidrs": []string{"10.1.0.0/16"},
		"token_ttl": int64(600), "ttl": int64(600), "token_max_ttl": int64(3600), "max_ttl": int64(3600),
	} {
		if !reflect.DeepEqual(data[k], v) {
			t.Fatalf("%s = %#v, want %#v", k, data[k], v)
		}
	}
	resp, err := e.doFrom("10.1.0.1", logical.UpdateOperation, "login/bob", map[string]any{"password": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	e.loginFails("127.0.0.1", "bob", "pw")
	a := resp.Auth
	if !slices.Equal(a.Policies, []string{"a", "b"}) || a.TTL != 10*time.Minute || !slices.Equal(a.BoundCIDRs, []string{"10.1.0.0/16"}) {
		t.Fatalf("legacy fields not applied at login: %+v", a)
	}

	// Both given: token_* wins and the legacy key still echoes it.
	e.ok(logical.UpdateOperation, "users/bob", map[string]any{"policies": "x", "token_policies": "y"})
	data = e.ok(logical.ReadOperation, "users/bob", nil).Data
	if !reflect.DeepEqual(data["token_policies"], []string{"y"}) || !reflect.DeepEqual(data["policies"], []string{"y"}) {
		t.Fatalf("both given: %v %v", data["token_policies"], data["policies"])
	}
	// Only token_*: the legacy key is no longer echoed.
	e.ok(logical.UpdateOperation, "users/bob", map[string]any{"token_policies": "z", "token_ttl": 60})
	data = e.ok(logical.ReadOperation, "users/bob", nil).Data
	if _, ok := data["policies"]; ok {
		t.Fatalf("legacy policies still echoed: %v", data)
	}
	if _, ok := data["ttl"]; ok {
		t.Fatalf("legacy ttl still echoed: %v", data)
	}
	if !reflect.DeepEqual(data["bound_cidrs"], []string{"10.1.0.0/16"}) {
		t.Fatalf("untouched legacy bound_cidrs lost: %v", data)
	}
}

func TestPasswordPath(t *testing.T) {
	e := newEnv(t)
	e.fails(logical.UpdateOperation, "users/bob/password", map[string]any{"password": "new"}, logical.CodeNotFound, "username does not exist")
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "old", "token_policies": "p"})
	e.fails(logical.UpdateOperation, "users/bob/password", nil, logical.CodeInvalidRequest, "missing password")
	e.fails(logical.UpdateOperation, "users/bob/password", map[string]any{"password": strings.Repeat("x", 100)}, logical.CodeInvalidRequest, "72 bytes")
	e.ok(logical.UpdateOperation, "users/BOB/password", map[string]any{"password": "new"})
	e.loginFails("127.0.0.1", "bob", "old")
	a := e.login("bob", "new")
	if !slices.Equal(a.Policies, []string{"p"}) {
		t.Fatalf("password change touched policies: %v", a.Policies)
	}
	if resp := e.ok(logical.ListOperation, "users/", nil); !reflect.DeepEqual(resp.Data["keys"], []string{"bob"}) {
		t.Fatalf("list: %v", resp.Data)
	}
}

func TestPoliciesPath(t *testing.T) {
	e := newEnv(t)
	e.fails(logical.UpdateOperation, "users/bob/policies", map[string]any{"token_policies": "a"}, logical.CodeNotFound, "username does not exist")
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "pw", "token_policies": "a", "token_ttl": 90})
	e.fails(logical.UpdateOperation, "users/bob/policies", nil, logical.CodeInvalidRequest, "must provide token_policies")

	e.ok(logical.UpdateOperation, "users/bob/policies", map[string]any{"token_policies": []any{"C", "b"}})
	data := e.ok(logical.ReadOperation, "users/bob", nil).Data
	if !reflect.DeepEqual(data["token_policies"], []string{"b", "c"}) || data["token_ttl"] != int64(90) {
		t.Fatalf("after token_policies: %v", data)
	}
	if _, ok := data["policies"]; ok {
		t.Fatal("legacy key echoed without being used")
	}
	e.ok(logical.UpdateOperation, "users/bob/policies", map[string]any{"policies": "d"})
	data = e.ok(logical.ReadOperation, "users/bob", nil).Data
	if !reflect.DeepEqual(data["token_policies"], []string{"d"}) || !reflect.DeepEqual(data["policies"], []string{"d"}) {
		t.Fatalf("after legacy policies: %v", data)
	}
	if a := e.login("bob", "pw"); !slices.Equal(a.Policies, []string{"d"}) {
		t.Fatalf("login policies %v", a.Policies)
	}
	// An empty list clears them.
	e.ok(logical.UpdateOperation, "users/bob/policies", map[string]any{"token_policies": ""})
	if got := e.record("bob").Policies; len(got) != 0 {
		t.Fatalf("policies not cleared: %v", got)
	}
}

func TestSeparateMounts(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	a.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "pw"})
	b.loginFails("127.0.0.1", "bob", "pw")
	a.login("bob", "pw")
}

// failingStorage fails every call.
type failingStorage struct{ logical.Storage }

var errDisk = errors.New("disk on fire")

func (failingStorage) Get(context.Context, string) (*logical.StorageEntry, error) {
	return nil, errDisk
}
func (failingStorage) Put(context.Context, *logical.StorageEntry) error { return errDisk }
func (failingStorage) List(context.Context, string) ([]string, error)   { return nil, errDisk }
func (failingStorage) Delete(context.Context, string) error             { return errDisk }

func TestStorageErrors(t *testing.T) {
	e := newEnv(t)
	do := func(op logical.Operation, path string, data map[string]any) error {
		_, err := e.b.HandleRequest(context.Background(), &logical.Request{
			Operation: op, Path: path, Data: data, Storage: failingStorage{}, RemoteAddr: "127.0.0.1",
		})
		return err
	}
	for _, c := range []struct {
		op   logical.Operation
		path string
		data map[string]any
	}{
		{logical.ListOperation, "users/", nil},
		{logical.ReadOperation, "users/bob", nil},
		{logical.CreateOperation, "users/bob", map[string]any{"password": "pw"}},
		{logical.DeleteOperation, "users/bob", nil},
		{logical.UpdateOperation, "users/bob/password", map[string]any{"password": "pw"}},
		{logical.UpdateOperation, "users/bob/policies", map[string]any{"token_policies": "a"}},
		{logical.UpdateOperation, "login/bob", map[string]any{"password": "pw"}},
	} {
		if err := do(c.op, c.path, c.data); !errors.Is(err, errDisk) || logical.CodeOf(err) != logical.CodeInternal {
			t.Fatalf("%s %s: %v", c.op, c.path, err)
		}
	}
	// A failed lookup still costs a bcrypt comparison.
	if got := e.takeCompared(); len(got) != 1 {
		t.Fatalf("login with a storage error compared %d hashes", len(got))
	}
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation, Path: "login/bob", Storage: failingStorage{},
		Auth: &logical.Auth{InternalData: map[string]any{"username": "bob"}},
	})
	if !errors.Is(err, errDisk) {
		t.Fatalf("renew with a storage error: %v", err)
	}
}

func TestCorruptRecord(t *testing.T) {
	e := newEnv(t)
	secret := `{"password_hash": "c2VjcmV0LWJ5dGVz", "token_ttl": "oops-secret"}`
	if err := e.s.Put(context.Background(), &logical.StorageEntry{Key: "user/bob", Value: []byte(secret)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.do(logical.ReadOperation, "users/bob", nil)
	fails(t, "read corrupt", err, logical.CodeInternal, "corrupt record", "oops-secret", "c2VjcmV0")
	_, err = e.do(logical.UpdateOperation, "login/bob", map[string]any{"password": "pw"})
	fails(t, "login corrupt", err, logical.CodeInternal, "corrupt record", "oops-secret", "pw")
}

func TestHelpAndSchema(t *testing.T) {
	e := newEnv(t)
	resp := e.ok(logical.HelpOperation, "login/bob", nil)
	if h, _ := resp.Data["help"].(string); !strings.Contains(h, "password") {
		t.Fatalf("help: %q", h)
	}
	if n := len(e.b.Schema().Paths); n != 5 {
		t.Fatalf("schema has %d paths", n)
	}
}
