package approle

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestLoginAuth(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("web", map[string]any{
		"token_policies": "dev,ops", "token_ttl": "1h", "token_max_ttl": "2h", "token_period": "0",
		"token_explicit_max_ttl": "10h", "token_num_uses": 3, "token_bound_cidrs": "10.0.0.0/8",
		"token_no_default_policy": true,
	})
	resp := e.ok(logical.UpdateOperation, "role/web/secret-id", map[string]any{
		"metadata": `{"team":"blue","role_name":"admin"}`,
	})
	secret, acc := resp.Data["secret_id"].(string), resp.Data["secret_id_accessor"].(string)

	a := e.mustLogin(roleID, secret, "127.0.0.1:5555")
	want := &logical.Auth{
		DisplayName:     "web",
		Policies:        []string{"dev", "ops"},
		NoDefaultPolicy: true,
		Metadata:        map[string]string{"role_name": "web", "team": "blue"},
		TTL:             time.Hour, MaxTTL: 2 * time.Hour, ExplicitMaxTTL: 10 * time.Hour,
		Renewable: true, NumUses: 3, BoundCIDRs: []string{"10.0.0.0/8"},
		Alias:        &logical.Alias{Name: roleID, Metadata: map[string]string{"role_name": "web", "team": "blue"}},
		InternalData: map[string]any{"role_name": "web", "role_id": roleID, "secret_id_accessor": acc},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("auth:\n got %+v\nwant %+v", a, want)
	}
	// Nothing in the Auth carries the secret ID.
	b, _ := json.Marshal(a)
	if strings.Contains(string(b), secret) {
		t.Fatal("Auth contains the secret ID")
	}
}

func TestLoginSecretIDTokenBoundCIDRs(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", map[string]any{"token_bound_cidrs": "10.0.0.0/8"})
	secret, _ := e.secretID("r", map[string]any{"token_bound_cidrs": "10.3.0.0/16"})
	if a := e.mustLogin(roleID, secret, "127.0.0.1"); !reflect.DeepEqual(a.BoundCIDRs, []string{"10.3.0.0/16"}) {
		t.Fatalf("bound CIDRs %v", a.BoundCIDRs)
	}
}

func TestLoginWithoutSecretID(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("nb", map[string]any{"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8", "token_policies": "p"})
	a := e.mustLogin(roleID, "", "10.2.3.4")
	if a.DisplayName != "nb" || !reflect.DeepEqual(a.Policies, []string{"p"}) || a.InternalData["secret_id_accessor"] != nil {
		t.Fatalf("auth %+v", a)
	}
	// Any secret_id given is ignored; the CIDR rule still applies.
	e.mustLogin(roleID, "whatever", "10.2.3.4")
	e.loginFails(roleID, "", "192.168.0.1")
	e.loginFails(roleID, "", "")
}

// Every refusal answers the same error, whatever was wrong.
func TestLoginRefusals(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", map[string]any{"secret_id_bound_cidrs": "10.0.0.0/8"})
	otherID := e.role("o", nil)
	good, _ := e.secretID("r", map[string]any{"cidr_list": "10.1.0.0/16"})
	other, _ := e.secretID("o", nil)
	const ok = "10.1.1.1"

	e.loginFails("", good, ok)                        // no role_id
	e.loginFails(roleID, "", ok)                      // no secret_id
	e.loginFails("unknown", good, ok)                 // unknown role_id
	e.loginFails(roleID, "wrong", ok)                 // unknown secret_id
	e.loginFails(roleID, other, ok)                   // another role's secret ID
	e.loginFails(otherID, good, ok)                   // ...and the reverse
	e.loginFails(roleID, good, "10.2.0.1")            // outside the secret ID's cidr_list
	e.loginFails(roleID, good, "192.168.1.1")         // outside the role's CIDRs
	e.loginFails(roleID, good, "not-an-address")      // unparsable client address
	e.loginFails(roleID, good, "")                    // no client address with CIDRs set
	e.loginFails(strings.ToUpper(roleID), good, ok)   // role IDs are exact
	e.loginFails(roleID, strings.ToUpper(good), ok)   // so are secret IDs
	e.loginFails(strings.Repeat("r", 5000), good, ok) // oversized
	e.loginFails(roleID, strings.Repeat("s", 5000), ok)
	e.mustLogin(roleID, good, ok+":443")

	// Bad shapes are 400 too, never a panic.
	for _, data := range []map[string]any{
		{"role_id": map[string]any{"x": 1}, "secret_id": good},
		{"role_id": roleID, "secret_id": []any{good}},
		nil,
	} {
		_, err := e.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.UpdateOperation, Path: "login", Data: data, Storage: e.s, RemoteAddr: ok,
		})
		if logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Fatalf("%v: %v", data, err)
		}
	}
}

