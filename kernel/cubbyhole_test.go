package kernel

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func hashedOf(t *testing.T, u *unsealedState, tok string) string {
	t.Helper()
	te, err := u.tokens.Lookup(context.Background(), tok)
	if err != nil || te == nil {
		t.Fatalf("lookup: %v", err)
	}
	return te.HashedID
}

func TestCubbyholeIsPerToken(t *testing.T) {
	c, u, _, root := wrapCore(t)
	// Vault's default policy grants a token its own cubbyhole.
	ada := newToken(t, c, root, map[string]any{"policies": []any{"default"}})
	bob := newToken(t, c, root, map[string]any{"policies": []any{"default"}})
	for tok, v := range map[string]string{root: "root's", ada: "ada's", bob: "bob's"} {
		mustReq(t, c, tok, "update", "cubbyhole/app/db", map[string]any{"password": v, "port": 5432, "nested": map[string]any{"k": []any{"x"}}}, 0)
	}
	mustReq(t, c, ada, "update", "cubbyhole/only-ada", map[string]any{"x": "y"}, 0)
	for tok, v := range map[string]string{root: "root's", ada: "ada's", bob: "bob's"} {
		r := mustReq(t, c, tok, "read", "cubbyhole/app/db", nil, 0)
		if r.Data["password"] != v || r.Data["nested"] == nil {
			t.Fatalf("read own cubbyhole: %v", r.Data)
		}
	}
	if r, err := req(t, c, bob, "read", "cubbyhole/only-ada", nil, 0); err != nil || r != nil {
		t.Fatalf("bob sees ada's key: %+v %v", r, err)
	}
	l := mustReq(t, c, ada, "list", "cubbyhole/", nil, 0)
	if keys, _ := l.Data["keys"].([]string); !slices.Equal(keys, []string{"app/", "only-ada"}) {
		t.Fatalf("ada's list: %v", l.Data)
	}
	l = mustReq(t, c, bob, "list", "cubbyhole/", nil, 0)
	if keys, _ := l.Data["keys"].([]string); !slices.Equal(keys, []string{"app/"}) {
		t.Fatalf("bob's list: %v", l.Data)
	}
	// Overwrite, delete, missing, bad input.
	mustReq(t, c, ada, "update", "cubbyhole/app/db", map[string]any{"password": "new"}, 0)
	if r := mustReq(t, c, ada, "read", "cubbyhole/app/db", nil, 0); r.Data["password"] != "new" || r.Data["port"] != nil {
		t.Fatalf("overwritten: %v", r.Data)
	}
	mustReq(t, c, ada, "delete", "cubbyhole/app/db", nil, 0)
	if r, err := req(t, c, ada, "read", "cubbyhole/app/db", nil, 0); err != nil || r != nil {
		t.Fatalf("deleted key: %+v %v", r, err)
	}
	if r := mustReq(t, c, bob, "read", "cubbyhole/app/db", nil, 0); r.Data["password"] != "bob's" {
		t.Fatalf("ada's delete touched bob's: %v", r.Data)
	}
	if _, err := req(t, c, ada, "update", "cubbyhole/empty", map[string]any{}, 0); status(err) != 400 {
		t.Fatalf("write without data: %v", err)
	}
	// Storage is keyed by the token store's hash, never the token.
	keys, err := logical.CollectKeys(context.Background(), c.cubbyhole().view, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for _, tok := range []string{root, ada, bob} {
			if strings.Contains(k, tok) {
				t.Fatalf("a token appears in a storage key")
			}
		}
	}
	if !slices.Contains(keys, hashedOf(t, u, bob)+"/app/db") {
		t.Fatalf("storage keys %v", keys)
	}
	// A token whose policy only allows create cannot overwrite (the
	// existence check decides create vs update).
	mustReq(t, c, root, "update", "sys/policies/acl/cubby-create", map[string]any{"policy": `path "cubbyhole/*" { capabilities = ["create"] }`}, 0)
	cr := newToken(t, c, root, map[string]any{"policies": []any{"cubby-create"}, "no_default_policy": true})
	mustReq(t, c, cr, "update", "cubbyhole/once", map[string]any{"v": "1"}, 0)
	if _, err := req(t, c, cr, "update", "cubbyhole/once", map[string]any{"v": "2"}, 0); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("overwrite with create only: %v", err)
	}
}

