package jwt

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// keyCacheTTL is how long a fetched key set is used before the next
	// login refetches it.
	keyCacheTTL = 5 * time.Minute
	// refetchInterval is the least time between two fetch attempts of one
	// source. It bounds the requests a stream of tokens with unknown kids
	// (or a failing server) can cause to one per interval.
	refetchInterval = 10 * time.Second
	// fetchTimeout bounds one HTTP request, connection included.
	fetchTimeout = 10 * time.Second
	// maxResponseBytes bounds a discovery document or a key set.
	maxResponseBytes = 1 << 20
	// maxRedirects bounds same-host redirects.
	maxRedirects = 5
)

// keySource is where remote signing keys come from; it also keys the
// cache, so keys fetched for one configuration are never used for another.
type keySource struct {
	discovery bool // url is an OIDC issuer; the JWKS URL comes from its discovery document
	url       string
	caPEM     string
}

// keySet is the result of one fetch.
type keySet struct {
	keys   []jose.JSONWebKey
	issuer string // the discovered issuer; empty for a plain JWKS URL
}

// byKid returns the keys a token with this kid and alg may be verified
// with: those with the kid (all keys when the token names none) whose own
// alg, if any, is the token's.
func (s *keySet) byKid(kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range s.keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}

func (s *keySet) hasKid(kid string) bool {
	for _, k := range s.keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

// keyCache holds the last key set fetched for the mount's key source.
// It is only a cache: Invalidate and Cleanup drop it, and a configuration
// change makes it miss because the source differs.
type keyCache struct {
	// fetchMu serialises fetches, so concurrent logins that miss make one
	// request and the others use its result. It is never held with mu
	// across I/O the other way round.
	fetchMu sync.Mutex

	mu        sync.Mutex // protects the fields below
	gen       uint64     // bumped by clear; a fetch started before a clear is not installed
	src       keySource
	set       *keySet   // nil until a fetch of src succeeded
	fetchedAt time.Time // last successful fetch of src
	attempted time.Time // last fetch attempt of src, successful or not
}

func (c *keyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.src, c.set, c.fetchedAt, c.attempted = keySource{}, nil, time.Time{}, time.Time{}
}

// snapshot returns the cached set for src (nil if none) and its times.
func (c *keyCache) snapshot(src keySource) (set *keySet, fetchedAt, attempted time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src != src {
		return nil, time.Time{}, time.Time{}, c.gen
	}
	return c.set, c.fetchedAt, c.attempted, c.gen
}

// markAttempt records a fetch attempt of src at t, unless a clear came
// after gen was read.
func (c *keyCache) markAttempt(src keySource, t time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.src != src {
		c.src, c.set, c.fetchedAt = src, nil, time.Time{}
	}
	c.attempted = t
}

// install stores a fetched set of src, unless a clear came after gen was read.
func (c *keyCache) install(src keySource, set *keySet, t time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.src, c.set, c.fetchedAt, c.attempted = src, set, t, t
}

// prime fetches src unconditionally (a configuration write) and caches it.
func (c *keyCache) prime(ctx context.Context, b *backend, src keySource) error {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	_, _, _, gen := c.snapshot(src)
	now := b.now()
	set, err := b.fetchKeySet(ctx, src)
	if err != nil {
		return err
	}
	c.install(src, set, now, gen)
	return nil
}

// get returns the key set to verify a token with key ID kid (maybe
// empty). It refetches when the cached set is older than keyCacheTTL or
// lacks kid, at most once per refetchInterval. When a refetch fails it
// keeps using the set it has (the issuer's keys rarely vanish, its server
// sometimes does) and logs; errKeysUnavailable means there is no set at all.
func (c *keyCache) get(ctx context.Context, b *backend, src keySource, kid string) (*keySet, error) {
	usable := func(set *keySet, fetchedAt time.Time) bool {
		return set != nil && b.now().Sub(fetchedAt) < keyCacheTTL && (kid == "" || set.hasKid(kid))
	}
	if set, fetchedAt, _, _ := c.snapshot(src); usable(set, fetchedAt) {
		return set, nil
	}

	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	// Another login may have refreshed the set while this one waited.
	set, fetchedAt, attempted, gen := c.snapshot(src)
	if usable(set, fetchedAt) {
		return set, nil
	}
	now := b.now()
	if !attempted.IsZero() && now.Sub(attempted) < refetchInterval {
		if set == nil {
			return nil, errKeysUnavailable
		}
		b.logger.Debug("jwt: key set refetch skipped: last attempt too recent", "kid", kid)
		return set, nil
	}
	c.markAttempt(src, now, gen)
	fresh, err := b.fetchKeySet(ctx, src)
	if err != nil {
		b.logger.Warn("jwt: fetching the signing keys failed", "url", src.url, "error", err.Error())
		if set == nil {
			return nil, errKeysUnavailable
		}
		return set, nil
	}
	c.install(src, fresh, now, gen)
	return fresh, nil
}

// fetchKeySet fetches and parses the key set of src. The request is
// detached from the client's cancellation: its result serves every login
// waiting on fetchMu.
func (b *backend) fetchKeySet(ctx context.Context, src keySource) (*keySet, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	client, err := b.httpClient(src.caPEM)
	if err != nil {
		return nil, err
	}
	set := &keySet{}
	jwksURL := src.url
	if src.discovery {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		wellKnown := strings.TrimSuffix(src.url, "/") + "/.well-known/openid-configuration"
		if err := getJSON(ctx, client, wellKnown, &doc); err != nil {
			return nil, fmt.Errorf("OIDC discovery: %w", err)
		}
		// OpenID Connect Discovery 1.0 §4.3: the issuer must be the URL
		// the document was fetched for, or anyone able to serve a
		// discovery document could claim another issuer's tokens.
		if strings.TrimSuffix(doc.Issuer, "/") != strings.TrimSuffix(src.url, "/") {
			return nil, fmt.Errorf("OIDC discovery: the document's issuer %q does not match the discovery URL", doc.Issuer)
		}
		if err := checkURL(doc.JWKSURI); err != nil {
			return nil, fmt.Errorf("OIDC discovery: jwks_uri: %v", err)
		}
		set.issuer, jwksURL = doc.Issuer, doc.JWKSURI
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, client, jwksURL, &raw); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	for i, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			// One key of a type go-jose does not know must not make the
			// issuer's other keys unusable.
			b.logger.Debug("jwt: skipping a JWKS key that does not parse", "index", i)
			continue
		}
		if !k.IsPublic() || !k.Valid() || k.Use == "enc" || checkKeyType(k.Key) != nil {
			b.logger.Debug("jwt: skipping a JWKS key not usable for signatures", "index", i, "kid", k.KeyID)
			continue
		}
		set.keys = append(set.keys, k)
	}
	if len(set.keys) == 0 {
		return nil, errors.New("JWKS: no usable public signing key")
	}
	return set, nil
}

// getJSON GETs url and decodes a JSON body of at most maxResponseBytes.
func getJSON(ctx context.Context, client *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	if len(body) > maxResponseBytes {
		return fmt.Errorf("%s answered more than %d bytes", url, maxResponseBytes)
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(out); err != nil {
		return fmt.Errorf("%s did not answer valid JSON", url)
	}
	return nil
}

// checkRedirect follows redirects only to the same host over the same or
// a stronger scheme.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("too many redirects")
	}
	first := via[0].URL
	if req.URL.Host != first.Host {
		return fmt.Errorf("redirect to another host (%s) refused", req.URL.Host)
	}
	if first.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("redirect from https to http refused")
	}
	return nil
}

// certPool parses PEM CA certificates.
func certPool(caPEM string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}
