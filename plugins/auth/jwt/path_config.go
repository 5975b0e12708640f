package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

const configKey = "config"

// defaultAlgs are accepted when jwt_supported_algs is empty. The list is
// also the whole set that may be configured: "none" and HMAC algorithms
// are never accepted, since a verifier holding only public keys must not
// be tricked into treating one as a shared secret.
var defaultAlgs = []string{
	string(jose.RS256), string(jose.RS384), string(jose.RS512),
	string(jose.PS256), string(jose.PS384), string(jose.PS512),
	string(jose.ES256), string(jose.ES384), string(jose.ES512),
	string(jose.EdDSA),
}

// minRSABits is the smallest RSA key accepted, in PEM config and in JWKS.
const minRSABits = 2048

// config is the mount's validation configuration, stored under "config".
// A write replaces it whole, as Vault's does.
type config struct {
	OIDCDiscoveryURL     string   `json:"oidc_discovery_url"`
	OIDCDiscoveryCAPEM   string   `json:"oidc_discovery_ca_pem"`
	JWKSURL              string   `json:"jwks_url"`
	JWKSCAPEM            string   `json:"jwks_ca_pem"`
	JWTValidationPubKeys []string `json:"jwt_validation_pubkeys"`
	JWTSupportedAlgs     []string `json:"jwt_supported_algs"`
	BoundIssuer          string   `json:"bound_issuer"`
	DefaultRole          string   `json:"default_role"`
}

// validate checks the configuration as written by a client. It does not
// touch the network; remote sources are checked by the caller.
func (c *config) validate() error {
	n := 0
	for _, set := range []bool{c.OIDCDiscoveryURL != "", c.JWKSURL != "", len(c.JWTValidationPubKeys) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return logical.InvalidRequest("exactly one of oidc_discovery_url, jwks_url and jwt_validation_pubkeys must be set")
	}
	if c.JWKSCAPEM != "" && c.JWKSURL == "" {
		return logical.InvalidRequest("jwks_ca_pem requires jwks_url")
	}
	if c.OIDCDiscoveryCAPEM != "" && c.OIDCDiscoveryURL == "" {
		return logical.InvalidRequest("oidc_discovery_ca_pem requires oidc_discovery_url")
	}
	for name, u := range map[string]string{"jwks_url": c.JWKSURL, "oidc_discovery_url": c.OIDCDiscoveryURL} {
		if u == "" {
			continue
		}
		if err := checkURL(u); err != nil {
			return logical.InvalidRequest("%s: %v", name, err)
		}
	}
	for name, p := range map[string]string{"jwks_ca_pem": c.JWKSCAPEM, "oidc_discovery_ca_pem": c.OIDCDiscoveryCAPEM} {
		if p == "" {
			continue
		}
		if _, err := certPool(p); err != nil {
			return logical.InvalidRequest("%s: %v", name, err)
		}
	}
	if _, err := c.publicKeys(); err != nil {
		return logical.InvalidRequest("jwt_validation_pubkeys: %v", err)
	}
	for _, a := range c.JWTSupportedAlgs {
		if !slices.Contains(defaultAlgs, a) {
			return logical.InvalidRequest("jwt_supported_algs: %q is not supported; allowed: %s", a, strings.Join(defaultAlgs, ", "))
		}
	}
	return nil
}

// algs returns the signature algorithms a JWT may use.
func (c *config) algs() []jose.SignatureAlgorithm {
	names := c.JWTSupportedAlgs
	if len(names) == 0 {
		names = defaultAlgs
	}
	out := make([]jose.SignatureAlgorithm, len(names))
	for i, n := range names {
		out[i] = jose.SignatureAlgorithm(n)
	}
	return out
}

// source names where the signing keys come from; it is zero for PEM keys.
func (c *config) source() keySource {
	switch {
	case c.JWKSURL != "":
		return keySource{discovery: false, url: c.JWKSURL, caPEM: c.JWKSCAPEM}
	case c.OIDCDiscoveryURL != "":
		return keySource{discovery: true, url: c.OIDCDiscoveryURL, caPEM: c.OIDCDiscoveryCAPEM}
	}
	return keySource{}
}

// publicKeys parses jwt_validation_pubkeys. Each entry is a PEM public key
// (PKIX or PKCS#1) or a certificate whose key is used.
func (c *config) publicKeys() ([]crypto.PublicKey, error) {
	out := make([]crypto.PublicKey, 0, len(c.JWTValidationPubKeys))
	for i, p := range c.JWTValidationPubKeys {
		k, err := parsePublicKeyPEM(p)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		out = append(out, k)
	}
	return out, nil
}

func parsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(s)))
	if block == nil {
		return nil, fmt.Errorf("not a PEM block")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("more than one PEM block; give each key as its own list entry")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("PEM block of type %q is not a public key or certificate", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse the public key")
	}
	if err := checkKeyType(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkKeyType accepts the key types the allowed algorithms use.
func checkKeyType(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too short (minimum %d)", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a valid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("scheme must be https or http")
	}
	if u.Host == "" {
		return fmt.Errorf("URL has no host")
	}
	if u.User != nil {
		return fmt.Errorf("URL must not contain credentials")
	}
	return nil
}

func (b *backend) pathConfig() *framework.Path {
	return &framework.Path{
		Pattern: "config",
		Fields: map[string]*framework.FieldSchema{
			"oidc_discovery_url":     {Type: framework.TypeString, Description: "OIDC discovery URL (the issuer, without /.well-known/openid-configuration)."},
			"oidc_discovery_ca_pem":  {Type: framework.TypeString, Description: "PEM CA certificates for the discovery and JWKS connections; system roots if unset."},
			"jwks_url":               {Type: framework.TypeString, Description: "URL of a JSON Web Key Set with the signing keys."},
			"jwks_ca_pem":            {Type: framework.TypeString, Description: "PEM CA certificates for the JWKS connection; system roots if unset."},
			"jwt_validation_pubkeys": {Type: framework.TypeCommaStringSlice, Description: "PEM public keys (or certificates) that verify JWT signatures."},
			"jwt_supported_algs":     {Type: framework.TypeCommaStringSlice, Description: "Accepted signature algorithms; default all of RS*, PS*, ES* and EdDSA."},
			"bound_issuer":           {Type: framework.TypeString, Description: "Value the iss claim must equal."},
			"default_role":           {Type: framework.TypeString, Description: "Role used by logins that name none."},
		},
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.configRead,
			logical.UpdateOperation: b.configWrite,
		},
		HelpSynopsis: "Configure how JWT signatures are verified.",
		HelpDescription: `Exactly one key source must be set: jwt_validation_pubkeys, jwks_url or
oidc_discovery_url. Remote sources are fetched once when written and the
write fails if they do not yield a usable key set. A write replaces the
whole configuration.`,
	}
}

// loadConfig returns the stored configuration, or nil if there is none.
func loadConfig(ctx context.Context, s logical.Storage) (*config, error) {
	e, err := s.Get(ctx, configKey)
	if err != nil || e == nil {
		return nil, err
	}
	var c config
	if err := e.DecodeJSON(&c); err != nil {
		return nil, errCorruptRecord
	}
	return &c, nil
}

func (b *backend) configRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c, err := loadConfig(ctx, s)
	if err != nil || c == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"oidc_discovery_url":     c.OIDCDiscoveryURL,
		"oidc_discovery_ca_pem":  c.OIDCDiscoveryCAPEM,
		"jwks_url":               c.JWKSURL,
		"jwks_ca_pem":            c.JWKSCAPEM,
		"jwt_validation_pubkeys": nonNil(c.JWTValidationPubKeys),
		"jwt_supported_algs":     nonNil(c.JWTSupportedAlgs),
		"bound_issuer":           c.BoundIssuer,
		"default_role":           c.DefaultRole,
	}}, nil
}

func (b *backend) configWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c := &config{
		OIDCDiscoveryURL:     strings.TrimSpace(d.Get("oidc_discovery_url").(string)),
		OIDCDiscoveryCAPEM:   strings.TrimSpace(d.Get("oidc_discovery_ca_pem").(string)),
		JWKSURL:              strings.TrimSpace(d.Get("jwks_url").(string)),
		JWKSCAPEM:            strings.TrimSpace(d.Get("jwks_ca_pem").(string)),
		JWTValidationPubKeys: nonEmpty(d.Get("jwt_validation_pubkeys").([]string)),
		JWTSupportedAlgs:     nonEmpty(d.Get("jwt_supported_algs").([]string)),
		BoundIssuer:          d.Get("bound_issuer").(string),
		DefaultRole:          strings.ToLower(strings.TrimSpace(d.Get("default_role").(string))),
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	var resp *logical.Response
	if src := c.source(); src.url != "" {
		// Fetch now so a wrong URL, CA or key set fails the write rather
		// than every login; the result seeds the cache.
		if err := b.keys.prime(ctx, b, src); err != nil {
			field := "jwks_url"
			if src.discovery {
				field = "oidc_discovery_url"
			}
			return nil, logical.InvalidRequest("%s: %v", field, err)
		}
		if strings.HasPrefix(src.url, "http:") {
			resp = &logical.Response{}
			resp.AddWarning("the key source uses plain http: anyone on the network path can substitute signing keys")
		}
	}
	e, err := logical.StorageEntryJSON(configKey, c)
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, e); err != nil {
		return nil, err
	}
	return resp, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nonEmpty drops blank entries (a trailing comma, an empty list element).
func nonEmpty(in []string) []string {
	var out []string
	for _, v := range in {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