func TestCubbyholeMount(t *testing.T) {
	c, _, _, root := wrapCore(t)
	m := mustReq(t, c, root, "read", "sys/mounts", nil, 0)
	cb, _ := m.Data["cubbyhole/"].(map[string]any)
	if cb == nil || cb["type"] != "cubbyhole" || cb["local"] != true || cb["description"] != "per-token private secret storage" {
		t.Fatalf("sys/mounts: %v", m.Data["cubbyhole/"])
	}
	if a, _ := cb["accessor"].(string); len(a) != len("cubbyhole_")+8 {
		t.Fatalf("accessor %q", a)
	}
	for _, p := range [][2]string{{"delete", "sys/mounts/cubbyhole"}, {"update", "sys/mounts/cubbyhole/tune"}, {"update", "sys/mounts/cubbyhole"}} {
		if _, err := req(t, c, root, p[0], p[1], map[string]any{"type": "kv", "default_lease_ttl": "1h"}, 0); status(err) != 400 {
			t.Fatalf("%s %s: %v", p[0], p[1], err)
		}
	}
	if _, err := req(t, c, "", "read", "cubbyhole/x", nil, 0); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("cubbyhole without a token: %v", err)
	}
}

// TestCubbyholeGoesWithItsToken: revocation, a parent's revocation, expiry
// and the last use each delete the token's cubbyhole.
func TestCubbyholeGoesWithItsToken(t *testing.T) {
	c, u, clk, root := wrapCore(t)
	write := func(tok string) string {
		t.Helper()
		h := hashedOf(t, u, tok)
		mustReq(t, c, tok, "update", "cubbyhole/a", map[string]any{"v": "1"}, 0)
		mustReq(t, c, tok, "update", "cubbyhole/b/c", map[string]any{"v": "2"}, 0)
		return h
	}

	// Revocation.
	tok := newToken(t, c, root, map[string]any{"policies": []any{"default"}})
	h := write(tok)
	mustReq(t, c, root, "update", "auth/token/revoke", map[string]any{"token": tok}, 0)
	waitCubbyholeGone(t, c, h)

	// A parent's revocation takes the children's cubbyholes.
	mustReq(t, c, root, "update", "sys/policies/acl/creator", map[string]any{"policy": `path "auth/token/create" { capabilities = ["update"] }`}, 0)
	parent := newToken(t, c, root, map[string]any{"policies": []any{"default", "creator"}})
	child := newToken(t, c, parent, nil)
	grandchild := newToken(t, c, child, nil)
	hc, hg := write(child), write(grandchild)
	mustReq(t, c, parent, "update", "auth/token/revoke-self", nil, 0)
	waitCubbyholeGone(t, c, hc)
	waitCubbyholeGone(t, c, hg)

	// Expiry (the sweeper).
	short := newToken(t, c, root, map[string]any{"policies": []any{"default"}, "ttl": "10s"})
	hs := write(short)
	clk.Add(11 * time.Second)
	waitCubbyholeGone(t, c, hs)

	// Last use: the request still sees the cubbyhole, then it is gone.
	limited := newToken(t, c, root, map[string]any{"policies": []any{"default"}, "num_uses": 3})
	hl := write(limited) // two uses
	if r := mustReq(t, c, limited, "read", "cubbyhole/a", nil, 0); r.Data["v"] != "1" {
		t.Fatalf("last use read: %v", r.Data)
	}
	waitCubbyholeGone(t, c, hl)
	if _, err := req(t, c, limited, "read", "cubbyhole/a", nil, 0); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("use after the last: %v", err)
	}

	// Root tokens have one too, and lose it when revoked.
	root2 := newToken(t, c, root, map[string]any{"policies": []any{"root"}})
	hr := write(root2)
	mustReq(t, c, root2, "update", "auth/token/revoke-self", nil, 0)
	waitCubbyholeGone(t, c, hr)
}
