package jwt

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

const rolePrefix = "role/"

// Leeway defaults, in seconds. Stored as given, so a read answers what was
// written; 0 means the default and a negative value means none (Vault).
const (
	defaultClockSkewLeeway = 60
	reservedMetadataRole   = "role"
	metadataGroups         = "groups"
)

// role binds what a JWT must contain to the token it earns.
type role struct {
	RoleType             string            `json:"role_type"`
	BoundAudiences       []string          `json:"bound_audiences"`
	BoundSubject         string            `json:"bound_subject"`
	BoundClaimsType      string            `json:"bound_claims_type"`
	BoundClaims          map[string]any    `json:"bound_claims"` // values: string or list of strings
	ClaimMappings        map[string]string `json:"claim_mappings"`
	UserClaim            string            `json:"user_claim"`
	UserClaimJSONPointer bool              `json:"user_claim_json_pointer"`
	GroupsClaim          string            `json:"groups_claim"`
	// Leeways in seconds; see the constants above and leeways().
	ClockSkewLeeway  int64 `json:"clock_skew_leeway"`
	ExpirationLeeway int64 `json:"expiration_leeway"`
	NotBeforeLeeway  int64 `json:"not_before_leeway"`

	Token framework.TokenParams `json:"token_params"`
}

// leeways returns the effective clock skew, extra exp and extra nbf leeways.
func (r *role) leeways() (skew, exp, nbf time.Duration) {
	sec := func(v, def int64) time.Duration {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return time.Duration(def) * time.Second
		}
		return time.Duration(v) * time.Second
	}
	return sec(r.ClockSkewLeeway, defaultClockSkewLeeway), sec(r.ExpirationLeeway, 0), sec(r.NotBeforeLeeway, 0)
}

func (b *backend) pathRoleList() *framework.Path {
	return &framework.Path{
		Pattern: "role/?",
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ListOperation: b.roleList,
		},
		HelpSynopsis: "List the roles.",
	}
}

func (b *backend) pathRole() *framework.Path {
	return &framework.Path{
		Pattern: "role/" + framework.GenericNameRegex("name"),
		Fields: framework.AddTokenFields(map[string]*framework.FieldSchema{
			"name":                    {Type: framework.TypeString, Description: "Name of the role (case-insensitive)."},
			"role_type":               {Type: framework.TypeString, Default: "jwt", Description: `Type of the role; only "jwt" is supported.`},
			"bound_audiences":         {Type: framework.TypeCommaStringSlice, Description: "The aud claim must contain one of these."},
			"bound_subject":           {Type: framework.TypeString, Description: "Value the sub claim must equal."},
			"bound_claims_type":       {Type: framework.TypeString, Default: "string", AllowedValues: []any{"string", "glob"}, Description: `How bound_claims values match: "string" (exact) or "glob" ("*" matches any run of characters).`},
			"bound_claims":            {Type: framework.TypeMap, Description: "Map of claim (name or JSON pointer) to a value or list of values, one of which the claim must match."},
			"claim_mappings":          {Type: framework.TypeKVPairs, Description: "Map of claim (name or JSON pointer) to the metadata key it is copied to."},
			"user_claim":              {Type: framework.TypeString, Default: "sub", Description: "Claim whose value names the user (alias and display name)."},
			"user_claim_json_pointer": {Type: framework.TypeBool, Description: "Interpret user_claim as a JSON pointer."},
			"groups_claim":            {Type: framework.TypeString, Description: "Claim (name or JSON pointer) holding the user's groups, copied to the groups metadata key."},
			"clock_skew_leeway":       {Type: framework.TypeString, Default: "60", Description: "Leeway for exp, nbf and iat, in seconds or a duration; 0 means 60s, -1 none."},
			"expiration_leeway":       {Type: framework.TypeString, Description: "Extra leeway for exp, in seconds or a duration; 0 or -1 means none."},
			"not_before_leeway":       {Type: framework.TypeString, Description: "Extra leeway for nbf, in seconds or a duration; 0 or -1 means none."},
			"policies":                {Type: framework.TypeCommaStringSlice, Description: "Deprecated: use token_policies."},
		}),
		ExistenceCheck: b.roleExists,
		Operations: map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation:   b.roleRead,
			logical.CreateOperation: b.roleWrite,
			logical.UpdateOperation: b.roleWrite,
			logical.DeleteOperation: b.roleDelete,
		},
		HelpSynopsis: "Manage a role: the JWTs it accepts and the token it issues.",
		HelpDescription: `A role needs at least one of bound_audiences, bound_subject, bound_claims
and token_bound_cidrs. An update changes only the fields it sets.`,
	}
}

