package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openbao/openbao/api/v2"

	"github.com/wardproject/ward/kernel/config"
)

// wrapFor returns a client that asks for wrapping (ttl) on requests to
// path, as clients do with SetWrappingLookupFunc.
func wrapFor(ts *testServer, token, path, ttl string) *api.Client {
	c := ts.client(token)
	c.SetWrappingLookupFunc(func(op, p string) string {
		if p == path {
			return ttl
		}
		return ""
	})
	return c
}

// wantWrapped checks a reply is wrapped and carries nothing else.
func wantWrapped(t *testing.T, s *api.Secret, err error, ttl int, path string) *api.SecretWrapInfo {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" || s.WrapInfo.Accessor == "" {
		t.Fatalf("reply not wrapped: %+v", s)
	}
	if s.Data != nil || s.Auth != nil || s.LeaseID != "" {
		t.Fatalf("a wrapped reply carries its content: %+v", s)
	}
	w := s.WrapInfo
	if w.TTL != ttl || w.CreationPath != path || w.CreationTime.IsZero() || time.Since(w.CreationTime) > time.Minute {
		t.Fatalf("wrap_info: ttl %d path %q created %v", w.TTL, w.CreationPath, w.CreationTime)
	}
	return w
}

func wantInvalidWrappingToken(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("a used, expired or unknown wrapping token worked")
	}
	if statusOf(t, err) != 400 || !strings.Contains(err.Error(), "wrapping token is not valid or does not exist") {
		t.Fatalf("invalid wrapping token: %v", err)
	}
}

