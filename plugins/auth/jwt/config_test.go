package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

func TestConfigPEMReadBack(t *testing.T) {
	e := newEnv(t)
	if resp := e.ok(logical.ReadOperation, "config", nil); resp != nil {
		t.Fatalf("read before any write = %+v, want nil (404)", resp)
	}
	e.configurePEM(map[string]any{"bound_issuer": "https://issuer.example", "default_role": "Dev", "jwt_supported_algs": "RS256,ES256"},
		rsaKey.Public(), ecKey.Public())
	d := e.ok(logical.ReadOperation, "config", nil).Data
	want := map[string]any{
		"oidc_discovery_url": "", "oidc_discovery_ca_pem": "", "jwks_url": "", "jwks_ca_pem": "",
		"jwt_validation_pubkeys": []string{strings.TrimSpace(pubPEM(t, rsaKey.Public())), strings.TrimSpace(pubPEM(t, ecKey.Public()))},
		"jwt_supported_algs":     []string{"RS256", "ES256"},
		"bound_issuer":           "https://issuer.example",
		"default_role":           "dev",
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("config read:\n got %#v\nwant %#v", d, want)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalECPrivateKey(ecKey)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER}))
	rsaPEM, ecPEM := pubPEM(t, rsaKey.Public()), pubPEM(t, ecKey.Public())
	srv := newJWKSServer(t, pubJWK(rsaKey, "k1", "RS256"))

	for _, tc := range []struct {
		name string
		data map[string]any
		msg  string
	}{
		{"no source", map[string]any{"bound_issuer": "x"}, "exactly one of"},
		{"two sources", map[string]any{"jwt_validation_pubkeys": rsaPEM, "jwks_url": srv.URL + "/keys"}, "exactly one of"},
		{"not PEM", map[string]any{"jwt_validation_pubkeys": "hello"}, "not a PEM block"},
		{"garbage PEM", map[string]any{"jwt_validation_pubkeys": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "cannot parse"},
		{"private key", map[string]any{"jwt_validation_pubkeys": privPEM}, "not a public key"},
		{"two blocks in one entry", map[string]any{"jwt_validation_pubkeys": []any{rsaPEM + ecPEM}}, "more than one PEM block"},
		{"short RSA", map[string]any{"jwt_validation_pubkeys": pubPEM(t, small.Public())}, "too short"},
		{"alg none", map[string]any{"jwt_validation_pubkeys": rsaPEM, "jwt_supported_algs": "none"}, `"none" is not supported`},
		{"alg HS256", map[string]any{"jwt_validation_pubkeys": rsaPEM, "jwt_supported_algs": []any{"RS256", "HS256"}}, `"HS256" is not supported`},
		{"CA without URL", map[string]any{"jwt_validation_pubkeys": rsaPEM, "jwks_ca_pem": srv.caPEM()}, "jwks_ca_pem requires jwks_url"},
		{"discovery CA without URL", map[string]any{"jwt_validation_pubkeys": rsaPEM, "oidc_discovery_ca_pem": srv.caPEM()}, "requires oidc_discovery_url"},
		{"bad CA", map[string]any{"jwks_url": srv.URL + "/keys", "jwks_ca_pem": "nope"}, "jwks_ca_pem: no PEM certificate"},
		{"bad scheme", map[string]any{"jwks_url": "ftp://example.com/keys"}, "scheme must be https or http"},
		{"credentials in URL", map[string]any{"jwks_url": "https://u:p@example.com/keys"}, "must not contain credentials"},
		{"no host", map[string]any{"oidc_discovery_url": "https:///x"}, "URL has no host"},
		{"wrong field type", map[string]any{"jwt_validation_pubkeys": 12}, "jwt_validation_pubkeys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.fails(logical.UpdateOperation, "config", tc.data, logical.CodeInvalidRequest, tc.msg)
		})
	}
	if resp := e.ok(logical.ReadOperation, "config", nil); resp != nil {
		t.Fatal("a refused write stored a configuration")
	}
}

func TestConfigJWKSValidatedAtWrite(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k1", "RS256"))

	// The server's certificate is not in the system roots.
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/keys"},
		logical.CodeInvalidRequest, "jwks_url: JWKS:")
	// Another CA does not verify it either.
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/keys", "jwks_ca_pem": selfSignedPEM(t)},
		logical.CodeInvalidRequest, "certificate")
	// Not found, server errors, empty and unusable key sets.
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/nothing", "jwks_ca_pem": srv.caPEM()},
		logical.CodeInvalidRequest, "answered HTTP 404")
	srv.setKeys()
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/keys", "jwks_ca_pem": srv.caPEM()},
		logical.CodeInvalidRequest, "no usable public signing key")
	srv.setKeys(pubJWK(rsaKey, "k1", "RS256"))
	srv.setFail(true)
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/keys", "jwks_ca_pem": srv.caPEM()},
		logical.CodeInvalidRequest, "answered HTTP 500")
	srv.setFail(false)
	// Unreachable.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": dead.URL + "/keys"},
		logical.CodeInvalidRequest, "jwks_url: JWKS:")

	e.configureJWKS(srv, nil)
	if got := srv.jwksHits.Load(); got < 1 {
		t.Fatalf("the write did not fetch the key set")
	}
}

