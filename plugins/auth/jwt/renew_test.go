package jwt

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardproject/ward/sdk/logical"
)

// renew sends the kernel's renewal of a token whose login returned a.
// Like the kernel, it sets no Storage: the backend uses the mount's view.
func (e *env) renew(a *logical.Auth) (*logical.Response, error) {
	sent := *a
	sent.IssueTime = e.clock.Now()
	return e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Path: "login", Auth: &sent})
}

func TestRenew(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, rsaKey.Public())
	e.role("r", map[string]any{"token_max_ttl": "3h"})
	a := e.login("r", sign(t, rsaKey, jose.RS256, "", e.claims(nil)))

	resp, err := e.renew(a)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Auth
	if got.TTL != time.Hour || got.MaxTTL != 3*time.Hour || got.Period != 0 || got.DisplayName != "alice" ||
		!reflect.DeepEqual(got.Policies, a.Policies) || !reflect.DeepEqual(got.InternalData, a.InternalData) {
		t.Fatalf("renewed auth = %+v", got)
	}

	// TTLs come from the role as it is now; the JWT's own exp plays no part
	// (Vault's behaviour).
	e.clock.Advance(48 * time.Hour)
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"token_ttl": "30m", "token_max_ttl": "1h", "token_period": "20m"})
	resp, err = e.renew(a)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Auth.TTL != 30*time.Minute || resp.Auth.MaxTTL != time.Hour || resp.Auth.Period != 20*time.Minute {
		t.Fatalf("renewed TTLs = %v %v %v", resp.Auth.TTL, resp.Auth.MaxTTL, resp.Auth.Period)
	}
	// The original Auth is not modified in place.
	if a.TTL != time.Hour {
		t.Fatal("renew changed the request's Auth")
	}
}

func TestRenewRefused(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, rsaKey.Public())
	e.role("r", nil)
	e.role("s", nil)
	tok := sign(t, rsaKey, jose.RS256, "", e.claims(nil))
	a := e.login("r", tok)
	b := e.login("s", tok)

	// Policies changed (even only in order-insensitive content) refuse.
	e.ok(logical.UpdateOperation, "role/s", map[string]any{"token_policies": "dev"})
	if _, err := e.renew(b); logical.CodeOf(err) != logical.CodeInvalidRequest || !containsStr(err, "policies") {
		t.Fatalf("renew after a policy change = %v", err)
	}
	// Same policies written in another order: still renewable.
	e.ok(logical.UpdateOperation, "role/r", map[string]any{"token_policies": "OPS, dev"})
	if _, err := e.renew(a); err != nil {
		t.Fatalf("renew after rewriting the same policies = %v", err)
	}

	e.ok(logical.DeleteOperation, "role/r", nil)
	if _, err := e.renew(a); logical.CodeOf(err) != logical.CodeInvalidRequest || !containsStr(err, "no longer exists") {
		t.Fatalf("renew after deletion = %v", err)
	}
	// Recreating the role with the same policies makes it renewable again.
	e.role("r", nil)
	if _, err := e.renew(a); err != nil {
		t.Fatalf("renew after recreation = %v", err)
	}

	noRole := *a
	noRole.InternalData = map[string]any{}
	if _, err := e.renew(&noRole); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("renew without a role = %v", err)
	}
	noRole.InternalData = map[string]any{"role": 7}
	if _, err := e.renew(&noRole); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("renew with a non-string role = %v", err)
	}
	noRole.InternalData = nil
	if _, err := e.renew(&noRole); logical.CodeOf(err) != logical.CodeInvalidRequest {
		t.Fatalf("renew with nil internal data = %v", err)
	}
}

func containsStr(err error, s string) bool {
	return err != nil && len(s) > 0 && strings.Contains(err.Error(), s)
}