// TestResponseWrappingThroughTheAPI: the acceptance (wrap a KV
// read, unwrap once, unwrap twice fails, an expired wrap fails), wrapped
// logins and AppRole secret IDs, lookup, rewrap, sys/wrapping/wrap, with
// the OpenBao client's own helpers; and neither the wrapped values nor the
// wrapping tokens appear raw in the audit log.
func TestResponseWrappingThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "audit.log")
	ts, root := devServer(t, serverOpts{audits: []config.Audit{fileAudit(logPath)}})
	const kvSecret, password = "kv-wrapped-5e0c2f9a", "pw-wrapped-93b1d7e4"
	if _, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"password": kvSecret}); err != nil {
		t.Fatal(err)
	}
	var wrappingTokens []string
	keep := func(w *api.SecretWrapInfo) *api.SecretWrapInfo {
		wrappingTokens = append(wrappingTokens, w.Token)
		return w
	}

	// Wrap a KV read; the answer has only wrap_info.
	s, err := wrapFor(ts, "root", "secret/data/app/db", "5m").Logical().Read("secret/data/app/db")
	w := keep(wantWrapped(t, s, err, 300, "secret/data/app/db"))

	// Lookup: no other token needed, the wrapping token is not used up.
	for range 2 {
		l, err := ts.client("").Logical().Write("sys/wrapping/lookup", map[string]any{"token": w.Token})
		if err != nil || l.Data["creation_path"] != "secret/data/app/db" || jsonInt(l.Data["creation_ttl"]) != 300 || l.Data["creation_time"] == nil {
			t.Fatalf("lookup: %+v %v", l, err)
		}
	}
	// The wrapping token opens nothing else.
	if _, err := ts.client(w.Token).KVv2("secret").Get(ctx, "app/db"); statusOf(t, err) != 403 {
		t.Fatalf("KV read with a wrapping token: %v", err)
	}

	// Unwrap once (the client's helper, the token as X-Vault-Token).
	u, err := ts.client("").Logical().Unwrap(w.Token)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := u.Data["data"].(map[string]any)
	if data["password"] != kvSecret || u.Data["metadata"] == nil || u.RequestID == "" {
		t.Fatalf("unwrapped KV read: %+v", u)
	}
	// Twice: refused, as the token's holder and as a third party.
	_, err = ts.client("").Logical().Unwrap(w.Token)
	wantInvalidWrappingToken(t, err)
	_, err = root.Logical().Unwrap(w.Token)
	wantInvalidWrappingToken(t, err)
	_, err = ts.client("").Logical().Write("sys/wrapping/lookup", map[string]any{"token": w.Token})
	wantInvalidWrappingToken(t, err)

	// An expired wrap fails the same way.
	s, err = wrapFor(ts, "root", "secret/data/app/db", "1s").Logical().Read("secret/data/app/db")
	short := keep(wantWrapped(t, s, err, 1, "secret/data/app/db"))
	time.Sleep(1100 * time.Millisecond)
	_, err = root.Logical().Unwrap(short.Token)
	wantInvalidWrappingToken(t, err)

	// A bad wrap TTL is a 400.
	for _, bad := range []string{"soon", "-1", "10ms"} {
		_, err := wrapFor(ts, "root", "secret/data/app/db", bad).Logical().Read("secret/data/app/db")
		if statusOf(t, err) != 400 {
			t.Fatalf("wrap TTL %q: %v", bad, err)
		}
	}

	// A wrapped login: unwrapping gives the login's auth block.
	enableAuth(t, root, "userpass", "userpass", api.AuthConfigInput{})
	if _, err := root.Logical().Write("auth/userpass/users/ada", map[string]any{"password": password}); err != nil {
		t.Fatal(err)
	}
	s, err = wrapFor(ts, "", "auth/userpass/login/ada", "2m").Logical().Write("auth/userpass/login/ada", map[string]any{"password": password})
	w = keep(wantWrapped(t, s, err, 120, "auth/userpass/login/ada"))
	if w.WrappedAccessor == "" {
		t.Fatal("a wrapped login must name the token's accessor")
	}
	u, err = ts.client("").Logical().Unwrap(w.Token)
	if err != nil {
		t.Fatal(err)
	}
	if u.Auth == nil || u.Auth.ClientToken == "" || u.Auth.Accessor != w.WrappedAccessor || u.Auth.Metadata["username"] != "ada" ||
		!slices.Equal(u.Auth.Policies, []string{"default"}) || !u.Auth.Orphan || u.Auth.LeaseDuration <= 0 {
		t.Fatalf("unwrapped login: %+v", u.Auth)
	}
	ada := ts.client(u.Auth.ClientToken)
	if self, err := ada.Auth().Token().LookupSelf(); err != nil || self.Data["display_name"] != "userpass-ada" {
		t.Fatalf("the unwrapped login token: %v %v", self, err)
	}

	// AppRole: a wrapped secret ID (what Vault users hand to a workload).
	enableAuth(t, root, "approle", "approle", api.AuthConfigInput{})
	if _, err := root.Logical().Write("auth/approle/role/ci", map[string]any{"token_policies": "default"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/ci/role-id")
	if err != nil {
		t.Fatal(err)
	}
	s, err = wrapFor(ts, "root", "auth/approle/role/ci/secret-id", "60s").Logical().Write("auth/approle/role/ci/secret-id", nil)
	w = keep(wantWrapped(t, s, err, 60, "auth/approle/role/ci/secret-id"))
	u, err = root.Logical().Unwrap(w.Token) // a third party unwraps
	if err != nil {
		t.Fatal(err)
	}
	if u.Data["secret_id"] == nil || u.Data["secret_id_accessor"] != w.WrappedAccessor {
		t.Fatalf("unwrapped secret ID: %+v (wrapped accessor %q)", u.Data, w.WrappedAccessor)
	}
	if _, err := login(t, ts, "auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": u.Data["secret_id"]}); err != nil {
		t.Fatalf("login with the unwrapped secret ID: %v", err)
	}

	// sys/wrapping/wrap: the client wraps it by default (5m).
	s, err = root.Logical().Write("sys/wrapping/wrap", map[string]any{"api_key": kvSecret, "n": 7})
	w = keep(wantWrapped(t, s, err, 300, "sys/wrapping/wrap"))
	// Rewrap: a new token for the same response, the old one revoked.
	s, err = root.Logical().Write("sys/wrapping/rewrap", map[string]any{"token": w.Token})
	nw := keep(wantWrapped(t, s, err, 300, "sys/wrapping/wrap"))
	if nw.Token == w.Token {
		t.Fatal("rewrap returned the same token")
	}
	_, err = root.Logical().Unwrap(w.Token)
	wantInvalidWrappingToken(t, err)
	u, err = ada.Logical().Unwrap(nw.Token) // default policy may unwrap
	if err != nil || u.Data["api_key"] != kvSecret || jsonInt(u.Data["n"]) != 7 {
		t.Fatalf("unwrap after rewrap: %+v %v", u, err)
	}
	// sys/wrapping/wrap without a wrap TTL is refused.
	plain := ts.client("root")
	plain.SetWrappingLookupFunc(func(string, string) string { return "" })
	if _, err := plain.Logical().Write("sys/wrapping/wrap", map[string]any{"a": "b"}); statusOf(t, err) != 400 {
		t.Fatalf("wrap without a TTL: %v", err)
	}

	// Nothing raw in the audit log: not the wrapped values, not the
	// wrapping tokens; the wrapped responses' entries carry wrap_info.
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"KV value": kvSecret, "password": password, "login token": ada.Token()}
	for i, tok := range wrappingTokens {
		secrets["wrapping token "+string(rune('a'+i))] = tok
	}
	for name, v := range secrets {
		if v != "" && bytes.Contains(raw, []byte(v)) {
			t.Errorf("the %s appears raw in the audit log", name)
		}
	}
	var wrapEntries int
	for _, e := range auditLines(t, logPath) {
		resp, _ := e["response"].(map[string]any)
		if wi, ok := resp["wrap_info"].(map[string]any); ok {
			wrapEntries++
			if tok, _ := wi["token"].(string); !strings.HasPrefix(tok, "hmac-sha256:") || wi["creation_path"] == "" {
				t.Errorf("audited wrap_info: %v", wi)
			}
			if resp["data"] != nil {
				t.Errorf("a wrapped response's entry holds its data: %v", resp)
			}
		}
	}
	if wrapEntries < len(wrappingTokens) {
		t.Errorf("%d audited wrapped responses, want at least %d", wrapEntries, len(wrappingTokens))
	}
	// The HMAC of a wrapping token is in the log, to trace its use.
	h, err := root.Logical().Write("sys/audit-hash/main", map[string]any{"input": wrappingTokens[0]})
	if err != nil {
		t.Fatal(err)
	}
	if hv, _ := h.Data["hash"].(string); hv == "" || !bytes.Contains(raw, []byte(hv)) {
		t.Fatalf("the wrapping token's HMAC is not in the log")
	}
}

