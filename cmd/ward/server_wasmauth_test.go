package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"
)

// startWasmAuthServer is a dev server whose -dev-plugin-dir holds the
// userpass WASM module, registered as `make run` registers bin/plugins:
// under its file name, userpass-wasm, beside the builtin userpass.
func startWasmAuthServer(t *testing.T) (*testServer, *api.Client) {
	t.Helper()
	pluginDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(pluginDir, "userpass-wasm.wasm"), wasmGuest(t, "userpass-wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, serverOpts{pluginDir: pluginDir, wasmCache: wasmGuests.cache})
	if _, err := devSetup(context.Background(), ts.srv.core, "root", pluginDir); err != nil {
		t.Fatal(err)
	}
	return ts, ts.client("root")
}

// TestWasmUserpassThroughTheAPI: the userpass auth method built as a WASM
// module, registered from a dev plugin directory, serves the OpenBao
// client's login next to the builtin (go-plugin) userpass, and its tokens
// work, renew and carry what the policies need.
func TestWasmUserpassThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	ts, root := startWasmAuthServer(t)

	entry, err := root.Logical().Read("sys/plugins/catalog/auth/userpass-wasm")
	if err != nil || entry == nil || entry.Data["runtime"] != "wasm" {
		t.Fatalf("catalog entry of userpass-wasm: %v %v", entry, err)
	}
	// The module is registered under its own name: the builtin stays.
	if b, err := root.Logical().Read("sys/plugins/catalog/auth/userpass"); err != nil || b == nil || b.Data["runtime"] == "wasm" {
		t.Fatalf("catalog entry of the builtin userpass: %v %v", b, err)
	}
	enableAuth(t, root, "upw", "userpass-wasm", api.AuthConfigInput{DefaultLeaseTTL: "1h", MaxLeaseTTL: "2h"})
	enableAuth(t, root, "userpass", "userpass", api.AuthConfigInput{DefaultLeaseTTL: "1h", MaxLeaseTTL: "2h"})
	if err := root.Sys().PutPolicy("dev", devPolicy); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dev/a", "users/ada/x", "users/bob/x"} {
		if _, err := root.KVv2("secret").Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"upw", "userpass"} {
		if _, err := root.Logical().Write("auth/"+m+"/users/ada", map[string]any{"password": "correct horse", "token_policies": "dev"}); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := root.Logical().Read("auth/upw/users/ada"); err != nil || s.Data["password"] != nil || s.Data["password_hash"] != nil {
		t.Fatalf("user read: %v %v", s, err)
	}

	start := time.Now()
	a, err := login(t, ts, "auth/upw/login/ada", map[string]any{"password": "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first WASM login: %s", time.Since(start))
	if !slices.Equal(a.Policies, []string{"default", "dev"}) || a.Metadata["username"] != "ada" ||
		a.LeaseDuration != 3600 || !a.Renewable {
		t.Fatalf("auth block: %+v", a)
	}

	ada := ts.client(a.ClientToken)
	if s, err := ada.KVv2("secret").Get(ctx, "dev/a"); err != nil || s.Data["v"] != "dev/a" {
		t.Fatalf("read dev/a with the WASM login's token: %v %v", s, err)
	}
	if _, err := ada.KVv2("secret").Get(ctx, "users/ada/x"); err != nil {
		t.Fatalf("read own path (token.meta from the WASM login): %v", err)
	}
	if _, err := ada.KVv2("secret").Get(ctx, "users/bob/x"); statusOf(t, err) != 403 {
		t.Fatalf("read another user's path: %v", err)
	}
	self, err := ada.Auth().Token().LookupSelf()
	if err != nil || self.Data["display_name"] != "upw-ada" || self.Data["path"] != "auth/upw/login/ada" {
		t.Fatalf("lookup-self: %v %v", self, err)
	}

	_, err = login(t, ts, "auth/upw/login/ada", map[string]any{"password": "wrong"})
	wantLoginRefused(t, err, 400, "invalid username or password")
	_, err = login(t, ts, "auth/upw/login/nobody", map[string]any{"password": "correct horse"})
	wantLoginRefused(t, err, 400, "invalid username or password")

	// Renewal goes through the module too: refused once the policies change.
	if s, err := ada.Auth().Token().RenewSelf(600); err != nil || s.Auth.LeaseDuration != 600 {
		t.Fatalf("renew: %v %v", s, err)
	}
	if _, err := root.Logical().Write("auth/upw/users/ada/policies", map[string]any{"token_policies": "dev,ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ada.Auth().Token().RenewSelf(0); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("renew after a policy change: %v", err)
	}

	// The builtin beside it is untouched, and the two mounts share nothing.
	if _, err := login(t, ts, "auth/userpass/login/ada", map[string]any{"password": "correct horse"}); err != nil {
		t.Fatalf("builtin userpass login: %v", err)
	}
	if _, err := root.Logical().Write("auth/upw/users/eve", map[string]any{"password": "pw"}); err != nil {
		t.Fatal(err)
	}
	_, err = login(t, ts, "auth/userpass/login/eve", map[string]any{"password": "pw"})
	wantLoginRefused(t, err, 400, "invalid username or password")
}

// TestUserpassLoginBench measures logins over HTTP against the builtin
// userpass (go-plugin) and the WASM module, both at bcrypt's default cost:
// one client, then 8 at once. A benchmark that needs a server, so a test
// run only on request, and without -race (bcrypt in the race-built
// builtin is several times slower than in a release build):
//
//	WARD_BENCH_LOGIN=1 go test -count=1 -run UserpassLoginBench -v ./cmd/ward/
func TestUserpassLoginBench(t *testing.T) {
	if os.Getenv("WARD_BENCH_LOGIN") == "" {
		t.Skip("set WARD_BENCH_LOGIN=1 to measure logins")
	}
	ts, root := startWasmAuthServer(t)
	for _, c := range []struct{ path, typ string }{{"userpass", "userpass"}, {"upw", "userpass-wasm"}} {
		// The WASM default of 5s per call includes queueing: 8 clients
		// behind one write (a login is an update) would exceed it.
		enableAuth(t, root, c.path, c.typ, api.AuthConfigInput{})
		if _, err := root.Logical().Write("auth/"+c.path+"/users/ada", map[string]any{"password": "correct horse"}); err != nil {
			t.Fatal(err)
		}
		loginOnce := func() {
			if _, err := ts.client("").Logical().Write("auth/"+c.path+"/login/ada", map[string]any{"password": "correct horse"}); err != nil {
				t.Error(err)
			}
		}
		for range 2 { // warm up: instances, dummy hashes
			loginOnce()
		}
		const n = 10
		start := time.Now()
		for range n {
			loginOnce()
		}
		one := time.Since(start) / n
		const clients, per = 8, 5
		var done atomic.Int64
		start = time.Now()
		ch := make(chan struct{})
		for range clients {
			go func() {
				defer func() { ch <- struct{}{} }()
				for range per {
					loginOnce()
					done.Add(1)
				}
			}()
		}
		for range clients {
			<-ch
		}
		el := time.Since(start)
		t.Logf("%s (%s): 1 client %v/login; %d clients %.1f logins/s (%v/login), GOMAXPROCS %d",
			c.typ, c.path, one.Round(time.Millisecond), clients, float64(done.Load())/el.Seconds(),
			(el / time.Duration(done.Load())).Round(time.Millisecond), runtime.GOMAXPROCS(0))
	}
}