func roleName(d *framework.FieldData) string {
	return strings.ToLower(d.Get("name").(string))
}

// loadRole returns the stored role, or nil if there is none.
func loadRole(ctx context.Context, s logical.Storage, name string) (*role, error) {
	if name == "" {
		return nil, nil
	}
	e, err := s.Get(ctx, rolePrefix+name)
	if err != nil || e == nil {
		return nil, err
	}
	var r role
	if err := e.DecodeJSON(&r); err != nil {
		return nil, errCorruptRecord
	}
	return &r, nil
}

func (b *backend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	r, err := loadRole(ctx, s, roleName(d))
	return r != nil, err
}

func (b *backend) roleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(ctx, rolePrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(keys), nil
}

func (b *backend) roleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, roleName(d))
	if err != nil || r == nil {
		return nil, err
	}
	boundClaims := r.BoundClaims
	if boundClaims == nil {
		boundClaims = map[string]any{}
	}
	mappings := r.ClaimMappings
	if mappings == nil {
		mappings = map[string]string{}
	}
	data := map[string]any{
		"role_type":               r.RoleType,
		"bound_audiences":         nonNil(r.BoundAudiences),
		"bound_subject":           r.BoundSubject,
		"bound_claims_type":       r.BoundClaimsType,
		"bound_claims":            boundClaims,
		"claim_mappings":          mappings,
		"user_claim":              r.UserClaim,
		"user_claim_json_pointer": r.UserClaimJSONPointer,
		"groups_claim":            r.GroupsClaim,
		"clock_skew_leeway":       r.ClockSkewLeeway,
		"expiration_leeway":       r.ExpirationLeeway,
		"not_before_leeway":       r.NotBeforeLeeway,
	}
	r.Token.ResponseData(data)
	return &logical.Response{Data: data}, nil
}

func (b *backend) roleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	return nil, s.Delete(ctx, rolePrefix+roleName(d))
}

// roleWrite creates a role or updates the fields the request sets.
func (b *backend) roleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	name := roleName(d)
	if name == "" {
		return nil, logical.InvalidRequest("missing role name")
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &role{RoleType: "jwt", BoundClaimsType: "string", UserClaim: "sub", ClockSkewLeeway: defaultClockSkewLeeway}
	}

	if v, ok := d.GetOk("role_type"); ok {
		r.RoleType = strings.ToLower(strings.TrimSpace(v.(string)))
	}
	switch r.RoleType {
	case "jwt":
	case "oidc":
		return nil, logical.InvalidRequest(`role_type "oidc" (the browser login flow) is not supported; use "jwt"`)
	default:
		return nil, logical.InvalidRequest(`role_type must be "jwt"`)
	}
	if v, ok := d.GetOk("bound_audiences"); ok {
		r.BoundAudiences = nonEmpty(v.([]string))
	}
	if v, ok := d.GetOk("bound_subject"); ok {
		r.BoundSubject = v.(string)
	}
	if v, ok := d.GetOk("bound_claims_type"); ok {
		r.BoundClaimsType = v.(string)
	}
	if v, ok := d.GetOk("bound_claims"); ok {
		bc, err := normalizeBoundClaims(v.(map[string]any))
		if err != nil {
			return nil, logical.InvalidRequest("bound_claims: %v", err)
		}
		r.BoundClaims = bc
	}
	if v, ok := d.GetOk("claim_mappings"); ok {
		r.ClaimMappings = v.(map[string]string)
	}
	if v, ok := d.GetOk("user_claim"); ok {
		r.UserClaim = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("user_claim_json_pointer"); ok {
		r.UserClaimJSONPointer = v.(bool)
	}
	if v, ok := d.GetOk("groups_claim"); ok {
		r.GroupsClaim = strings.TrimSpace(v.(string))
	}
	for field, dst := range map[string]*int64{
		"clock_skew_leeway": &r.ClockSkewLeeway,
		"expiration_leeway": &r.ExpirationLeeway,
		"not_before_leeway": &r.NotBeforeLeeway,
	} {
		if v, ok := d.GetOk(field); ok {
			secs, err := parseLeeway(v.(string))
			if err != nil {
				return nil, logical.InvalidRequest("%s: %v", field, err)
			}
			*dst = secs
		}
	}
	if err := r.Token.ParseTokenFields(d); err != nil {
		return nil, err
	}
	// Vault's legacy field: used only when token_policies is absent.
	if v, ok := d.GetOk("policies"); ok {
		if _, set := d.GetOk("token_policies"); !set {
			r.Token.Policies = framework.NormalizePolicies(v.([]string))
		}
	}

	if err := r.validate(); err != nil {
		return nil, err
	}
	e, err := logical.StorageEntryJSON(rolePrefix+name, r)
	if err != nil {
		return nil, err
	}
	return nil, s.Put(ctx, e)
}