// jsonInt reads a JSON number the client decoded.
func jsonInt(v any) int64 {
	switch n := v.(type) {
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	}
	return -1
}

// TestCubbyholeThroughTheAPI: each token sees only its own cubbyhole, and
// a token's cubbyhole is deleted when the token is revoked.
func TestCubbyholeThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	ts, root := devServer(t, serverOpts{})
	mounts, err := root.Sys().ListMounts()
	if err != nil || mounts["cubbyhole/"] == nil || mounts["cubbyhole/"].Type != "cubbyhole" || !mounts["cubbyhole/"].Local {
		t.Fatalf("sys/mounts: %v %v", mounts["cubbyhole/"], err)
	}
	if err := root.Sys().Unmount("cubbyhole"); statusOf(t, err) != 400 {
		t.Fatalf("unmount cubbyhole: %v", err)
	}
	mk := func() *api.Client {
		a, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
		if err != nil {
			t.Fatal(err)
		}
		return ts.client(a.Auth.ClientToken)
	}
	alice, bob := mk(), mk()

	// The token's hashed IDs are the folders of the cubbyhole's storage.
	folders := func() []string {
		keys, err := ts.srv.store.List(ctx, "data/logical/cubbyhole/")
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	before := folders()
	for c, v := range map[*api.Client]string{alice: "alice's", bob: "bob's"} {
		if _, err := c.Logical().Write("cubbyhole/app/db", map[string]any{"password": v, "port": 5432}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Logical().Write("cubbyhole/only-alice", map[string]any{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	for c, v := range map[*api.Client]string{alice: "alice's", bob: "bob's"} {
		s, err := c.Logical().Read("cubbyhole/app/db")
		if err != nil || s.Data["password"] != v || jsonInt(s.Data["port"]) != 5432 {
			t.Fatalf("own cubbyhole: %+v %v", s, err)
		}
	}
	if s, err := bob.Logical().Read("cubbyhole/only-alice"); s != nil || err != nil {
		t.Fatalf("bob reads alice's cubbyhole: %+v %v", s, err)
	}
	if s, err := root.Logical().Read("cubbyhole/app/db"); s != nil || err != nil {
		t.Fatalf("root reads another token's cubbyhole: %+v %v", s, err)
	}
	l, err := alice.Logical().List("cubbyhole/")
	if err != nil || len(l.Data["keys"].([]any)) != 2 {
		t.Fatalf("alice's list: %+v %v", l, err)
	}
	l, err = bob.Logical().List("cubbyhole/")
	if err != nil || len(l.Data["keys"].([]any)) != 1 {
		t.Fatalf("bob's list: %+v %v", l, err)
	}
	after := folders()
	if len(after) != len(before)+2 {
		t.Fatalf("cubbyhole folders %d, then %d", len(before), len(after))
	}
	for _, f := range after {
		for _, tok := range []string{alice.Token(), bob.Token()} {
			if strings.Contains(f, strings.TrimPrefix(tok, "s.")) {
				t.Fatal("a token appears in the cubbyhole's storage keys")
			}
		}
	}

	// Revoking alice deletes her cubbyhole, not bob's.
	if err := root.Auth().Token().RevokeTree(alice.Token()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Logical().Read("cubbyhole/app/db"); statusOf(t, err) != 403 {
		t.Fatalf("revoked token: %v", err)
	}
	if got := folders(); len(got) != len(before)+1 {
		t.Fatalf("cubbyhole folders after revoking alice: %d, want %d", len(got), len(before)+1)
	}
	if s, err := bob.Logical().Read("cubbyhole/app/db"); err != nil || s.Data["password"] != "bob's" {
		t.Fatalf("bob's cubbyhole after alice's revocation: %+v %v", s, err)
	}
}

// TestWrappingCLIAgainstServer: read/write/list -wrap-ttl (and
// VAULT_WRAP_TTL), -field=wrapping_token, and ward unwrap with a token
// argument or the token in use.
func TestWrappingCLIAgainstServer(t *testing.T) {
	ts, root := devServer(t, serverOpts{})
	isolateEnv(t)
	t.Setenv("VAULT_ADDR", ts.addr)
	t.Setenv("VAULT_TOKEN", "root")
	if _, err := root.KVv2("secret").Put(context.Background(), "app/db", map[string]any{"password": "cli-s3cret"}); err != nil {
		t.Fatal(err)
	}

	r := ward(t, "", "read", "-wrap-ttl=5m", "secret/data/app/db").wantCode(t, 0)
	rows := parseKeyValueTable(t, r.stdout)
	tok := rows["wrapping_token"]
	if tok == "" || rows["wrapping_token_ttl"] != "5m" || rows["wrapping_token_creation_path"] != "secret/data/app/db" ||
		strings.Contains(r.stdout, "cli-s3cret") {
		t.Fatalf("wrapped read:\n%s", r.stdout)
	}
	r = ward(t, "", "unwrap", "-format=json", tok).wantCode(t, 0)
	if !strings.Contains(r.stdout, `"password": "cli-s3cret"`) {
		t.Fatalf("unwrap:\n%s", r.stdout)
	}
	r = ward(t, "", "unwrap", tok).wantCode(t, exitRemote)
	if !strings.Contains(r.stderr, "wrapping token is not valid or does not exist") {
		t.Fatalf("second unwrap: %q", r.stderr)
	}

	// VAULT_WRAP_TTL, -field, and unwrap with the wrapping token in use.
	t.Setenv("VAULT_WRAP_TTL", "90")
	tok = ward(t, "", "write", "-field=wrapping_token", "sys/wrapping/wrap", "k=v").wantCode(t, 0).stdout
	t.Setenv("VAULT_WRAP_TTL", "")
	if !strings.HasPrefix(tok, "s.") {
		t.Fatalf("write -field=wrapping_token: %q", tok)
	}
	t.Setenv("VAULT_TOKEN", tok)
	if r := ward(t, "", "unwrap", "-field=k").wantCode(t, 0); r.stdout != "v" {
		t.Fatalf("unwrap -field=k: %q", r.stdout)
	}
	t.Setenv("VAULT_TOKEN", "root")

	// A wrapped list; a bad TTL is refused before anything is sent.
	r = ward(t, "", "list", "-wrap-ttl=1m", "secret/metadata/").wantCode(t, 0)
	if rows := parseKeyValueTable(t, r.stdout); rows["wrapping_token"] == "" {
		t.Fatalf("wrapped list:\n%s", r.stdout)
	}
	r = ward(t, "", "read", "-wrap-ttl=10ms", "secret/data/app/db").wantCode(t, exitLocal)
	if !strings.Contains(r.stderr, "wrap TTL") {
		t.Fatalf("bad wrap TTL: %q", r.stderr)
	}
	if r := ward(t, "", "read", "-h").wantCode(t, 0); !strings.Contains(r.stdout, "-wrap-ttl") {
		t.Fatalf("read -h lacks -wrap-ttl:\n%s", r.stdout)
	}
}
