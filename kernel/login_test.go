package kernel

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wardproject/ward/kernel/mount"
	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/kernel/storage"
	"github.com/wardproject/ward/sdk/logical"
)

// fakeAuth is an in-process auth method: login answers auth, renew answers
// renewAnswer (or refuses with renewErr).
type fakeAuth struct {
	auth        *logical.Auth
	renewAnswer *logical.Auth
	renewErr    error
	renewSeen   *logical.Request
	logins      int
}

func (f *fakeAuth) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.RenewOperation {
		f.renewSeen = req
		if f.renewErr != nil {
			return nil, f.renewErr
		}
		return &logical.Response{Auth: f.renewAnswer}, nil
	}
	f.logins++
	a := *f.auth
	return &logical.Response{Auth: &a, Data: map[string]any{"note": "hello"}}, nil
}

func (f *fakeAuth) SpecialPaths() *logical.Paths {
	return &logical.Paths{Unauthenticated: []string{"login", "login/*"}}
}

// loginCore is an unsealed core with a fake auth method at auth/fake/
// (mount max TTL 2h) and a root token.
func loginCore(t *testing.T, fa *fakeAuth) (*Core, *unsealedState, string) {
	t.Helper()
	ctx := context.Background()
	c, err := New(Config{Storage: storage.NewInmem()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Initialize(ctx, InitParams{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Seal(ctx) })
	u, _ := c.state()
	e := mount.NewEntry("fake/", "fake")
	e.Config.MaxLeaseTTL = 7200
	if err := u.auths.table.Add(ctx, e); err != nil {
		t.Fatal(err)
	}
	u.router.Add(&router.Route{Prefix: "auth/fake/", Type: "fake", Accessor: e.Accessor, Handler: fa, Auth: true})
	return c, u, res.RootToken
}

func do(t *testing.T, c *Core, tok, op, path string, data map[string]any, remote string) (*Response, error) {
	t.Helper()
	return c.HandleRequest(context.Background(), &Request{ClientToken: tok,
		Request: &logical.Request{Operation: logical.Operation(op), Path: path, Data: data, RemoteAddr: remote}})
}

func TestLoginMintsAndRenewAsksTheMethod(t *testing.T) {
	fa := &fakeAuth{auth: &logical.Auth{DisplayName: "ada", Policies: []string{"dev"}, Metadata: map[string]string{"username": "ada"},
		TTL: time.Hour, MaxTTL: 10 * time.Hour, Renewable: true, InternalData: map[string]any{"secret-ish": "x"}}}
	c, _, _ := loginCore(t, fa)

	resp, err := do(t, c, "", "update", "auth/fake/login/ada", nil, "127.0.0.1:4000")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Auth != nil {
		t.Fatal("the method's Auth (with internal data) reached the client")
	}
	if resp.Data["note"] != "hello" {
		t.Fatalf("login data lost: %v", resp.Data)
	}
	a := resp.TokenAuth
	tok, _ := a["client_token"].(string)
	if tok == "" || !slices.Equal(a["policies"].([]string), []string{"default", "dev"}) || a["orphan"] != true ||
		a["lease_duration"] != int64(3600) || a["renewable"] != true {
		t.Fatalf("auth block: %v", a)
	}
	look, err := do(t, c, tok, "read", "auth/token/lookup-self", nil, "127.0.0.1:4000")
	if err != nil {
		t.Fatal(err)
	}
	if look.Data["display_name"] != "fake-ada" || look.Data["path"] != "auth/fake/login/ada" {
		t.Fatalf("lookup: %v", look.Data)
	}

	// Renewal goes to the method with the login's auth data.
	fa.renewAnswer = &logical.Auth{TTL: 30 * time.Minute}
	r, err := do(t, c, tok, "update", "auth/token/renew-self", nil, "127.0.0.1:4000")
	if err != nil {
		t.Fatal(err)
	}
	if r.TokenAuth["lease_duration"] != int64(1800) {
		t.Fatalf("renewed lease: %v", r.TokenAuth)
	}
	if fa.renewSeen == nil || fa.renewSeen.Path != "login/ada" || fa.renewSeen.Auth == nil ||
		fa.renewSeen.Auth.InternalData["secret-ish"] != "x" || fa.renewSeen.Auth.IssueTime.IsZero() {
		t.Fatalf("renew request: %+v", fa.renewSeen)
	}
	// The method refuses: the renewal fails with its error.
	fa.renewErr = logical.InvalidRequest("user deleted, not renewing")
	_, err = do(t, c, tok, "update", "auth/token/renew-self", nil, "127.0.0.1:4000")
	if StatusCode(logical.UpdateOperation, nil, err) != 400 {
		t.Fatalf("refused renewal: %v", err)
	}
}

func TestLoginTTLCapsAndRefusals(t *testing.T) {
	fa := &fakeAuth{auth: &logical.Auth{DisplayName: "x", Policies: []string{"dev"}, TTL: 5 * time.Hour, Renewable: true}}
	c, u, root := loginCore(t, fa)

	// The mount's max TTL (2h) caps the method's 5h.
	resp, err := do(t, c, "", "update", "auth/fake/login", nil, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.TokenAuth["lease_duration"] != int64(7200) {
		t.Fatalf("lease %v, want the mount's max 7200", resp.TokenAuth["lease_duration"])
	}

	// Never a root token.
	fa.auth = &logical.Auth{Policies: []string{"root"}}
	if _, err := do(t, c, "", "update", "auth/fake/login", nil, "127.0.0.1:1"); StatusCode(logical.UpdateOperation, nil, err) != 400 {
		t.Fatalf("root login: %v", err)
	}

	// A secret engine answering with an Auth mints nothing.
	u.router.Add(&router.Route{Prefix: "rogue/", Type: "rogue", Accessor: "rogue_1", Handler: fa})
	if _, err := do(t, c, root, "update", "rogue/login", nil, "127.0.0.1:1"); StatusCode(logical.UpdateOperation, nil, err) != 502 {
		t.Fatalf("secret engine minting: %v", err)
	}

	// Bound CIDRs: the token works only from inside them.
	fa.auth = &logical.Auth{Policies: []string{"dev"}, BoundCIDRs: []string{"10.0.0.0/8"}}
	resp, err = do(t, c, "", "update", "auth/fake/login", nil, "10.1.1.1:1")
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.TokenAuth["client_token"].(string)
	if _, err := do(t, c, tok, "read", "auth/token/lookup-self", nil, "10.2.3.4:5"); err != nil {
		t.Fatalf("inside the CIDR: %v", err)
	}
	if _, err := do(t, c, tok, "read", "auth/token/lookup-self", nil, "127.0.0.1:5"); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("outside the CIDR: %v", err)
	}
}

func TestLoginConditionAndDisableRevokes(t *testing.T) {
	fa := &fakeAuth{auth: &logical.Auth{Policies: []string{"dev"}, TTL: time.Hour, Renewable: true}}
	c, _, root := loginCore(t, fa)

	// A bad condition is refused at write; a good one guards the logins.
	if _, err := do(t, c, root, "update", "sys/auth/fake/tune", map[string]any{"login_condition": `request.pth == "x"`}, ""); StatusCode(logical.UpdateOperation, nil, err) != 400 {
		t.Fatalf("bad condition: %v", err)
	}
	if _, err := do(t, c, root, "update", "sys/auth/fake/tune", map[string]any{"login_condition": `cidrContains("10.0.0.0/8", request.remote_addr)`}, ""); err != nil {
		t.Fatal(err)
	}
	before := fa.logins
	if _, err := do(t, c, "", "update", "auth/fake/login", nil, "127.0.0.1:1"); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("login outside the condition: %v", err)
	}
	if fa.logins != before {
		t.Fatal("a login the condition denied reached the method")
	}
	resp, err := do(t, c, "", "update", "auth/fake/login", nil, "10.0.0.9:1")
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.TokenAuth["client_token"].(string)
	tune, err := do(t, c, root, "read", "sys/auth/fake/tune", nil, "")
	if err != nil || tune.Data["login_condition"] == nil {
		t.Fatalf("tune read: %v %v", tune, err)
	}

	// Disabling the method revokes what it issued.
	if _, err := do(t, c, root, "delete", "sys/auth/fake", nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := do(t, c, tok, "read", "auth/token/lookup-self", nil, "10.0.0.9:1"); !errors.Is(err, logical.ErrPermissionDenied) {
		t.Fatalf("token of a disabled method: %v", err)
	}
	// The built-in token method cannot be disabled.
	if _, err := do(t, c, root, "delete", "sys/auth/token", nil, ""); StatusCode(logical.DeleteOperation, nil, err) != 400 {
		t.Fatalf("disable token/: %v", err)
	}
	list, err := do(t, c, root, "read", "sys/auth", nil, "")
	if err != nil || list.Data["token/"] == nil || list.Data["fake/"] != nil {
		t.Fatalf("sys/auth: %v %v", list, err)
	}
}

// blockingAuth holds a login inside the method until released.
type blockingAuth struct {
	fakeAuth
	entered, release chan struct{}
}

func (b *blockingAuth) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation != logical.RenewOperation {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.fakeAuth.HandleRequest(ctx, req)
}

// TestLoginRacingDisableMintsNothing: a login whose method is disabled
// (and another mounted at the same path) while it runs gets no token.
func TestLoginRacingDisableMintsNothing(t *testing.T) {
	ctx := context.Background()
	ba := &blockingAuth{fakeAuth: fakeAuth{auth: &logical.Auth{Policies: []string{"dev"}, TTL: time.Hour}},
		entered: make(chan struct{}), release: make(chan struct{})}
	c, u, root := loginCore(t, &ba.fakeAuth)
	route, _ := u.router.Match("auth/fake/login")
	route.Handler = ba // the same route, now blocking

	type result struct {
		resp *Response
		err  error
	}
	done := make(chan result)
	go func() {
		resp, err := c.HandleRequest(ctx, &Request{Request: &logical.Request{Operation: logical.UpdateOperation,
			Path: "auth/fake/login", RemoteAddr: "127.0.0.1:1"}})
		done <- result{resp, err}
	}()
	<-ba.entered
	if _, err := do(t, c, root, "delete", "sys/auth/fake", nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := u.auths.table.Add(ctx, mount.NewEntry("fake/", "other")); err != nil {
		t.Fatal(err)
	}
	close(ba.release)
	res := <-done
	if res.err == nil {
		tok := res.resp.TokenAuth["client_token"].(string)
		if _, err := do(t, c, tok, "read", "auth/token/lookup-self", nil, "127.0.0.1:1"); err == nil {
			t.Fatal("a login that raced the disable of its method minted a working token")
		}
		t.Fatal("a login that raced the disable of its method succeeded")
	}
}
