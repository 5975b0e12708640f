package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardproject/ward/sdk/logical"
)

// epoch is the fake clock's start: fixed so claim times in tests are exact.
var epoch = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// fakeClock is an injectable clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logRecorder keeps every log line so tests can check what was logged.
type logRecorder struct {
	mu    sync.Mutex // protects lines
	lines []string
}

func (l *logRecorder) log(level, msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(level, " ", msg, " ", args))
}
func (l *logRecorder) Debug(msg string, args ...any) { l.log("DEBUG", msg, args...) }
func (l *logRecorder) Info(msg string, args ...any)  { l.log("INFO", msg, args...) }
func (l *logRecorder) Warn(msg string, args ...any)  { l.log("WARN", msg, args...) }
func (l *logRecorder) Error(msg string, args ...any) { l.log("ERROR", msg, args...) }

func (l *logRecorder) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Test keys, generated once: RSA generation is slow under -race.
var (
	keysOnce        sync.Once
	rsaKey, rsaKey2 *rsa.PrivateKey
	ecKey, ecKey2   *ecdsa.PrivateKey
	edKey           ed25519.PrivateKey
)

func testKeys(tb testing.TB) {
	tb.Helper()
	keysOnce.Do(func() {
		var errs []error
		try := func(err error) { errs = append(errs, err) }
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		try(err)
		rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048)
		try(err)
		ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		try(err)
		ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		try(err)
		_, edKey, err = ed25519.GenerateKey(rand.Reader)
		try(err)
		if err := errors.Join(errs...); err != nil {
			panic(err)
		}
	})
}

// pubPEM encodes a public key as a PKIX PEM block.
func pubPEM(tb testing.TB, k crypto.PublicKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign makes a compact JWS of claims with key under alg and kid. Claims
// are marshalled with encoding/json, so json.Number values stay numbers.
func sign(tb testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// jwksServer serves a JWKS, and an OIDC discovery document naming it, over
// TLS, counting the requests for each.
type jwksServer struct {
	*httptest.Server
	mu        sync.Mutex // protects the fields below
	keys      []jose.JSONWebKey
	issuer    string // issuer in the discovery document; the server URL if empty
	fail      bool   // answer 500 to everything
	jwksHits  atomic.Int64
	discoHits atomic.Int64
}

func newJWKSServer(tb testing.TB, keys ...jose.JSONWebKey) *jwksServer {
	tb.Helper()
	s := &jwksServer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		s.jwksHits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.discoHits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		iss := s.issuer
		if iss == "" {
			iss = s.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": s.URL + "/keys"})
	})
	s.Server = httptest.NewUnstartedServer(mux)
	// Handshakes refused on purpose (unknown CA) would log noise.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...jose.JSONWebKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func (s *jwksServer) setFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// caPEM is the PEM of the server's self-signed certificate.
func (s *jwksServer) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))
}

// pubJWK is the public JWK of a private key.
func pubJWK(key crypto.Signer, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
}

// env is one mount backed by InmemStorage with a fake clock.
type env struct {
	tb    testing.TB
	b     *backend
	s     *logical.InmemStorage
	clock *fakeClock
	logs  *logRecorder
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	testKeys(tb)
	s := logical.NewInmemStorage()
	clock := &fakeClock{t: epoch}
	logs := &logRecorder{}
	b, err := newBackend(&logical.BackendConfig{StorageView: s, MountPoint: "auth/jwt/", MountType: "jwt", Logger: logs},
		options{now: clock.Now})
	if err != nil {
		tb.Fatalf("newBackend: %v", err)
	}
	return &env{tb: tb, b: b, s: s, clock: clock, logs: logs}
}

// do sends one request as the kernel would.
func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "auth/jwt/", RemoteAddr: "10.1.2.3",
	})
}

// ok sends a request that must succeed.
func (e *env) ok(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.tb.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		e.tb.Fatalf("%s %s: unexpected error: %v", op, path, err)
	}
	return resp
}

// fails sends a request that must fail with code and a message containing msg.
func (e *env) fails(op logical.Operation, path string, data map[string]any, code logical.Code, msg string) {
	e.tb.Helper()
	resp, err := e.do(op, path, data)
	if err == nil {
		e.tb.Fatalf("%s %s: want error %q, got response %+v", op, path, msg, resp)
	}
	if logical.CodeOf(err) != code || !strings.Contains(err.Error(), msg) {
		e.tb.Fatalf("%s %s: got error %v (code %d), want code %d containing %q", op, path, err, logical.CodeOf(err), code, msg)
	}
}

// login logs in and returns the Auth; it fails the test on error.
func (e *env) login(role, token string) *logical.Auth {
	e.tb.Helper()
	resp := e.ok(logical.UpdateOperation, "login", map[string]any{"role": role, "jwt": token})
	if resp == nil || resp.Auth == nil {
		e.tb.Fatalf("login answered no Auth: %+v", resp)
	}
	return resp.Auth
}

// refused checks that a login fails with the one generic refusal, and
// that neither the error nor the log holds the token.
func (e *env) refused(role, token string) {
	e.tb.Helper()
	resp, err := e.do(logical.UpdateOperation, "login", map[string]any{"role": role, "jwt": token})
	if err == nil {
		e.tb.Fatalf("login succeeded, want refusal: %+v", resp.Auth)
	}
	if !errors.Is(err, errLoginRefused) {
		e.tb.Fatalf("login error = %v (code %d), want the generic refusal", err, logical.CodeOf(err))
	}
	if strings.Contains(e.logs.all(), token) {
		e.tb.Fatal("the log holds the JWT")
	}
}

// claims returns standard valid claims at the fake clock's time; extra
// entries are added, and entries with a nil value removed.
func (e *env) claims(extra map[string]any) map[string]any {
	now := e.clock.Now()
	c := map[string]any{
		"iss": "https://issuer.example",
		"sub": "alice",
		"aud": []string{"ward"},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// configurePEM configures the given public keys.
func (e *env) configurePEM(extra map[string]any, keys ...crypto.PublicKey) {
	e.tb.Helper()
	var pems []any
	for _, k := range keys {
		pems = append(pems, pubPEM(e.tb, k))
	}
	data := map[string]any{"jwt_validation_pubkeys": pems}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "config", data)
}

// configureJWKS points the mount at srv's key set.
func (e *env) configureJWKS(srv *jwksServer, extra map[string]any) {
	e.tb.Helper()
	data := map[string]any{"jwks_url": srv.URL + "/keys", "jwks_ca_pem": srv.caPEM()}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "config", data)
}

// role writes a role bound to audience "ward" with the extra fields.
func (e *env) role(name string, extra map[string]any) {
	e.tb.Helper()
	data := map[string]any{"role_type": "jwt", "bound_audiences": []any{"ward"}, "token_policies": "dev,ops", "token_ttl": "1h"}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "role/"+name, data)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
