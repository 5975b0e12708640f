package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/openbao/openbao/api/v2"
)

// enableAuth enables an auth method of type typ at path.
func enableAuth(t *testing.T, root *api.Client, path, typ string, cfg api.AuthConfigInput) {
	t.Helper()
	if err := root.Sys().EnableAuthWithOptions(path, &api.EnableAuthOptions{Type: typ, Config: cfg}); err != nil {
		t.Fatalf("enable %s: %v", typ, err)
	}
}

// login writes to a login path without a token and returns the auth block.
func login(t *testing.T, ts *testServer, path string, data map[string]any) (*api.SecretAuth, error) {
	t.Helper()
	s, err := ts.client("").Logical().Write(path, data)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil {
		t.Fatalf("login at %s answered no auth block: %+v", path, s)
	}
	return s.Auth, nil
}

// wantLoginRefused checks a login fails with status and the method's one
// generic message.
func wantLoginRefused(t *testing.T, err error, status int, msg string) {
	t.Helper()
	if err == nil {
		t.Fatal("login succeeded")
	}
	if got := statusOf(t, err); got != status || !strings.Contains(err.Error(), msg) {
		t.Fatalf("refused login: %d %v, want %d %q", got, err, status, msg)
	}
}

const devPolicy = `
path "secret/data/dev/*" {
  capabilities = ["read"]
}
path "secret/data/users/*" {
  capabilities = ["read", "create", "update"]
  condition    = "request.path.startsWith(\"secret/data/users/\" + token.meta[\"username\"] + \"/\")"
}
`

