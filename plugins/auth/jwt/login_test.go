package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardproject/ward/sdk/logical"
)

func TestLoginRS256AndES256ViaJWKS(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "r1", "RS256"), pubJWK(ecKey, "e1", "ES256"))
	e.configureJWKS(srv, map[string]any{"bound_issuer": "https://issuer.example"})
	e.role("dev", map[string]any{"token_max_ttl": "2h", "token_num_uses": 3, "token_period": "0"})

	for _, tc := range []struct {
		key any
		alg jose.SignatureAlgorithm
		kid string
	}{{rsaKey, jose.RS256, "r1"}, {ecKey, jose.ES256, "e1"}} {
		t.Run(string(tc.alg), func(t *testing.T) {
			a := e.login("dev", sign(t, tc.key, tc.alg, tc.kid, e.claims(nil)))
			want := &logical.Auth{
				DisplayName:  "alice",
				Policies:     []string{"dev", "ops"},
				Metadata:     map[string]string{"role": "dev"},
				TTL:          time.Hour,
				MaxTTL:       2 * time.Hour,
				Renewable:    true,
				NumUses:      3,
				Alias:        &logical.Alias{Name: "alice", Metadata: map[string]string{}},
				InternalData: map[string]any{"role": "dev"},
			}
			if !reflect.DeepEqual(a, want) {
				t.Fatalf("auth:\n got %#v\nwant %#v", a, want)
			}
		})
	}
}

func TestLoginPEMKeys(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, rsaKey.Public(), ecKey.Public(), edKey.Public())
	e.role("r", nil)
	// PEM keys ignore kid: each configured key is tried.
	e.login("r", sign(t, rsaKey, jose.PS256, "", e.claims(nil)))
	e.login("r", sign(t, rsaKey, jose.RS512, "whatever", e.claims(nil)))
	e.login("r", sign(t, ecKey, jose.ES256, "", e.claims(nil)))
	e.login("r", sign(t, edKey, jose.EdDSA, "", e.claims(nil)))
	e.refused("r", sign(t, rsaKey2, jose.RS256, "", e.claims(nil)))
	e.refused("r", sign(t, ecKey2, jose.ES256, "", e.claims(nil)))

	// A certificate works as a key too.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(time.Hour)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, rsaKey2.Public(), rsaKey2)
	if err != nil {
		t.Fatal(err)
	}
	e.ok(logical.UpdateOperation, "config", map[string]any{"jwt_validation_pubkeys": []any{pemCert(der)}})
	e.login("r", sign(t, rsaKey2, jose.RS256, "", e.claims(nil)))
}

func TestLoginTimeClaims(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, ecKey.Public())
	e.role("r", nil)
	now := e.clock.Now()
	tok := func(extra map[string]any) string { return sign(t, ecKey, jose.ES256, "", e.claims(extra)) }

	// exp is required.
	e.refused("r", tok(map[string]any{"exp": nil}))
	// Expired beyond the default 60s skew; within it is fine.
	e.refused("r", tok(map[string]any{"exp": now.Add(-61 * time.Second).Unix()}))
	e.login("r", tok(map[string]any{"exp": now.Add(-59 * time.Second).Unix()}))
	// nbf and iat in the future beyond the skew.
	e.refused("r", tok(map[string]any{"nbf": now.Add(61 * time.Second).Unix()}))
	e.login("r", tok(map[string]any{"nbf": now.Add(59 * time.Second).Unix(), "iat": nil}))
	e.refused("r", tok(map[string]any{"iat": now.Add(61 * time.Second).Unix(), "nbf": nil}))
	// Fractional NumericDates are accepted.
	e.login("r", tok(map[string]any{"exp": json.Number(fmt.Sprintf("%d.5", now.Add(time.Minute).Unix()))}))
	// Claims of the wrong type refuse.
	e.refused("r", tok(map[string]any{"exp": "tomorrow"}))

	// Skew disabled: a token one second past exp refuses.
	e.role("strict", map[string]any{"clock_skew_leeway": -1})
	e.refused("strict", tok(map[string]any{"exp": now.Add(-time.Second).Unix()}))
	e.login("strict", tok(map[string]any{"exp": now.Add(time.Second).Unix()}))
	e.refused("strict", tok(map[string]any{"nbf": now.Add(time.Second).Unix()}))

	// expiration_leeway and not_before_leeway add to the skew.
	e.role("lax", map[string]any{"expiration_leeway": 300, "not_before_leeway": 120})
	e.login("lax", tok(map[string]any{"exp": now.Add(-350 * time.Second).Unix()}))
	e.refused("lax", tok(map[string]any{"exp": now.Add(-361 * time.Second).Unix()}))
	e.login("lax", tok(map[string]any{"nbf": now.Add(170 * time.Second).Unix(), "iat": nil}))
	e.refused("lax", tok(map[string]any{"nbf": now.Add(181 * time.Second).Unix(), "iat": nil}))
	// The clock moving past exp + leeway expires a token that was fine.
	t1 := tok(nil)
	e.login("r", t1)
	e.clock.Advance(time.Hour + 61*time.Second)
	e.refused("r", t1)
}

