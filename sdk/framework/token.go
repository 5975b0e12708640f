package framework

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// TokenParams are the token_* settings an auth method keeps on each role
// or user and copies into the Auth it returns at login, with the names and
// meanings Vault's auth methods use.
type TokenParams struct {
	TTL             time.Duration `json:"token_ttl"`
	MaxTTL          time.Duration `json:"token_max_ttl"`
	Period          time.Duration `json:"token_period"`
	ExplicitMaxTTL  time.Duration `json:"token_explicit_max_ttl"`
	Policies        []string      `json:"token_policies"`
	NoDefaultPolicy bool          `json:"token_no_default_policy"`
	NumUses         int           `json:"token_num_uses"`
	BoundCIDRs      []string      `json:"token_bound_cidrs"`
	// Type is "service" or "default" (both issue service tokens).
	Type string `json:"token_type"`
}

// MaxDurationSeconds bounds every token duration (100 years): larger
// values would overflow time.Duration.
const MaxDurationSeconds = 100 * 365 * 24 * 3600

// TokenFields returns the schema of the token_* fields, to merge into a
// path's Fields with AddTokenFields.
func TokenFields() map[string]*FieldSchema {
	return map[string]*FieldSchema{
		"token_ttl":               {Type: TypeDurationSecond, Description: "Initial TTL of issued tokens."},
		"token_max_ttl":           {Type: TypeDurationSecond, Description: "Maximum lifetime of issued tokens, renewals included."},
		"token_period":            {Type: TypeDurationSecond, Description: "If set, issued tokens are periodic: each renewal resets the TTL to this value."},
		"token_explicit_max_ttl":  {Type: TypeDurationSecond, Description: "Hard cap on the lifetime of issued tokens, periodic ones included."},
		"token_policies":          {Type: TypeCommaStringSlice, Description: "Policies attached to issued tokens."},
		"token_no_default_policy": {Type: TypeBool, Description: "Do not attach the default policy to issued tokens."},
		"token_num_uses":          {Type: TypeInt, Description: "Number of uses of issued tokens; 0 is unlimited."},
		"token_bound_cidrs":       {Type: TypeCommaStringSlice, Description: "Client addresses or CIDR blocks that may use issued tokens."},
		"token_type":              {Type: TypeString, Default: "default", AllowedValues: []any{"default", "service"}, Description: "Type of issued tokens."},
	}
}

// AddTokenFields merges TokenFields into fields and returns it.
func AddTokenFields(fields map[string]*FieldSchema) map[string]*FieldSchema {
	if fields == nil {
		fields = map[string]*FieldSchema{}
	}
	for k, v := range TokenFields() {
		fields[k] = v
	}
	return fields
}

// ParseTokenFields sets the token_* values present in d (fields the
// request leaves out keep their current value, so it serves create and
// update alike) and checks the result.
func (p *TokenParams) ParseTokenFields(d *FieldData) error {
	var tooLong []string
	dur := func(name string, dst *time.Duration) {
		if v, ok := d.GetOk(name); ok {
			if v.(int) > MaxDurationSeconds {
				tooLong = append(tooLong, name)
				return
			}
			*dst = time.Duration(v.(int)) * time.Second
		}
	}
	dur("token_ttl", &p.TTL)
	dur("token_max_ttl", &p.MaxTTL)
	dur("token_period", &p.Period)
	dur("token_explicit_max_ttl", &p.ExplicitMaxTTL)
	if len(tooLong) > 0 {
		return logical.InvalidRequest("%s: durations are limited to 100 years", strings.Join(tooLong, ", "))
	}
	if v, ok := d.GetOk("token_policies"); ok {
		p.Policies = NormalizePolicies(v.([]string))
		if slices.Contains(p.Policies, "root") {
			// The kernel refuses to mint it at login; refusing here keeps a
			// login from learning the credentials were right first.
			return logical.InvalidRequest("token_policies: auth methods cannot issue tokens with the root policy")
		}
	}
	if v, ok := d.GetOk("token_no_default_policy"); ok {
		p.NoDefaultPolicy = v.(bool)
	}
	if v, ok := d.GetOk("token_num_uses"); ok {
		if v.(int) < 0 {
			return logical.InvalidRequest("token_num_uses cannot be negative")
		}
		p.NumUses = v.(int)
	}
	if v, ok := d.GetOk("token_bound_cidrs"); ok {
		cidrs, err := ParseCIDRs(v.([]string))
		if err != nil {
			return logical.InvalidRequest("token_bound_cidrs: %v", err)
		}
		p.BoundCIDRs = cidrs
	}
	if v, ok := d.GetOk("token_type"); ok {
		p.Type = v.(string)
	}
	if p.Type == "" {
		p.Type = "default"
	}
	if p.MaxTTL > 0 && p.TTL > p.MaxTTL {
		return logical.InvalidRequest("token_ttl must not be greater than token_max_ttl")
	}
	return nil
}

// PopulateAuth copies the parameters into a login's Auth. Policies are
// added to those already in a; TTL and MaxTTL are set only when a has none.
func (p *TokenParams) PopulateAuth(a *logical.Auth) {
	a.Policies = NormalizePolicies(append(slices.Clone(a.Policies), p.Policies...))
	if a.TTL == 0 {
		a.TTL = p.TTL
	}
	if a.MaxTTL == 0 {
		a.MaxTTL = p.MaxTTL
	}
	a.Period = p.Period
	a.ExplicitMaxTTL = p.ExplicitMaxTTL
	a.NoDefaultPolicy = p.NoDefaultPolicy
	a.NumUses = p.NumUses
	a.BoundCIDRs = slices.Clone(p.BoundCIDRs)
	a.Renewable = true
}

// ResponseData adds the token_* values to a read response's data.
func (p *TokenParams) ResponseData(m map[string]any) {
	m["token_ttl"] = int64(p.TTL / time.Second)
	m["token_max_ttl"] = int64(p.MaxTTL / time.Second)
	m["token_period"] = int64(p.Period / time.Second)
	m["token_explicit_max_ttl"] = int64(p.ExplicitMaxTTL / time.Second)
	m["token_policies"] = nonNil(p.Policies)
	m["token_no_default_policy"] = p.NoDefaultPolicy
	m["token_num_uses"] = p.NumUses
	m["token_bound_cidrs"] = nonNil(p.BoundCIDRs)
	typ := p.Type
	if typ == "" {
		typ = "default"
	}
	m["token_type"] = typ
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NormalizePolicies lowercases, trims, sorts and deduplicates policy
// names, dropping empty ones.
func NormalizePolicies(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ParseCIDRs checks a list of addresses or CIDR blocks and returns them in
// canonical CIDR form (a bare address becomes a /32 or /128).
func ParseCIDRs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR block", s)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, pfx.Masked().String())
	}
	return out, nil
}

// CIDRsContain reports whether addr (an IP, optionally with a port) lies
// in one of cidrs. An empty list contains every address; an address that
// does not parse is in none.
func CIDRsContain(cidrs []string, addr string) bool {
	if len(cidrs) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, perr := netip.ParseAddrPort(addr)
		if perr != nil {
			return false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	for _, c := range cidrs {
		if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Contains(ip) {
			return true
		}
	}
	return false
}