// validate checks the rules that span fields.
func (r *role) validate() error {
	if r.UserClaim == "" {
		return logical.InvalidRequest("user_claim is required")
	}
	if r.UserClaimJSONPointer && !strings.HasPrefix(r.UserClaim, "/") {
		return logical.InvalidRequest("user_claim must be a JSON pointer (start with /) when user_claim_json_pointer is set")
	}
	// Without a binding, any token the issuer ever signed for anyone
	// would log in (Vault's rule).
	if len(r.BoundAudiences) == 0 && r.BoundSubject == "" && len(r.BoundClaims) == 0 && len(r.Token.BoundCIDRs) == 0 {
		return logical.InvalidRequest("must have at least one bound constraint: bound_audiences, bound_subject, bound_claims or token_bound_cidrs")
	}
	seen := map[string]string{}
	for claim, key := range r.ClaimMappings {
		switch {
		case claim == "" || key == "":
			return logical.InvalidRequest("claim_mappings: claims and metadata keys must not be empty")
		case key == reservedMetadataRole:
			return logical.InvalidRequest("claim_mappings: metadata key %q is reserved", key)
		case key == metadataGroups && r.GroupsClaim != "":
			return logical.InvalidRequest("claim_mappings: metadata key %q is reserved when groups_claim is set", key)
		}
		if other, dup := seen[key]; dup {
			return logical.InvalidRequest("claim_mappings: claims %q and %q map to the same metadata key %q", min(claim, other), max(claim, other), key)
		}
		seen[key] = claim
	}
	return nil
}

// normalizeBoundClaims accepts values that are a string or a list of
// strings, as Vault does; lists become []string.
func normalizeBoundClaims(in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if k == "" {
			return nil, fmt.Errorf("claim names must not be empty")
		}
		switch v := v.(type) {
		case string:
			out[k] = v
		case []any:
			list := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("claim %q: list values must be strings", k)
				}
				list = append(list, s)
			}
			out[k] = list
		case []string:
			out[k] = v
		default:
			return nil, fmt.Errorf("claim %q: value must be a string or a list of strings", k)
		}
	}
	return out, nil
}

// parseLeeway reads seconds ("90", "-1") or a Go duration ("2m", "-1s").
func parseLeeway(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		n = int64(d / time.Second)
	}
	switch {
	case n < 0:
		return -1, nil
	case n > maxLeeway:
		// A leeway of days would all but disable expiry; it is a typo.
		return 0, fmt.Errorf("must not exceed %d seconds", maxLeeway)
	}
	return n, nil
}

// maxLeeway bounds every leeway, in seconds.
const maxLeeway = 24 * 60 * 60
