package jwt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// maxJWTBytes bounds the token a login parses; real ones are a few KiB.
const maxJWTBytes = 256 << 10

func (b *backend) pathLogin() *framework.Path {
	return &framework.Path{
		Pattern: "login",
		Fields: map[string]*framework.FieldSchema{
			"role": {Type: framework.TypeString, Description: "Role to log in with; the configured default_role if unset."},
			"jwt":  {Type: framework.TypeString, Description: "The signed JWT."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.UpdateOperation: b.login,
		},
		HelpSynopsis: "Log in with a signed JWT.",
	}
}

// refusal is a login refused because of the JWT or the role. Its reason
// is logged at debug level and never sent to the client.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func refuse(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

func (b *backend) login(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	token := d.Get("jwt").(string)
	if token == "" {
		return nil, logical.InvalidRequest("missing jwt")
	}
	cfg, err := loadConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSpace(d.Get("role").(string)))
	if name == "" && cfg != nil {
		name = cfg.DefaultRole
	}
	if name == "" {
		return nil, logical.InvalidRequest("missing role")
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}

	auth, err := b.authenticate(ctx, req, cfg, name, r, token)
	var ref *refusal
	if errors.As(err, &ref) {
		b.logger.Debug("jwt: login refused", "role", name, "reason", ref.reason)
		return nil, errLoginRefused
	}
	if err != nil {
		return nil, err
	}
	return &logical.Response{Auth: auth}, nil
}

// authenticate runs every check of a login; each failure tied to the
// token or the role is a *refusal.
func (b *backend) authenticate(ctx context.Context, req *logical.Request, cfg *config, name string, r *role, token string) (*logical.Auth, error) {
	switch {
	case cfg == nil:
		return nil, refuse("the auth method is not configured")
	case r == nil:
		return nil, refuse("no such role")
	case len(token) > maxJWTBytes:
		return nil, refuse("token longer than %d bytes", maxJWTBytes)
	case !framework.CIDRsContain(r.Token.BoundCIDRs, req.RemoteAddr):
		return nil, refuse("client address is outside token_bound_cidrs")
	}

	std, claims, issuer, err := b.verify(ctx, cfg, token)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(std, r, b.now()); err != nil {
		return nil, err
	}
	for _, want := range []string{cfg.BoundIssuer, issuer} {
		if want != "" && std.Issuer != want {
			return nil, refuse("iss does not match the bound issuer")
		}
	}
	if len(r.BoundAudiences) == 0 && len(std.Audience) > 0 {
		// A token minted for some other audience must not be replayable
		// here just because the role forgot to bind one (Vault's rule).
		return nil, refuse("token has an aud claim but the role binds no audience")
	}
	if len(r.BoundAudiences) > 0 && !slices.ContainsFunc(r.BoundAudiences, std.Audience.Contains) {
		return nil, refuse("aud matches none of the bound audiences")
	}
	if r.BoundSubject != "" && std.Subject != r.BoundSubject {
		return nil, refuse("sub does not match the bound subject")
	}
	if err := checkBoundClaims(claims, r.BoundClaims, r.BoundClaimsType == "glob"); err != nil {
		return nil, refuse("%v", err)
	}

	user, err := userName(claims, r)
	if err != nil {
		return nil, refuse("%v", err)
	}
	mapped, err := mappedMetadata(claims, r.ClaimMappings)
	if err != nil {
		return nil, refuse("%v", err)
	}
	meta := maps.Clone(mapped)
	meta[reservedMetadataRole] = name
	if r.GroupsClaim != "" {
		g, err := groups(claims, r.GroupsClaim)
		if err != nil {
			return nil, refuse("%v", err)
		}
		meta[metadataGroups] = strings.Join(g, ",")
	}

	auth := &logical.Auth{
		DisplayName:  user,
		Metadata:     meta,
		Alias:        &logical.Alias{Name: user, Metadata: mapped},
		InternalData: map[string]any{"role": name},
	}
	r.Token.PopulateAuth(auth)
	return auth, nil
}

// verify checks the token's signature and algorithm against the
// configured keys and returns its registered claims, all claims, and the
// issuer discovery requires (empty unless OIDC discovery is configured).
func (b *backend) verify(ctx context.Context, cfg *config, token string) (*josejwt.Claims, map[string]any, string, error) {
	// ParseSigned refuses any alg outside the list, so "none" and HMAC
	// never reach a key.
	tok, err := josejwt.ParseSigned(token, cfg.algs())
	if err != nil {
		return nil, nil, "", refuse("token does not parse as a signed JWT with an allowed algorithm")
	}
	if len(tok.Headers) != 1 {
		return nil, nil, "", refuse("token must have exactly one signature")
	}
	kid, alg := tok.Headers[0].KeyID, tok.Headers[0].Algorithm

	var candidates []any
	var issuer string
	if src := cfg.source(); src.url != "" {
		set, err := b.keys.get(ctx, b, src, kid)
		if err != nil {
			return nil, nil, "", err
		}
		for _, k := range set.byKid(kid, alg) {
			candidates = append(candidates, k.Key)
		}
		issuer = set.issuer
	} else {
		keys, err := cfg.publicKeys()
		if err != nil {
			return nil, nil, "", errCorruptRecord
		}
		for _, k := range keys {
			candidates = append(candidates, k)
		}
	}
	if len(candidates) == 0 {
		return nil, nil, "", refuse("no key matches the token's kid and alg")
	}

	var std josejwt.Claims
	var payload json.RawMessage
	verified := false
	for _, k := range candidates {
		if err := tok.Claims(k, &std, &payload); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, nil, "", refuse("signature does not verify with any candidate key, or the claims do not decode")
	}
	// Decoded again with UseNumber so numeric claims keep their spelling.
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, nil, "", refuse("claims are not a JSON object")
	}
	return &std, claims, issuer, nil
}

// checkTimes applies exp (required), nbf and iat with the role's leeways.
func checkTimes(c *josejwt.Claims, r *role, now time.Time) error {
	skew, expLeeway, nbfLeeway := r.leeways()
	if c.Expiry == nil {
		return refuse("token has no exp claim")
	}
	if now.After(c.Expiry.Time().Add(skew + expLeeway)) {
		return refuse("token has expired")
	}
	if c.NotBefore != nil && now.Add(skew+nbfLeeway).Before(c.NotBefore.Time()) {
		return refuse("token is not valid yet (nbf)")
	}
	if c.IssuedAt != nil && now.Add(skew).Before(c.IssuedAt.Time()) {
		return refuse("token was issued in the future (iat)")
	}
	return nil
}

// renew lets a token live on while its role exists with the token
// policies it had at login; TTLs come from the role as it is now.
func (b *backend) renew(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	name, _ := req.Auth.InternalData["role"].(string)
	if name == "" {
		return nil, logical.InvalidRequest("the token names no role; it cannot be renewed")
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.InvalidRequest("role %q no longer exists; the token cannot be renewed", name)
	}
	if !slices.Equal(framework.NormalizePolicies(r.Token.Policies), framework.NormalizePolicies(req.Auth.Policies)) {
		return nil, logical.InvalidRequest("the policies of role %q changed since login; the token cannot be renewed", name)
	}
	a := *req.Auth
	a.TTL, a.MaxTTL, a.Period = r.Token.TTL, r.Token.MaxTTL, r.Token.Period
	return &logical.Response{Auth: &a}, nil
}
