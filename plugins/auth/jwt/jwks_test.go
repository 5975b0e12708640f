package jwt

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardproject/ward/sdk/logical"
)

func TestJWKSRotationAndUnknownKid(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "old", "RS256"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	claims := e.claims(map[string]any{"exp": epoch.Add(24 * time.Hour).Unix()})
	oldTok := sign(t, rsaKey, jose.RS256, "old", claims)
	newTok := sign(t, ecKey, jose.ES256, "new", claims)
	hits := srv.jwksHits.Load() // the config write fetched once

	e.login("r", oldTok)
	if got := srv.jwksHits.Load(); got != hits {
		t.Fatalf("a cached kid caused %d fetches", got-hits)
	}

	// The issuer rotates: "new" appears. Right after the last fetch, an
	// unknown kid does not refetch (rate limit) and is refused.
	srv.setKeys(pubJWK(rsaKey, "old", "RS256"), pubJWK(ecKey, "new", "ES256"))
	for range 20 {
		e.refused("r", newTok)
		e.refused("r", sign(t, ecKey, jose.ES256, "bogus", claims))
	}
	if got := srv.jwksHits.Load(); got != hits {
		t.Fatalf("unknown kids within the rate limit caused %d fetches", got-hits)
	}

	// Once the interval has passed, the unknown kid refetches once and works.
	e.clock.Advance(refetchInterval)
	e.login("r", newTok)
	if got := srv.jwksHits.Load(); got != hits+1 {
		t.Fatalf("rotation caused %d fetches, want 1", got-hits)
	}
	e.login("r", newTok)
	e.login("r", oldTok)

	// A stream of bogus kids: at most one fetch per interval.
	hits = srv.jwksHits.Load()
	for range 50 {
		e.clock.Advance(time.Second)
		e.refused("r", sign(t, ecKey, jose.ES256, "bogus", claims))
	}
	if got, max := srv.jwksHits.Load()-hits, int64(50*time.Second/refetchInterval)+1; got > max || got == 0 {
		t.Fatalf("50 bogus kids over 50s caused %d fetches, want 1..%d", got, max)
	}

	// The old key is withdrawn: after the next refresh its tokens refuse.
	srv.setKeys(pubJWK(ecKey, "new", "ES256"))
	e.clock.Advance(keyCacheTTL)
	e.refused("r", oldTok)
	e.login("r", newTok)
}

func TestJWKSCacheTTLAndStaleOnError(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	tok := sign(t, rsaKey, jose.RS256, "k", e.claims(map[string]any{"exp": epoch.Add(24 * time.Hour).Unix()}))
	hits := srv.jwksHits.Load()

	e.clock.Advance(keyCacheTTL - time.Second)
	e.login("r", tok)
	if srv.jwksHits.Load() != hits {
		t.Fatal("fetched before the TTL")
	}
	e.clock.Advance(time.Second)
	e.login("r", tok)
	if srv.jwksHits.Load() != hits+1 {
		t.Fatal("did not refetch after the TTL")
	}

	// The server goes down: the cached keys keep serving, with a warning.
	srv.setFail(true)
	e.clock.Advance(keyCacheTTL)
	e.login("r", tok)
	if srv.jwksHits.Load() != hits+2 {
		t.Fatal("did not try to refetch after the TTL")
	}
	e.login("r", tok) // rate-limited: no new attempt
	if srv.jwksHits.Load() != hits+2 {
		t.Fatal("a failed fetch was retried within the interval")
	}
	if !strings.Contains(e.logs.all(), "fetching the signing keys failed") {
		t.Fatal("no warning logged for the failed fetch")
	}
}

func TestJWKSUnavailableIsAnInternalError(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	tok := sign(t, rsaKey, jose.RS256, "k", e.claims(nil))

	// A process restart (or an invalidation) empties the cache; with the
	// server down there is nothing to verify with.
	e.b.InvalidateKey(context.Background(), "config")
	srv.setFail(true)
	_, err := e.do(logical.UpdateOperation, "login", map[string]any{"role": "r", "jwt": tok})
	if !errors.Is(err, errKeysUnavailable) || logical.CodeOf(err) != logical.CodeInternal {
		t.Fatalf("login with no keys = %v, want errKeysUnavailable", err)
	}
	// Retried within the interval: no new request, same answer.
	hits := srv.jwksHits.Load()
	if _, err := e.do(logical.UpdateOperation, "login", map[string]any{"role": "r", "jwt": tok}); !errors.Is(err, errKeysUnavailable) {
		t.Fatalf("second login = %v", err)
	}
	if srv.jwksHits.Load() != hits {
		t.Fatal("retried a failed fetch within the interval")
	}
	srv.setFail(false)
	e.clock.Advance(refetchInterval)
	e.login("r", tok)
}