func TestLoginExpiry(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", map[string]any{"secret_id_ttl": "1m"})
	secret, _ := e.secretID("r", nil)
	e.clock.Advance(59 * time.Second)
	e.mustLogin(roleID, secret, "127.0.0.1")
	e.clock.Advance(time.Second)
	e.loginFails(roleID, secret, "127.0.0.1")
}

func TestLoginNumUses(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", nil)
	secret, acc := e.secretID("r", map[string]any{"num_uses": 2})
	e.mustLogin(roleID, secret, "127.0.0.1")
	e.mustLogin(roleID, secret, "127.0.0.1")
	e.loginFails(roleID, secret, "127.0.0.1")
	// The spent secret ID and its accessor are gone.
	if keys := append(e.keysUnder(secretIDPrefix), e.keysUnder(accessorPrefix)...); len(keys) != 0 {
		t.Fatalf("spent secret ID left %v", keys)
	}
	e.fails(logical.UpdateOperation, "role/r/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc},
		logical.CodeNotFound, "failed to find")
	// A refused login (wrong address) does not spend a use.
	s2, _ := e.secretID("r", map[string]any{"num_uses": 1, "cidr_list": "10.0.0.0/8"})
	e.loginFails(roleID, s2, "192.168.0.1")
	e.mustLogin(roleID, s2, "10.0.0.1")
}

func TestLoginAfterRoleChanges(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", nil)
	secret, _ := e.secretID("r", nil)
	// Tightening the role's CIDRs applies to existing secret IDs.
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"secret_id_bound_cidrs": "10.0.0.0/8"})
	e.loginFails(roleID, secret, "127.0.0.1")
	e.mustLogin(roleID, secret, "10.0.0.1")

	// A deleted role logs nobody in, and a new role of the same name does
	// not inherit its secret IDs, even with the same role ID.
	e.ok(logical.DeleteOperation, "role/r", nil)
	e.loginFails(roleID, secret, "10.0.0.1")
	e.role("r", map[string]any{"role_id": roleID})
	e.loginFails(roleID, secret, "127.0.0.1")
}

// Mounts are independent and state survives a plugin restart.
func TestLoginMountsAndRestart(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", map[string]any{"role_id": "shared"})
	secret, _ := e.secretID("r", nil)

	restarted := newEnvOn(t, e.s, e.clock)
	restarted.mustLogin(roleID, secret, "127.0.0.1")

	other := newEnv(t)
	other.role("r", map[string]any{"role_id": "shared"})
	other.loginFails(roleID, secret, "127.0.0.1")

	// The salt differs per mount: the same secret ID hashes differently.
	other.ok(logical.UpdateOperation, "role/r/custom-secret-id", map[string]any{"secret_id": "same"})
	e.ok(logical.UpdateOperation, "role/r/custom-secret-id", map[string]any{"secret_id": "same"})
	k1, k2 := e.keysUnder(secretIDPrefix), other.keysUnder(secretIDPrefix)
	for _, a := range k1 {
		for _, b := range k2 {
			if a[strings.LastIndex(a, "/"):] == b[strings.LastIndex(b, "/"):] {
				t.Fatal("two mounts share an HMAC")
			}
		}
	}
}

func TestSaltInvalidate(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", nil)
	secret, _ := e.secretID("r", nil)
	// Another replica replaces the salt: after invalidation the new one is used.
	if err := e.s.Put(context.Background(), &logical.StorageEntry{Key: saltKey, Value: []byte(`{"key":"` + strings.Repeat("A", 44) + `"}`)}); err != nil {
		t.Fatal(err)
	}
	e.mustLogin(roleID, secret, "127.0.0.1") // cached salt
	e.b.InvalidateKey(context.Background(), saltKey)
	e.loginFails(roleID, secret, "127.0.0.1")
	// A corrupt salt is an internal error, not a credential refusal.
	_ = e.s.Put(context.Background(), &logical.StorageEntry{Key: saltKey, Value: []byte("{")})
	e.b.InvalidateKey(context.Background(), saltKey)
	if _, err := e.login(roleID, secret, "127.0.0.1"); logical.CodeOf(err) != logical.CodeInternal {
		t.Fatalf("corrupt salt: %v", err)
	}
}