// TestUserpassThroughTheAPI: the userpass plugin end to end with the
// OpenBao client: enable, users, login, policies and conditions on the
// minted token, renew, refusals.
func TestUserpassThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	ts, root := devServer(t, serverOpts{})
	enableAuth(t, root, "userpass", "userpass", api.AuthConfigInput{DefaultLeaseTTL: "1h", MaxLeaseTTL: "2h"})
	auths, err := root.Sys().ListAuth()
	if err != nil || auths["userpass/"] == nil || auths["userpass/"].Type != "userpass" || auths["token/"] == nil {
		t.Fatalf("sys/auth: %v %v", auths, err)
	}
	if err := root.Sys().PutPolicy("dev", devPolicy); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dev/a", "users/ada/x", "users/bob/x", "other/x"} {
		if _, err := root.KVv2("secret").Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Logical().Write("auth/userpass/users/ada", map[string]any{"password": "correct horse", "token_policies": "dev"}); err != nil {
		t.Fatal(err)
	}
	if s, err := root.Logical().Read("auth/userpass/users/ada"); err != nil || s.Data["password"] != nil || s.Data["password_hash"] != nil {
		t.Fatalf("user read: %v %v", s, err)
	}

	a, err := login(t, ts, "auth/userpass/login/ada", map[string]any{"password": "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Policies, []string{"default", "dev"}) || a.Metadata["username"] != "ada" ||
		a.LeaseDuration != 3600 || !a.Renewable || !a.Orphan {
		t.Fatalf("auth block: %+v", a)
	}

	// The minted token carries the policies and the metadata conditions use.
	ada := ts.client(a.ClientToken)
	if _, err := ada.KVv2("secret").Get(ctx, "dev/a"); err != nil {
		t.Fatalf("read dev/a: %v", err)
	}
	if _, err := ada.KVv2("secret").Get(ctx, "users/ada/x"); err != nil {
		t.Fatalf("read own path: %v", err)
	}
	if _, err := ada.KVv2("secret").Get(ctx, "users/bob/x"); statusOf(t, err) != 403 {
		t.Fatalf("read another user's path: %v", err)
	}
	self, err := ada.Auth().Token().LookupSelf()
	if err != nil || self.Data["display_name"] != "userpass-ada" || self.Data["path"] != "auth/userpass/login/ada" {
		t.Fatalf("lookup-self: %v %v", self, err)
	}

	// Wrong password and unknown user: same status, same message.
	_, err = login(t, ts, "auth/userpass/login/ada", map[string]any{"password": "wrong"})
	wantLoginRefused(t, err, 400, "invalid username or password")
	_, err = login(t, ts, "auth/userpass/login/nobody", map[string]any{"password": "correct horse"})
	wantLoginRefused(t, err, 400, "invalid username or password")

	// Renew works, then is refused when the policies change or the user goes.
	if s, err := ada.Auth().Token().RenewSelf(600); err != nil || s.Auth.LeaseDuration != 600 {
		t.Fatalf("renew: %v %v", s, err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/ada/policies", map[string]any{"token_policies": "dev,ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ada.Auth().Token().RenewSelf(0); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("renew after a policy change: %v", err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/ada/policies", map[string]any{"token_policies": "dev"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ada.Auth().Token().RenewSelf(0); err != nil {
		t.Fatalf("renew with the policies restored: %v", err)
	}
	if _, err := root.Logical().Delete("auth/userpass/users/ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := ada.Auth().Token().RenewSelf(0); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("renew after the user was deleted: %v", err)
	}

	// No auth method hands out root: refused when configured (the kernel
	// also refuses to mint it; see kernel/login_test.go).
	_, err = root.Logical().Write("auth/userpass/users/eve", map[string]any{"password": "pw", "token_policies": "root"})
	if err == nil || statusOf(t, err) != 400 || !strings.Contains(err.Error(), "root policy") {
		t.Fatalf("user with the root policy: %v", err)
	}

	// Disabling the method revokes its tokens.
	if _, err := root.Logical().Write("auth/userpass/users/bob", map[string]any{"password": "pw2", "token_policies": "dev"}); err != nil {
		t.Fatal(err)
	}
	b, err := login(t, ts, "auth/userpass/login/bob", map[string]any{"password": "pw2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().DisableAuth("userpass"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client(b.ClientToken).Auth().Token().LookupSelf(); statusOf(t, err) != 403 {
		t.Fatalf("token of a disabled method: %v", err)
	}
}

// TestAuthMountsSurviveRestart: auth mounts and their users are stored and
// come back after a restart; login tokens stay valid.
func TestAuthMountsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverOpts{dataDir: dir})
	keys, rootTok := ts.initUnseal(1, 1)
	root := ts.client(rootTok)
	enableAuth(t, root, "people", "userpass", api.AuthConfigInput{})
	if _, err := root.Logical().Write("auth/people/users/ada", map[string]any{"password": "pw"}); err != nil {
		t.Fatal(err)
	}
	a, err := login(t, ts, "auth/people/login/ada", map[string]any{"password": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()

	ts = startServer(t, serverOpts{dataDir: dir})
	if _, err := ts.client("").Sys().Unseal(keys[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client(a.ClientToken).Auth().Token().RenewSelf(0); err != nil {
		t.Fatalf("renew after restart: %v", err)
	}
	if _, err := login(t, ts, "auth/people/login/ada", map[string]any{"password": "pw"}); err != nil {
		t.Fatalf("login after restart: %v", err)
	}
}

// TestAppRoleThroughTheAPI: role, role ID, secret IDs, login, refusals,
// use limits and renewal through the OpenBao client.
func TestAppRoleThroughTheAPI(t *testing.T) {
	ts, root := devServer(t, serverOpts{})
	enableAuth(t, root, "approle", "approle", api.AuthConfigInput{})
	if err := root.Sys().PutPolicy("dev", devPolicy); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/ci", map[string]any{
		"token_policies": "dev", "token_ttl": "20m", "token_max_ttl": "1h", "secret_id_num_uses": 2,
	}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/ci/role-id")
	if err != nil {
		t.Fatal(err)
	}
	roleID := rid.Data["role_id"].(string)
	sid, err := root.Logical().Write("auth/approle/role/ci/secret-id", map[string]any{"metadata": `{"team":"infra"}`})
	if err != nil {
		t.Fatal(err)
	}
	secretID := sid.Data["secret_id"].(string)
	if roleID == "" || secretID == "" || sid.Data["secret_id_accessor"] == "" {
		t.Fatalf("role-id %v secret-id %v", rid.Data, sid.Data)
	}
	acc, err := root.Logical().List("auth/approle/role/ci/secret-id")
	if err != nil || acc == nil || len(acc.Data["keys"].([]any)) != 1 {
		t.Fatalf("secret ID accessors: %v %v", acc, err)
	}

	a, err := login(t, ts, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Policies, []string{"default", "dev"}) || a.Metadata["role_name"] != "ci" ||
		a.Metadata["team"] != "infra" || a.LeaseDuration != 1200 {
		t.Fatalf("auth block: %+v", a)
	}
	ci := ts.client(a.ClientToken)
	if _, err := root.KVv2("secret").Put(context.Background(), "dev/a", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.KVv2("secret").Get(context.Background(), "dev/a"); err != nil {
		t.Fatalf("read allowed by the role's policy: %v", err)
	}
	if _, err := ci.KVv2("secret").Get(context.Background(), "other/a"); statusOf(t, err) != 403 {
		t.Fatalf("read outside the policy: %v", err)
	}

	// Wrong secret ID, wrong role ID: one status, one message.
	_, err = login(t, ts, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": "not-it"})
	wantLoginRefused(t, err, 400, "invalid role ID or secret ID")
	_, err = login(t, ts, "auth/approle/login", map[string]any{"role_id": "not-it", "secret_id": secretID})
	wantLoginRefused(t, err, 400, "invalid role ID or secret ID")

	// Two uses: the second login spends the secret ID, a third is refused.
	if _, err := login(t, ts, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID}); err != nil {
		t.Fatal(err)
	}
	_, err = login(t, ts, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	wantLoginRefused(t, err, 400, "invalid role ID or secret ID")

	// Renewal is capped by token_max_ttl and refused once the role is gone.
	if s, err := ci.Auth().Token().RenewSelf(7200); err != nil || s.Auth.LeaseDuration > 3600 {
		t.Fatalf("renew: %v %v", s, err)
	}
	if _, err := root.Logical().Delete("auth/approle/role/ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Auth().Token().RenewSelf(0); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("renew after the role was deleted: %v", err)
	}
}

// jwtSign signs claims with key as a compact JWT with kid.
func jwtSign(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestJWTThroughTheAPI: JWT login with an RS256 and an ES256 key from a
// JWKS the test serves; expired tokens and wrong audiences are refused.
func TestJWTThroughTheAPI(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: rsaKey.Public(), KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
			{Key: ecKey.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		}})
	}))
	defer jwks.Close()

	ts, root := devServer(t, serverOpts{})
	enableAuth(t, root, "jwt", "jwt", api.AuthConfigInput{})
	if _, err := root.Logical().Write("auth/jwt/config", map[string]any{
		"jwks_url": jwks.URL, "bound_issuer": "https://issuer.example",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/jwt/role/deploy", map[string]any{
		"role_type": "jwt", "bound_audiences": "ward", "user_claim": "sub", "token_policies": "dev", "token_ttl": "15m",
		"claim_mappings": map[string]any{"env": "environment"},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(over map[string]any) map[string]any {
		c := map[string]any{"iss": "https://issuer.example", "sub": "ci-runner", "aud": "ward", "env": "prod",
			"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		for k, v := range over {
			c[k] = v
		}
		return c
	}

	for _, k := range []struct {
		name string
		key  crypto.Signer
		alg  jose.SignatureAlgorithm
		kid  string
	}{{"RS256", rsaKey, jose.RS256, "rsa-1"}, {"ES256", ecKey, jose.ES256, "ec-1"}} {
		a, err := login(t, ts, "auth/jwt/login", map[string]any{"role": "deploy", "jwt": jwtSign(t, k.key, k.alg, k.kid, claims(nil))})
		if err != nil {
			t.Fatalf("%s login: %v", k.name, err)
		}
		if !slices.Equal(a.Policies, []string{"default", "dev"}) || a.Metadata["environment"] != "prod" ||
			a.Metadata["role"] != "deploy" || a.LeaseDuration != 900 {
			t.Fatalf("%s auth block: %+v", k.name, a)
		}
		self, err := ts.client(a.ClientToken).Auth().Token().LookupSelf()
		if err != nil || self.Data["display_name"] != "jwt-ci-runner" {
			t.Fatalf("%s lookup-self: %v %v", k.name, self, err)
		}
	}

	for name, jwt := range map[string]string{
		"expired":        jwtSign(t, rsaKey, jose.RS256, "rsa-1", claims(map[string]any{"exp": now.Add(-10 * time.Minute).Unix(), "iat": now.Add(-20 * time.Minute).Unix(), "nbf": now.Add(-20 * time.Minute).Unix()})),
		"wrong audience": jwtSign(t, ecKey, jose.ES256, "ec-1", claims(map[string]any{"aud": "someone-else"})),
		"wrong issuer":   jwtSign(t, rsaKey, jose.RS256, "rsa-1", claims(map[string]any{"iss": "https://evil.example"})),
		"wrong key":      jwtSign(t, ecKey, jose.ES256, "rsa-1", claims(nil)),
	} {
		_, err := login(t, ts, "auth/jwt/login", map[string]any{"role": "deploy", "jwt": jwt})
		if err == nil {
			t.Fatalf("%s: login succeeded", name)
		}
		if got := statusOf(t, err); got != 400 || !strings.Contains(err.Error(), "invalid JWT or role") {
			t.Fatalf("%s: %d %v", name, got, err)
		}
	}

	// Renewal is refused once the role is deleted.
	a, err := login(t, ts, "auth/jwt/login", map[string]any{"role": "deploy", "jwt": jwtSign(t, rsaKey, jose.RS256, "rsa-1", claims(nil))})
	if err != nil {
		t.Fatal(err)
	}
	c := ts.client(a.ClientToken)
	if _, err := c.Auth().Token().RenewSelf(0); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if _, err := root.Logical().Delete("auth/jwt/role/deploy"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Auth().Token().RenewSelf(0); err == nil || statusOf(t, err) != 400 {
		t.Fatalf("renew after the role was deleted: %v", err)
	}
}
