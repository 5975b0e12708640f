package userpass

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wardproject/ward/sdk/logical"
)

func TestLoginSuccess(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.CreateOperation, "users/alice", map[string]any{
		"password":                "correct horse",
		"token_policies":          "ops,dev",
		"token_ttl":               "1h",
		"token_max_ttl":           "2h",
		"token_period":            "30m",
		"token_explicit_max_ttl":  "10h",
		"token_no_default_policy": true,
		"token_num_uses":          5,
		"token_bound_cidrs":       "127.0.0.0/8",
	})
	a := e.login("ALICE", "correct horse")
	want := &logical.Auth{
		DisplayName:     "alice",
		Policies:        []string{"dev", "ops"},
		NoDefaultPolicy: true,
		Metadata:        map[string]string{"username": "alice"},
		TTL:             time.Hour,
		MaxTTL:          2 * time.Hour,
		Period:          30 * time.Minute,
		ExplicitMaxTTL:  10 * time.Hour,
		Renewable:       true,
		NumUses:         5,
		BoundCIDRs:      []string{"127.0.0.0/8"},
		Alias:           &logical.Alias{Name: "alice"},
		InternalData:    map[string]any{"username": "alice"},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("auth:\n got %+v\nwant %+v", a, want)
	}
	// The login compared against the user's own hash.
	if got := e.takeCompared(); len(got) != 1 || !bytes.Equal(got[0], e.record("alice").PasswordHash) {
		t.Fatalf("compared %d hashes", len(got))
	}
}