// Concurrent logins never spend more uses than a secret ID has.
func TestLoginConcurrentUses(t *testing.T) {
	for _, uses := range []int{1, 5} {
		e := newEnv(t)
		roleID := e.role("r", nil)
		secret, _ := e.secretID("r", map[string]any{"num_uses": uses})
		var wins, fails atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := e.login(roleID, secret, "127.0.0.1")
				switch {
				case err == nil && resp.Auth != nil:
					wins.Add(1)
				case err != nil && err.Error() == "invalid role ID or secret ID":
					fails.Add(1)
				default:
					t.Errorf("unexpected %v %+v", err, resp)
				}
			}()
		}
		close(start)
		wg.Wait()
		if int(wins.Load()) != uses || int(fails.Load()) != 32-uses {
			t.Fatalf("num_uses=%d: %d successes, %d refusals", uses, wins.Load(), fails.Load())
		}
	}
}

// Logins, issues, destroys and tidies running together keep storage
// consistent: every surviving secret ID has its accessor and vice versa.
func TestHammer(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				resp, err := e.do(logical.UpdateOperation, "role/r/secret-id", map[string]any{"num_uses": 1 + i%3})
				if err != nil {
					t.Error(err)
					return
				}
				secret := resp.Data["secret_id"].(string)
				switch (g + i) % 4 {
				case 0:
					_, _ = e.login(roleID, secret, "127.0.0.1")
				case 1:
					_, _ = e.do(logical.UpdateOperation, "role/r/secret-id/destroy", map[string]any{"secret_id": secret})
				case 2:
					_, _ = e.do(logical.UpdateOperation, "tidy/secret-id", nil)
				}
			}
		}()
	}
	wg.Wait()
	e.ok(logical.UpdateOperation, "tidy/secret-id", nil)
	secrets, accs := e.keysUnder(secretIDPrefix), e.keysUnder(accessorPrefix)
	if len(secrets) != len(accs) || len(secrets) == 0 {
		t.Fatalf("%d secret IDs, %d accessors", len(secrets), len(accs))
	}
	listed := e.ok(logical.ListOperation, "role/r/secret-id", nil).Data["keys"].([]string)
	for _, acc := range listed {
		e.ok(logical.UpdateOperation, "role/r/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc})
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t)
	roleID := e.role("r", map[string]any{"token_policies": "a,b", "token_ttl": "1h", "token_max_ttl": "4h"})
	secret, _ := e.secretID("r", nil)
	a := e.mustLogin(roleID, secret, "127.0.0.1")

	// TTLs follow the role's current settings.
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"token_ttl": "2h", "token_max_ttl": "8h", "token_period": "30m"})
	resp, err := e.renew(a)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Auth
	if got.TTL != 2*time.Hour || got.MaxTTL != 8*time.Hour || got.Period != 30*time.Minute ||
		!reflect.DeepEqual(got.Policies, a.Policies) || got.InternalData["role_name"] != "r" {
		t.Fatalf("renewed auth %+v", got)
	}
	// The renewal's answer is a copy: changing it leaves the request alone.
	got.Metadata["x"] = "y"
	if _, ok := a.Metadata["x"]; ok {
		t.Fatal("renew shares the metadata map")
	}

	// The Auth survives the kernel's JSON round trip.
	var rt logical.Auth
	raw, _ := json.Marshal(a)
	if err := json.Unmarshal(raw, &rt); err != nil {
		t.Fatal(err)
	}
	if _, err := e.renew(&rt); err != nil {
		t.Fatalf("renew after JSON round trip: %v", err)
	}

	renewFails := func(a *logical.Auth, msg string) {
		t.Helper()
		_, err := e.renew(a)
		if logical.CodeOf(err) != logical.CodeInvalidRequest || !strings.Contains(err.Error(), msg) {
			t.Fatalf("renew: want 400 %q, got %v", msg, err)
		}
	}
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"token_policies": "a"})
	renewFails(a, "policies")
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"policies": "b,a"}) // back, via the legacy name
	if _, err := e.renew(a); err != nil {
		t.Fatal(err)
	}
	e.ok(logical.UpdateOperation, "role/r/role-id", map[string]any{"role_id": "new-id"})
	renewFails(a, "role ID")
	e.ok(logical.UpdateOperation, "role/r/role-id", map[string]any{"role_id": roleID})
	if _, err := e.renew(a); err != nil {
		t.Fatal(err)
	}
	e.ok(logical.DeleteOperation, "role/r", nil)
	renewFails(a, "no longer exists")
	e.role("r", map[string]any{"token_policies": "a,b"}) // same name, new role ID
	renewFails(a, "role ID")

	renewFails(&logical.Auth{InternalData: map[string]any{}}, "no AppRole role information")
	renewFails(&logical.Auth{}, "no AppRole role information")
}