func TestLoginAudienceIssuerSubject(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(map[string]any{"bound_issuer": "https://issuer.example"}, rsaKey.Public())
	e.role("r", map[string]any{"bound_audiences": "ward,other", "bound_subject": "alice"})
	tok := func(extra map[string]any) string { return sign(t, rsaKey, jose.RS256, "", e.claims(extra)) }

	e.login("r", tok(map[string]any{"aud": "other"}))
	e.login("r", tok(map[string]any{"aud": []string{"x", "ward"}}))
	e.refused("r", tok(map[string]any{"aud": "wrong"}))
	e.refused("r", tok(map[string]any{"aud": nil}))
	e.refused("r", tok(map[string]any{"iss": "https://evil.example"}))
	e.refused("r", tok(map[string]any{"iss": nil}))
	e.refused("r", tok(map[string]any{"sub": "mallory"}))

	// A role without bound audiences refuses any token that has an aud.
	e.role("noaud", map[string]any{"bound_audiences": "", "bound_subject": "alice"})
	e.refused("noaud", tok(nil))
	e.login("noaud", tok(map[string]any{"aud": nil}))
}

func TestLoginRefusesBadSignaturesAndAlgorithms(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "r1", ""), pubJWK(rsaKey, "r2", "RS256"), pubJWK(ecKey, "e1", "ES256"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	claims := e.claims(nil)

	// Signed by another key under a known kid.
	e.refused("r", sign(t, rsaKey2, jose.RS256, "r1", claims))
	// A valid token with one byte of its signature changed.
	good := sign(t, rsaKey, jose.RS256, "r1", claims)
	e.login("r", good)
	e.refused("r", good[:len(good)-2]+flip(good[len(good)-2]))
	// Payload swapped under a valid signature.
	parts := strings.Split(good, ".")
	other := strings.Split(sign(t, rsaKey, jose.RS256, "r1", e.claims(map[string]any{"sub": "root"})), ".")
	e.refused("r", parts[0]+"."+other[1]+"."+parts[2])
	// A key's own alg, when it has one, must be the token's.
	e.refused("r", sign(t, rsaKey, jose.PS256, "r2", claims))
	e.login("r", sign(t, rsaKey, jose.PS256, "r1", claims))
	e.login("r", sign(t, rsaKey, jose.RS256, "r2", claims))
	// A key of the wrong type for the alg.
	e.refused("r", sign(t, rsaKey, jose.RS256, "e1", claims))

	// alg "none".
	none := b64([]byte(`{"alg":"none","kid":"r1"}`)) + "." + b64(mustJSON(t, claims)) + "."
	e.refused("r", none)
	// HS256 with the RSA public key as the HMAC secret (key confusion).
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	e.refused("r", sign(t, pubDER, jose.HS256, "r1", claims))
	e.refused("r", sign(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, "r1", claims))
	// Hand-made HS256, in case a signer would refuse some inputs.
	head := b64([]byte(`{"alg":"HS256","kid":"r1"}`)) + "." + b64(mustJSON(t, claims))
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(head))
	e.refused("r", head+"."+b64(mac.Sum(nil)))

	// Garbage of every shape.
	for _, junk := range []string{"x", "a.b.c", "a.b", "....", strings.Repeat("a", maxJWTBytes+1),
		"eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"} {
		e.refused("r", junk)
	}

	// jwt_supported_algs narrows what is accepted.
	e.configureJWKS(srv, map[string]any{"jwt_supported_algs": "ES256"})
	e.refused("r", good)
	e.login("r", sign(t, ecKey, jose.ES256, "e1", claims))
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestLoginBoundClaims(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, ecKey.Public())
	tok := func(extra map[string]any) string { return sign(t, ecKey, jose.ES256, "", e.claims(extra)) }

	e.role("str", map[string]any{"bound_claims": map[string]any{
		"env":          "prod",
		"teams":        []any{"blue", "green"},
		"/org/unit":    "eng",
		"/org/ids/1":   "42",
		"email_verify": "true",
	}})
	base := map[string]any{
		"env": "prod", "teams": []string{"red", "green"}, "email_verify": true,
		"org": map[string]any{"unit": "eng", "ids": []any{7, 42}},
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	e.login("str", tok(base))
	e.refused("str", tok(with("env", "prod2")))
	e.refused("str", tok(with("env", "Prod")))
	e.refused("str", tok(with("env", nil)))
	e.refused("str", tok(with("env", map[string]any{"a": "prod"})))
	e.refused("str", tok(with("teams", []string{"red"})))
	e.login("str", tok(with("teams", "blue")))
	e.refused("str", tok(with("org", map[string]any{"unit": "ops", "ids": []any{7, 42}})))
	e.refused("str", tok(with("org", map[string]any{"unit": "eng", "ids": []any{42}})))
	e.refused("str", tok(with("email_verify", false)))
	// "*" is literal for string matching.
	e.role("lit", map[string]any{"bound_claims": map[string]any{"env": "prod-*"}})
	e.refused("lit", tok(map[string]any{"env": "prod-eu"}))
	e.login("lit", tok(map[string]any{"env": "prod-*"}))

	e.role("glob", map[string]any{"bound_claims_type": "glob", "bound_claims": map[string]any{
		"env":  "prod-*",
		"repo": []any{"org/*-svc", "org/special"},
	}})
	e.login("glob", tok(map[string]any{"env": "prod-eu", "repo": "org/billing-svc"}))
	e.login("glob", tok(map[string]any{"env": "prod-", "repo": []string{"x", "org/special"}}))
	e.refused("glob", tok(map[string]any{"env": "dev-eu", "repo": "org/billing-svc"}))
	e.refused("glob", tok(map[string]any{"env": "prod-eu", "repo": "org/billing-svc-old"}))
	e.refused("glob", tok(map[string]any{"env": "prod-eu"}))
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"*", "anything", true},
		{"a*", "a", true}, {"a*", "abc", true}, {"a*", "ba", false},
		{"*c", "abc", true}, {"*c", "cb", false}, {"a*c", "ac", true}, {"a*c", "abbc", true}, {"a*c", "abcd", false},
		{"a*b*c", "abc", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "acb", false},
		{"ab*b", "ab", false}, {"ab*b", "abb", true}, {"**", "x", true}, {"a**b", "ab", true},
		{"exact", "exact", true}, {"exact", "exac", false},
	} {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func TestGetClaimPointer(t *testing.T) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{"a":{"b/c":{"d~e":"x"},"list":["p",{"q":"r"}],"n":null},"top":"t"}`), &claims); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want any
		ok   bool
	}{
		{"top", "t", true}, {"/top", "t", true}, {"/a/b~1c/d~0e", "x", true},
		{"/a/list/0", "p", true}, {"/a/list/1/q", "r", true},
		{"/a/list/2", nil, false}, {"/a/list/-1", nil, false}, {"/a/list/01", nil, false}, {"/a/list/x", nil, false},
		{"/a/n", nil, false}, {"/a/missing", nil, false}, {"/top/deeper", nil, false}, {"missing", nil, false},
		{"/", nil, false},
	} {
		got, ok := getClaim(claims, tc.name)
		if ok != tc.ok || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("getClaim(%q) = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLoginClaimMappingsGroupsAndUserClaim(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, rsaKey.Public())
	e.role("r", map[string]any{
		"user_claim":     "email",
		"groups_claim":   "/realm/groups",
		"claim_mappings": map[string]any{"name": "full_name", "/profile/dept": "dept", "uid": "uid", "admin": "admin", "absent": "gone"},
	})
	tok := func(extra map[string]any) string { return sign(t, rsaKey, jose.RS256, "", e.claims(extra)) }

	a := e.login("r", tok(map[string]any{
		"email": "alice@example.com", "name": "Alice A.", "uid": json.Number("12345678901234567890"), "admin": true,
		"profile": map[string]any{"dept": "R&D"},
		"realm":   map[string]any{"groups": []any{"eng", "", "oncall"}},
	}))
	mapped := map[string]string{"full_name": "Alice A.", "dept": "R&D", "uid": "12345678901234567890", "admin": "true"}
	if a.DisplayName != "alice@example.com" || a.Alias.Name != "alice@example.com" || !reflect.DeepEqual(a.Alias.Metadata, mapped) {
		t.Fatalf("auth = %+v alias = %+v", a, a.Alias)
	}
	wantMeta := map[string]string{"role": "r", "groups": "eng,oncall"}
	for k, v := range mapped {
		wantMeta[k] = v
	}
	if !reflect.DeepEqual(a.Metadata, wantMeta) {
		t.Fatalf("metadata = %v, want %v", a.Metadata, wantMeta)
	}

	groups := map[string]any{"groups": []any{"eng"}}
	// A single-string groups claim is one group.
	a = e.login("r", tok(map[string]any{"email": "a@x", "realm": map[string]any{"groups": "solo"}}))
	if a.Metadata["groups"] != "solo" {
		t.Fatalf("groups = %q", a.Metadata["groups"])
	}
	// Refusals: missing groups, non-string group, object mapped, missing or odd user claim.
	e.refused("r", tok(map[string]any{"email": "a@x"}))
	e.refused("r", tok(map[string]any{"email": "a@x", "realm": map[string]any{"groups": []any{"eng", 3}}}))
	e.refused("r", tok(map[string]any{"email": "a@x", "realm": groups, "name": map[string]any{"x": "y"}}))
	e.refused("r", tok(map[string]any{"email": "a@x", "realm": groups, "name": []string{"x"}}))
	e.refused("r", tok(map[string]any{"realm": groups}))
	e.refused("r", tok(map[string]any{"email": "", "realm": groups}))
	e.refused("r", tok(map[string]any{"email": true, "realm": groups}))

	// A numeric user claim names the user with the token's spelling.
	e.role("num", map[string]any{"user_claim": "uid"})
	if a := e.login("num", tok(map[string]any{"uid": json.Number("1000000000000000000001")})); a.DisplayName != "1000000000000000000001" {
		t.Fatalf("numeric user = %q", a.DisplayName)
	}
	// A nested user claim through user_claim_json_pointer; without the
	// flag the same name is a top-level claim.
	e.role("ptr", map[string]any{"user_claim": "/profile/login", "user_claim_json_pointer": true})
	if a := e.login("ptr", tok(map[string]any{"profile": map[string]any{"login": "al"}})); a.DisplayName != "al" {
		t.Fatalf("pointer user = %q", a.DisplayName)
	}
	e.role("flat", map[string]any{"user_claim": "/profile/login"})
	e.refused("flat", tok(map[string]any{"profile": map[string]any{"login": "al"}}))
	if a := e.login("flat", tok(map[string]any{"/profile/login": "literal"})); a.DisplayName != "literal" {
		t.Fatalf("flat user = %q", a.DisplayName)
	}
}

func TestLoginRoleSelectionAndInput(t *testing.T) {
	e := newEnv(t)
	tokNoConfig := sign(t, rsaKey, jose.RS256, "", e.claims(nil))
	e.role("r", nil)
	// Not configured: refused like everything else.
	e.refused("r", tokNoConfig)

	e.configurePEM(map[string]any{"default_role": "r"}, rsaKey.Public())
	tok := sign(t, rsaKey, jose.RS256, "", e.claims(nil))
	e.fails(logical.UpdateOperation, "login", map[string]any{"role": "r"}, logical.CodeInvalidRequest, "missing jwt")
	e.fails(logical.UpdateOperation, "login", map[string]any{"role": "r", "jwt": []any{"x"}}, logical.CodeInvalidRequest, `field "jwt"`)
	// The default role serves a login that names none; names are case-insensitive.
	if a := e.ok(logical.UpdateOperation, "login", map[string]any{"jwt": tok}).Auth; a.Metadata["role"] != "r" {
		t.Fatalf("default role login: %+v", a)
	}
	e.login("R", tok)
	e.refused("nope", tok)

	e.configurePEM(nil, rsaKey.Public())
	e.fails(logical.UpdateOperation, "login", map[string]any{"jwt": tok}, logical.CodeInvalidRequest, "missing role")
}

func TestLoginBoundCIDRs(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(nil, rsaKey.Public())
	e.role("in", map[string]any{"token_bound_cidrs": "10.0.0.0/8"})
	e.role("out", map[string]any{"token_bound_cidrs": "192.168.0.0/16"})
	tok := sign(t, rsaKey, jose.RS256, "", e.claims(nil))
	if a := e.login("in", tok); !reflect.DeepEqual(a.BoundCIDRs, []string{"10.0.0.0/8"}) {
		t.Fatalf("bound cidrs = %v", a.BoundCIDRs)
	}
	e.refused("out", tok)
}

func TestLoginRefusalsAreIndistinguishable(t *testing.T) {
	e := newEnv(t)
	e.configurePEM(map[string]any{"bound_issuer": "https://issuer.example"}, rsaKey.Public())
	e.role("r", map[string]any{"bound_subject": "alice"})
	var msgs []string
	for _, tc := range []struct{ role, tok string }{
		{"nope", sign(t, rsaKey, jose.RS256, "", e.claims(nil))},
		{"r", sign(t, rsaKey2, jose.RS256, "", e.claims(nil))},
		{"r", sign(t, rsaKey, jose.RS256, "", e.claims(map[string]any{"exp": epoch.Add(-time.Hour).Unix()}))},
		{"r", sign(t, rsaKey, jose.RS256, "", e.claims(map[string]any{"aud": "x"}))},
		{"r", sign(t, rsaKey, jose.RS256, "", e.claims(map[string]any{"iss": "x"}))},
		{"r", sign(t, rsaKey, jose.RS256, "", e.claims(map[string]any{"sub": "x"}))},
		{"r", "not-a-jwt"},
	} {
		_, err := e.do(logical.UpdateOperation, "login", map[string]any{"role": tc.role, "jwt": tc.tok})
		if err == nil {
			t.Fatal("login succeeded")
		}
		msgs = append(msgs, err.Error())
		if logical.CodeOf(err) != logical.CodeInvalidRequest {
			t.Fatalf("code = %d", logical.CodeOf(err))
		}
	}
	for _, m := range msgs {
		if m != "invalid JWT or role" {
			t.Fatalf("refusal messages differ: %q", msgs)
		}
	}
	// The specific reasons are in the debug log, without the tokens.
	logs := e.logs.all()
	for _, reason := range []string{"no such role", "signature does not verify", "expired", "aud matches none", "iss does not match", "sub does not match"} {
		if !strings.Contains(logs, reason) {
			t.Errorf("debug log lacks %q:\n%s", reason, logs)
		}
	}
}

func TestLoginOIDCDiscovery(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(ecKey, "e1", "ES256"))
	e.ok(logical.UpdateOperation, "config", map[string]any{"oidc_discovery_url": srv.URL, "oidc_discovery_ca_pem": srv.caPEM()})
	e.role("r", nil)

	e.login("r", sign(t, ecKey, jose.ES256, "e1", e.claims(map[string]any{"iss": srv.URL})))
	// iss must be the discovered issuer.
	e.refused("r", sign(t, ecKey, jose.ES256, "e1", e.claims(map[string]any{"iss": "https://issuer.example"})))
	// bound_issuer, when set as well, must also match.
	e.ok(logical.UpdateOperation, "config", map[string]any{"oidc_discovery_url": srv.URL, "oidc_discovery_ca_pem": srv.caPEM(), "bound_issuer": "https://other"})
	e.refused("r", sign(t, ecKey, jose.ES256, "e1", e.claims(map[string]any{"iss": srv.URL})))
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