func TestLoginRefusals(t *testing.T) {
	e := newEnv(t)
	pw72 := strings.Repeat("a", 72)
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": pw72, "token_bound_cidrs": "10.0.0.0/8, 2001:db8::/32"})
	e.takeCompared()

	// Exactly 72 bytes is allowed, from an address inside the CIDRs.
	if _, err := e.doFrom("10.1.2.3:4567", logical.UpdateOperation, "login/bob", map[string]any{"password": pw72}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.doFrom("[2001:db8::1]:443", logical.UpdateOperation, "login/bob", map[string]any{"password": pw72}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.doFrom("10.9.9.9", logical.UpdateOperation, "login/bob", map[string]any{"password": pw72}); err != nil {
		t.Fatal(err)
	}
	e.takeCompared()
	// bcrypt alone accepts a longer password with the same first 72 bytes
	// (it ignores the rest); the login must not.
	if bcrypt.CompareHashAndPassword(e.record("bob").PasswordHash, []byte(pw72+"extra")) != nil {
		t.Log("this bcrypt rejects long passwords itself; the login check is then defence in depth")
	}
	e.loginFails("10.1.2.3", "bob", pw72+"extra")
	e.loginFails("10.1.2.3", "bob", "wrong")
	e.loginFails("10.1.2.3", "bob", strings.Repeat("a", 71))
	e.loginFails("10.1.2.3", "nobody", pw72)
	// Right password, refused address: the same generic answer.
	e.loginFails("192.168.0.1:80", "bob", pw72)
	e.loginFails("", "bob", pw72)
	e.loginFails("not-an-ip", "bob", pw72)

	// Every refusal spent exactly one bcrypt comparison.
	if got := e.takeCompared(); len(got) != 7 {
		t.Fatalf("%d comparisons for 7 refused logins", len(got))
	}

	// Bad input is a 400, not a credentials answer.
	e.fails(logical.UpdateOperation, "login/bob", nil, logical.CodeInvalidRequest, "missing password")
	e.fails(logical.UpdateOperation, "login/bob", map[string]any{"password": ""}, logical.CodeInvalidRequest, "missing password")
	e.fails(logical.UpdateOperation, "login/bob", map[string]any{"password": []any{"x"}}, logical.CodeInvalidRequest, `field "password"`)
}

func TestUnknownUserSpendsDummyComparison(t *testing.T) {
	e := newEnv(t)
	e.loginFails("127.0.0.1", "ghost", "pw")
	got := e.takeCompared()
	if len(got) != 1 {
		t.Fatalf("%d comparisons for an unknown user", len(got))
	}
	if !bytes.Equal(got[0], e.b.dummyHash()) {
		t.Fatal("unknown user not compared against the dummy hash")
	}
	if c, err := bcrypt.Cost(got[0]); err != nil || c != e.b.cost {
		t.Fatalf("dummy hash cost %d (%v), want the backend's %d", c, err, e.b.cost)
	}
	// The dummy hash is built once.
	e.loginFails("127.0.0.1", "ghost2", "pw")
	if got2 := e.takeCompared(); !bytes.Equal(got2[0], got[0]) {
		t.Fatal("dummy hash changed between logins")
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t)
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "pw", "token_policies": "a,b", "token_ttl": 60, "token_max_ttl": 600})
	a := e.login("bob", "pw")

	// The kernel keeps the Auth as JSON and may add "default" to it.
	var stored logical.Auth
	buf, _ := json.Marshal(a)
	if err := json.Unmarshal(buf, &stored); err != nil {
		t.Fatal(err)
	}
	stored.Policies = append(stored.Policies, "default")
	stored.IssueTime = time.Now()

	resp, err := e.renew(&stored)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Auth.TTL != time.Minute || resp.Auth.MaxTTL != 10*time.Minute || resp.Auth.Period != 0 {
		t.Fatalf("renew: %+v", resp.Auth)
	}

	// Renewal takes the current TTLs; policy order and case do not matter.
	e.ok(logical.UpdateOperation, "users/bob", map[string]any{"token_ttl": 120, "token_max_ttl": 0, "token_period": 300, "token_policies": "B,A"})
	resp, err = e.renew(&stored)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Auth.TTL != 2*time.Minute || resp.Auth.MaxTTL != 0 || resp.Auth.Period != 5*time.Minute {
		t.Fatalf("renew after change: %+v", resp.Auth)
	}
	if resp.Auth.DisplayName != "bob" || !reflect.DeepEqual(resp.Auth.Policies, stored.Policies) || !resp.Auth.IssueTime.Equal(stored.IssueTime) {
		t.Fatalf("renew changed other fields: %+v", resp.Auth)
	}
	// The answer shares no maps with the request.
	resp.Auth.Metadata["username"] = "mallory"
	resp.Auth.InternalData["username"] = "mallory"
	if stored.Metadata["username"] != "bob" || stored.InternalData["username"] != "bob" {
		t.Fatal("renew response aliases the request's maps")
	}

	// Metadata alone is enough to find the user (tokens from older logins).
	old := cloneAuth(&stored)
	old.InternalData = nil
	if _, err := e.renew(old); err != nil {
		t.Fatalf("renew by metadata: %v", err)
	}

	// A password change does not stop renewal (Vault).
	e.ok(logical.UpdateOperation, "users/bob/password", map[string]any{"password": "pw2"})
	if _, err := e.renew(&stored); err != nil {
		t.Fatalf("renew after password change: %v", err)
	}

	// Changed policies refuse renewal, whichever path changed them.
	e.ok(logical.UpdateOperation, "users/bob/policies", map[string]any{"token_policies": "a"})
	_, err = e.renew(&stored)
	fails(t, "renew after policy change", err, logical.CodeInvalidRequest, "policies have changed, not renewing")
	e.ok(logical.UpdateOperation, "users/bob", map[string]any{"token_policies": "a,b,c"})
	_, err = e.renew(&stored)
	fails(t, "renew after policy addition", err, logical.CodeInvalidRequest, "policies have changed")
	e.ok(logical.UpdateOperation, "users/bob", map[string]any{"token_policies": "a,b"})
	if _, err := e.renew(&stored); err != nil {
		t.Fatalf("renew after policies restored: %v", err)
	}

	// A deleted user refuses renewal, even if recreated with no policies.
	e.ok(logical.DeleteOperation, "users/bob", nil)
	_, err = e.renew(&stored)
	fails(t, "renew after delete", err, logical.CodeInvalidRequest, "no longer exists")

	// An Auth without a username.
	_, err = e.renew(&logical.Auth{Policies: []string{"a"}})
	fails(t, "renew without username", err, logical.CodeInvalidRequest, "no username")
	_, err = e.renew(&logical.Auth{InternalData: map[string]any{"username": 42}})
	fails(t, "renew with a bad username", err, logical.CodeInvalidRequest, "no username")
}

func TestRenewIgnoresPath(t *testing.T) {
	// The kernel routes renewals by operation; the path plays no part.
	e := newEnv(t)
	e.ok(logical.CreateOperation, "users/bob", map[string]any{"password": "pw"})
	a := e.login("bob", "pw")
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation, Path: "users/other", Auth: a, Storage: e.s,
	})
	if err != nil || resp.Auth == nil || resp.Auth.DisplayName != "bob" {
		t.Fatalf("renew: %+v %v", resp, err)
	}
}