func TestJWKSInvalidateDropsCache(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	tok := sign(t, rsaKey, jose.RS256, "k", e.claims(nil))
	e.login("r", tok)
	hits := srv.jwksHits.Load()

	e.b.InvalidateKey(context.Background(), "role/r") // roles are not cached
	e.login("r", tok)
	if srv.jwksHits.Load() != hits {
		t.Fatal("a role invalidation dropped the key cache")
	}
	e.b.InvalidateKey(context.Background(), "config")
	e.login("r", tok)
	if srv.jwksHits.Load() != hits+1 {
		t.Fatal("a config invalidation did not drop the key cache")
	}
	e.b.Cleanup(context.Background())
	e.login("r", tok)
	if srv.jwksHits.Load() != hits+2 {
		t.Fatal("Cleanup did not drop the key cache")
	}
}

func TestJWKSCacheFollowsConfigChange(t *testing.T) {
	e := newEnv(t)
	a := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"))
	b := newJWKSServer(t, pubJWK(rsaKey2, "k", "RS256"))
	e.configureJWKS(a, nil)
	e.role("r", nil)
	tokA := sign(t, rsaKey, jose.RS256, "k", e.claims(nil))
	tokB := sign(t, rsaKey2, jose.RS256, "k", e.claims(nil))
	e.login("r", tokA)
	// Same kid, other issuer: keys of a must not verify once b is configured,
	// even without an invalidation.
	e.configureJWKS(b, nil)
	e.refused("r", tokA)
	e.login("r", tokB)
	// Switching to PEM keys ignores the cache entirely.
	e.configurePEM(nil, rsaKey.Public())
	e.refused("r", tokB)
	e.login("r", tokA)
}

func TestJWKSConcurrentLoginsShareOneFetch(t *testing.T) {
	e := newEnv(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"), pubJWK(ecKey, "e", "ES256"))
	e.configureJWKS(srv, nil)
	e.role("r", nil)
	e.b.InvalidateKey(context.Background(), "config")
	hits := srv.jwksHits.Load()
	toks := []string{
		sign(t, rsaKey, jose.RS256, "k", e.claims(nil)),
		sign(t, ecKey, jose.ES256, "e", e.claims(nil)),
		sign(t, ecKey, jose.ES256, "unknown", e.claims(nil)),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := toks[i%3]
			resp, err := e.do(logical.UpdateOperation, "login", map[string]any{"role": "r", "jwt": tok})
			switch {
			case i%3 == 2 && !errors.Is(err, errLoginRefused):
				errs <- errors.New("unknown kid not refused: " + errString(err))
			case i%3 != 2 && (err != nil || resp == nil || resp.Auth == nil):
				errs <- errors.New("login failed: " + errString(err))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.jwksHits.Load() - hits; got != 1 {
		t.Fatalf("60 concurrent logins on a cold cache made %d fetches, want 1", got)
	}
}

// TestJWKSInjectedClient checks the HTTP client hook: the backend uses
// whatever client it is given, with the configured CA.
func TestJWKSInjectedClient(t *testing.T) {
	testKeys(t)
	srv := newJWKSServer(t, pubJWK(rsaKey, "k", "RS256"))
	var cas []string
	var mu sync.Mutex
	s := logical.NewInmemStorage()
	b, err := newBackend(&logical.BackendConfig{StorageView: s}, options{httpClient: func(ca string) (*http.Client, error) {
		mu.Lock()
		cas = append(cas, ca)
		mu.Unlock()
		return srv.Client(), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "config",
		Data: map[string]any{"jwks_url": srv.URL + "/keys"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cas) != 1 || cas[0] != "" {
		t.Fatalf("client built with CAs %q", cas)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