func TestConfigJWKSSkipsUnusableKeys(t *testing.T) {
	e := newEnv(t)
	// A set with only junk: unknown kty, a symmetric key, an encryption key.
	junk := `{"keys":[{"kty":"XYZ","kid":"a"},{"kty":"oct","kid":"b","k":"c2VjcmV0"},` +
		`{"kty":"RSA","use":"enc","kid":"c","n":"` + b64(rsaKey.N.Bytes()) + `","e":"AQAB"}]}`
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(junk)) }))
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL, "jwks_ca_pem": ca},
		logical.CodeInvalidRequest, "no usable public signing key")

	// The same junk next to one good key: the good key is used.
	junk = strings.TrimSuffix(junk, "]}") + `,{"kty":"RSA","kid":"good","n":"` + b64(rsaKey.N.Bytes()) + `","e":"AQAB"}]}`
	e.ok(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL, "jwks_ca_pem": ca})
	e.role("r", nil)
	e.login("r", sign(t, rsaKey, "RS256", "good", e.claims(nil)))
	e.refused("r", sign(t, rsaKey, "RS256", "c", e.claims(nil)))
}

func TestConfigResponseSizeLimit(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[],"pad":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", maxResponseBytes)))
		_, _ = w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL, "jwks_ca_pem": ca},
		logical.CodeInvalidRequest, "more than 1048576 bytes")
}

func TestConfigRedirects(t *testing.T) {
	e := newEnv(t)
	good := newJWKSServer(t, pubJWK(rsaKey, "k1", "RS256"))
	// Same host: followed.
	mux := http.NewServeMux()
	var self string
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, self+"/keys", http.StatusFound) })
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, good.URL+"/keys", http.StatusFound) })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, self+"/loop", http.StatusFound) })
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","kid":"k1","n":"` + b64(rsaKey.N.Bytes()) + `","e":"AQAB"}]}`))
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	self = srv.URL
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	e.ok(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/old", "jwks_ca_pem": ca})
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/away", "jwks_ca_pem": ca},
		logical.CodeInvalidRequest, "redirect to another host")
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/loop", "jwks_ca_pem": ca},
		logical.CodeInvalidRequest, "too many redirects")

	// Downgrade from https to http on the same host.
	from, _ := url.Parse("https://idp.example/keys")
	to, _ := url.Parse("http://idp.example/keys")
	if err := checkRedirect(&http.Request{URL: to}, []*http.Request{{URL: from}}); err == nil {
		t.Fatal("https to http redirect allowed")
	}
}

func TestConfigPlainHTTPWarns(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","kid":"k1","n":"` + b64(rsaKey.N.Bytes()) + `","e":"AQAB"}]}`))
	}))
	defer srv.Close()
	resp := e.ok(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "plain http") {
		t.Fatalf("want a plain-http warning, got %+v", resp)
	}
}

func TestConfigDiscovery(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(ecKey, "e1", "ES256"))

	srv.issuer = "https://elsewhere.example"
	e.fails(logical.UpdateOperation, "config", map[string]any{"oidc_discovery_url": srv.URL, "oidc_discovery_ca_pem": srv.caPEM()},
		logical.CodeInvalidRequest, "does not match the discovery URL")
	srv.issuer = ""
	e.fails(logical.UpdateOperation, "config", map[string]any{"oidc_discovery_url": srv.URL + "/tenant", "oidc_discovery_ca_pem": srv.caPEM()},
		logical.CodeInvalidRequest, "OIDC discovery")

	e.ok(logical.UpdateOperation, "config", map[string]any{"oidc_discovery_url": srv.URL, "oidc_discovery_ca_pem": srv.caPEM()})
	if srv.discoHits.Load() == 0 || srv.jwksHits.Load() == 0 {
		t.Fatalf("discovery write made %d discovery and %d JWKS requests; want both", srv.discoHits.Load(), srv.jwksHits.Load())
	}
	d := e.ok(logical.ReadOperation, "config", nil).Data
	if d["oidc_discovery_url"] != srv.URL || d["oidc_discovery_ca_pem"] != strings.TrimSpace(srv.caPEM()) {
		t.Fatalf("config read = %+v", d)
	}
}

func TestConfigJWKSSkipsShortRSAKeys(t *testing.T) {
	// A JWKS key with an RSA modulus under 2048 bits is skipped; others are kept.
	e := newEnv(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	srv := newJWKSServer(t, pubJWK(small, "small", "RS256"))
	e.fails(logical.UpdateOperation, "config", map[string]any{"jwks_url": srv.URL + "/keys", "jwks_ca_pem": srv.caPEM()},
		logical.CodeInvalidRequest, "no usable public signing key")
	srv.setKeys(pubJWK(small, "small", "RS256"), pubJWK(p384, "p384", "ES384"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	e.login("r", sign(t, p384, "ES384", "p384", e.claims(nil)))
	e.refused("r", sign(t, small, "RS256", "small", e.claims(nil)))
}

// selfSignedPEM is a CA certificate that signed nothing the tests serve.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "other CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ecKey2.Public(), ecKey2)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
