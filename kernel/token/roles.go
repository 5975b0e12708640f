package token

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

const (
	// rolesPrefix holds one JSON role per key: roles/<name>.
	rolesPrefix = "roles/"

	// typeDefaultService is a role's token_type when it does not force
	// "service": the create request's type is used, service by default.
	typeDefaultService = "default-service"
)

// pathSuffixSanitize is Vault's rule for a role's path_suffix, anchored
// (Vault matches it anywhere in the value).
var pathSuffixSanitize = regexp.MustCompile(`^\w[\w-.]+\w$`)

// role is a token role as stored at roles/<name>. The field names and JSON
// keys are Vault's (tsRoleEntry), so an export reads the same.
//
// Period and ExplicitMaxTTL hold what was last written under the legacy
// names "period" and "explicit_max_ttl" (0 once the token_ name was used);
// TokenPeriod and TokenExplicitMaxTTL are the values in force.
type role struct {
	Name                   string        `json:"name"`
	AllowedPolicies        []string      `json:"allowed_policies"`
	DisallowedPolicies     []string      `json:"disallowed_policies"`
	AllowedPoliciesGlob    []string      `json:"allowed_policies_glob"`
	DisallowedPoliciesGlob []string      `json:"disallowed_policies_glob"`
	Orphan                 bool          `json:"orphan"`
	Renewable              bool          `json:"renewable"`
	PathSuffix             string        `json:"path_suffix"`
	Period                 time.Duration `json:"period"`
	ExplicitMaxTTL         time.Duration `json:"explicit_max_ttl"`
	TokenPeriod            time.Duration `json:"token_period"`
	TokenExplicitMaxTTL    time.Duration `json:"token_explicit_max_ttl"`
	TokenType              string        `json:"token_type"`
	TokenNoDefaultPolicy   bool          `json:"token_no_default_policy"`
	TokenNumUses           int           `json:"token_num_uses"`
	AllowedEntityAliases   []string      `json:"allowed_entity_aliases"`
}

// restrictsPolicies reports whether the role has policy lists of its own.
// Such a role replaces the "subset of the caller's policies" rule with its
// lists; a role without them leaves the usual rules in force.
func (r *role) restrictsPolicies() bool {
	return len(r.AllowedPolicies) > 0 || len(r.DisallowedPolicies) > 0 ||
		len(r.AllowedPoliciesGlob) > 0 || len(r.DisallowedPoliciesGlob) > 0
}

// role reads roles/<name>; (nil, nil) when there is no such role.
func (s *Store) role(ctx context.Context, name string) (*role, error) {
	se, err := s.view.Get(ctx, rolesPrefix+name)
	if err != nil {
		return nil, fmt.Errorf("token: read role: %w", err)
	}
	if se == nil {
		return nil, nil
	}
	r := new(role)
	if err := json.Unmarshal(se.Value, r); err != nil {
		return nil, fmt.Errorf("token: decode role: %w", err)
	}
	// As Vault: the legacy fields stand in for the token_ ones that a role
	// written before them lacks, and the type defaults to default-service.
	if r.TokenPeriod == 0 {
		r.TokenPeriod = r.Period
	}
	if r.TokenExplicitMaxTTL == 0 {
		r.TokenExplicitMaxTTL = r.ExplicitMaxTTL
	}
	if r.TokenType == "" || r.TokenType == "default" {
		r.TokenType = typeDefaultService
	}
	return r, nil
}

// rolePaths are the auth/token/ paths of token roles. createFields are the
// fields of auth/token/create, which create/<role_name> shares.
func (s *Store) rolePaths(createFields map[string]*framework.FieldSchema) []*framework.Path {
	nameField := &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the role."}
	withRole := map[string]*framework.FieldSchema{"role_name": nameField}
	for k, v := range createFields {
		withRole[k] = v
	}
	policyList := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: desc}
	}
	duration := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: desc}
	}
	return []*framework.Path{
		{
			Pattern:      "roles/?",
			Fields:       map[string]*framework.FieldSchema{},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: s.handleRoleList},
			HelpSynopsis: "List the token roles.",
		},
		{
			Pattern: "roles/" + framework.GenericNameRegex("role_name"),
			Fields: map[string]*framework.FieldSchema{
				"role_name":                nameField,
				"allowed_policies":         policyList("Policies tokens of this role may have, whether or not the caller holds them; when empty (and no other list is set) a token's policies must be a subset of the caller's."),
				"disallowed_policies":      policyList("Policies tokens of this role may not have."),
				"allowed_policies_glob":    policyList("Like allowed_policies, as glob patterns ('*' matches anything)."),
				"disallowed_policies_glob": policyList("Like disallowed_policies, as glob patterns ('*' matches anything)."),
				"orphan":                   {Type: framework.TypeBool, Description: "Create tokens without a parent."},
				"renewable":                {Type: framework.TypeBool, Default: true, Description: "Whether tokens of this role can be renewed."},
				"path_suffix":              {Type: framework.TypeString, Description: "Suffix of the tokens' path, after auth/token/create/<role_name>/; must match " + pathSuffixSanitize.String() + " and not contain '..'."},
				"period":                   duration("Deprecated alias of token_period."),
				"explicit_max_ttl":         duration("Deprecated alias of token_explicit_max_ttl."),
				"token_period":             duration("Make tokens periodic with this renewal period; applied again at each renewal."),
				"token_explicit_max_ttl":   duration("Hard limit on the tokens' life; applied again at each renewal."),
				"token_type":               {Type: framework.TypeString, Description: `"default-service" (the default) or "service"; batch tokens are not supported.`},
				"token_no_default_policy":  {Type: framework.TypeBool, Description: `Do not add the "default" policy (for roles with policy lists, as Vault).`},
				"token_num_uses":           {Type: framework.TypeInt, Description: "Maximum number of uses of the tokens; 0 means unlimited."},
				"allowed_entity_aliases":   policyList("Entity aliases create requests may name (glob patterns allowed); stored and checked, Ward has no identity store yet."),
				"bound_cidrs":              policyList("Not supported; must be empty."),
				"token_bound_cidrs":        policyList("Not supported; must be empty."),
			},
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   s.handleRoleRead,
				logical.CreateOperation: s.handleRoleWrite,
				logical.UpdateOperation: s.handleRoleWrite,
				logical.DeleteOperation: s.handleRoleDelete,
			},
			ExistenceCheck: s.roleExists,
			HelpSynopsis:   "Read, write or delete a token role.",
		},
		{
			Pattern:      "create/" + framework.GenericNameRegex("role_name"),
			Fields:       withRole,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.handleCreateWithRole},
			HelpSynopsis: "Create a token through a role.",
		},
	}
}

func (s *Store) roleExists(ctx context.Context, _ *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := s.role(ctx, d.Get("role_name").(string))
	return r != nil, err
}

func (s *Store) handleRoleList(ctx context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	keys, err := s.view.List(ctx, rolesPrefix)
	if err != nil {
		return nil, fmt.Errorf("token: list roles: %w", err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasSuffix(k, "/") })
	if len(keys) == 0 {
		return nil, nil // 404, as a list of nothing is in Vault
	}
	slices.Sort(keys)
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

func (s *Store) handleRoleRead(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	r, err := s.role(ctx, d.Get("role_name").(string))
	if err != nil || r == nil {
		return nil, err
	}
	nonNil := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return slices.Clone(l)
	}
	data := map[string]any{
		"name":                     r.Name,
		"allowed_policies":         nonNil(r.AllowedPolicies),
		"disallowed_policies":      nonNil(r.DisallowedPolicies),
		"allowed_policies_glob":    nonNil(r.AllowedPoliciesGlob),
		"disallowed_policies_glob": nonNil(r.DisallowedPoliciesGlob),
		"orphan":                   r.Orphan,
		"renewable":                r.Renewable,
		"path_suffix":              r.PathSuffix,
		"period":                   int64(r.Period / time.Second),
		"token_period":             int64(r.TokenPeriod / time.Second),
		"explicit_max_ttl":         int64(r.ExplicitMaxTTL / time.Second),
		"token_explicit_max_ttl":   int64(r.TokenExplicitMaxTTL / time.Second),
		"token_type":               r.TokenType,
		"token_no_default_policy":  r.TokenNoDefaultPolicy,
		"allowed_entity_aliases":   slices.Clone(r.AllowedEntityAliases), // null when unset, as Vault
	}
	if r.TokenNumUses > 0 { // as Vault: only when set
		data["token_num_uses"] = r.TokenNumUses
	}
	return &logical.Response{Data: data}, nil
}

func (s *Store) handleRoleDelete(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	s.rolesMu.Lock()
	defer s.rolesMu.Unlock()
	if err := s.view.Delete(ctx, rolesPrefix+d.Get("role_name").(string)); err != nil {
		return nil, fmt.Errorf("token: delete role: %w", err)
	}
	return nil, nil
}

// handleRoleWrite creates or updates a role with Vault's rules: a new role
// gets the defaults of absent fields, an existing one keeps them. It serves
// both operations and decides which one it is from storage, under rolesMu.
func (s *Store) handleRoleWrite(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	name := d.Get("role_name").(string)
	s.rolesMu.Lock()
	defer s.rolesMu.Unlock()
	r, err := s.role(ctx, name)
	if err != nil {
		return nil, err
	}
	create := r == nil
	if create {
		r = &role{Name: name, TokenType: typeDefaultService}
	}
	// field returns the value to use: the request's, else the default on
	// create, else nothing (keep the stored value).
	field := func(k string) (any, bool) {
		if v, ok := d.GetOk(k); ok {
			return v, true
		}
		if create {
			return d.Get(k), true
		}
		return nil, false
	}
	if v, ok := field("orphan"); ok {
		r.Orphan = v.(bool)
	}
	if v, ok := field("renewable"); ok {
		r.Renewable = v.(bool)
	}
	if v, ok := field("token_no_default_policy"); ok {
		r.TokenNoDefaultPolicy = v.(bool)
	}
	if v, ok := field("path_suffix"); ok {
		suffix := v.(string)
		if suffix != "" && !pathSuffixSanitize.MatchString(suffix) {
			return nil, logical.InvalidRequest("given role path suffix contains invalid characters; must match %s", pathSuffixSanitize)
		}
		if strings.Contains(suffix, "..") {
			return nil, logical.InvalidRequest("error registering path suffix: path cannot contain parent references")
		}
		r.PathSuffix = suffix
	}
	// Allowed lists are sanitized like token policies (so "root" stands
	// alone); disallowed lists are only trimmed, lower-cased and deduplicated.
	if v, ok := field("allowed_policies"); ok {
		r.AllowedPolicies = sanitizePolicies(v.([]string))
	}
	if v, ok := field("allowed_policies_glob"); ok {
		r.AllowedPoliciesGlob = sanitizePolicies(v.([]string))
	}
	if v, ok := field("disallowed_policies"); ok {
		r.DisallowedPolicies = lowerDedupe(v.([]string))
	}
	if v, ok := field("disallowed_policies_glob"); ok {
		r.DisallowedPoliciesGlob = lowerDedupe(v.([]string))
	}
	if v, ok := d.GetOk("allowed_entity_aliases"); ok {
		r.AllowedEntityAliases = lowerDedupe(v.([]string))
	}
	for _, k := range []string{"bound_cidrs", "token_bound_cidrs"} {
		if v, ok := d.GetOk(k); ok && len(lowerDedupe(v.([]string))) > 0 {
			return nil, logical.InvalidRequest("%s is not supported: tokens cannot be bound to CIDRs yet", k)
		}
	}
	if v, ok := d.GetOk("token_type"); ok {
		switch t := v.(string); t {
		case TypeService, typeDefaultService:
			r.TokenType = t
		case "batch", "default-batch":
			return nil, logical.InvalidRequest("batch tokens are not supported")
		default:
			return nil, logical.InvalidRequest("invalid 'token_type' value %q", t)
		}
	}
	if v, ok := field("token_num_uses"); ok {
		if v.(int) < 0 {
			return nil, logical.InvalidRequest("error parsing role fields: 'token_num_uses' cannot be negative")
		}
		r.TokenNumUses = v.(int)
	}

	// Both generations of the duration fields, as Vault: a token_ field
	// wins over (and clears) its legacy alias; the legacy one sets both.
	var warnings []string
	seconds := func(v any) time.Duration { return time.Duration(v.(int)) * time.Second }
	durations := []struct {
		current, legacy  string
		token, legacyDst *time.Duration
	}{
		{"token_period", "period", &r.TokenPeriod, &r.Period},
		{"token_explicit_max_ttl", "explicit_max_ttl", &r.TokenExplicitMaxTTL, &r.ExplicitMaxTTL},
	}
	for _, f := range durations {
		cur, curOK := d.GetOk(f.current)
		old, oldOK := d.GetOk(f.legacy)
		switch {
		case curOK:
			*f.token, *f.legacyDst = seconds(cur), 0
			if oldOK {
				warnings = append(warnings, fmt.Sprintf("Both '%s' and deprecated '%s' value supplied, ignoring the deprecated value", f.current, f.legacy))
			}
		case oldOK:
			*f.token, *f.legacyDst = seconds(old), seconds(old)
		}
	}
	if r.TokenExplicitMaxTTL > s.maxTTL {
		warnings = append(warnings, fmt.Sprintf(
			"Given explicit max TTL of %d is greater than system/mount allowed value of %d seconds; tokens created against this role are capped at the latter",
			int64(r.TokenExplicitMaxTTL/time.Second), int64(s.maxTTL/time.Second)))
	}

	se, err := logical.StorageEntryJSON(rolesPrefix+name, r)
	if err != nil {
		return nil, fmt.Errorf("token: encode role: %w", err)
	}
	if err := s.view.Put(ctx, se); err != nil {
		return nil, fmt.Errorf("token: write role: %w", err)
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	resp := &logical.Response{}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// handleCreateWithRole serves create/<role_name>.
func (s *Store) handleCreateWithRole(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	name := d.Get("role_name").(string)
	r, err := s.role(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.InvalidRequest("unknown role %s", name)
	}
	return s.createToken(ctx, req, d, r)
}

// shape applies the role to a token being created through it: the role's
// name, its renewable and num_uses limits, and its path suffix.
func (r *role) shape(e *Entry) {
	e.Role = r.Name
	if !r.Renewable {
		e.Renewable = false
	}
	// 0 means unlimited, so the role's limit applies to unlimited requests.
	if r.TokenNumUses > 0 && (e.NumUses == 0 || r.TokenNumUses < e.NumUses) {
		e.NumUses = r.TokenNumUses
	}
	if r.PathSuffix != "" {
		e.Path += "/" + r.PathSuffix
	}
}

// checkEntityAlias enforces allowed_entity_aliases on a create request's
// entity_alias. A permitted alias is accepted and ignored, as on
// auth/token/create: Ward has no identity store to attach it to.
func (r *role) checkEntityAlias(alias string) (warning string, err error) {
	if alias == "" {
		return "", nil
	}
	a := strings.ToLower(alias)
	if !slices.Contains(r.AllowedEntityAliases, a) && !globAny(r.AllowedEntityAliases, a) {
		return "", logical.InvalidRequest("invalid 'entity_alias' value")
	}
	return "entity_alias is ignored: Ward has no identity store", nil
}

// limit merges the role's period and explicit max TTL into a token being
// created: where both the request and the role set one, the lesser wins.
func (r *role) limit(e *Entry) (warnings []string) {
	merge := func(dst *time.Duration, fromRole time.Duration, what string) {
		switch {
		case fromRole == 0:
		case *dst == 0:
			*dst = fromRole
		default:
			*dst = min(*dst, fromRole)
			warnings = append(warnings, fmt.Sprintf("%s specified both during creation call and in role; using the lesser value of %d seconds",
				what, int64(*dst/time.Second)))
		}
	}
	merge(&e.ExplicitMaxTTL, r.TokenExplicitMaxTTL, "Explicit max TTL")
	merge(&e.Period, r.TokenPeriod, "Period")
	return warnings
}

// applyRole gives a token created through a role the role's current
// period and explicit max TTL before a renewal, since Vault re-reads the
// role then: the period becomes the role's; the explicit max TTL becomes the
// lesser non-zero one of the token's and the role's, so that lowering the
// role's limit reaches tokens already issued but no renewal outlives a limit
// the token was created with. It reports whether e changed, and fails with
// ErrRoleNotFound when the role is gone.
func (s *Store) applyRole(ctx context.Context, e *Entry) (changed bool, err error) {
	if e.Role == "" {
		return false, nil
	}
	r, err := s.role(ctx, e.Role)
	if err != nil {
		return false, err
	}
	if r == nil {
		return false, fmt.Errorf("%w: %q", ErrRoleNotFound, e.Role)
	}
	explicitMax := e.ExplicitMaxTTL
	if r.TokenExplicitMaxTTL > 0 && (explicitMax == 0 || r.TokenExplicitMaxTTL < explicitMax) {
		explicitMax = r.TokenExplicitMaxTTL
	}
	changed = e.Period != r.TokenPeriod || e.ExplicitMaxTTL != explicitMax
	e.Period, e.ExplicitMaxTTL = r.TokenPeriod, explicitMax
	return changed, nil
}

// resolveRolePolicies applies Vault's rules for a role with policy lists
// (OpenBao's resolveTokenPolicies): the caller need not hold the policies.
// Requested policies (or, when none, allowed_policies, or the caller's
// policies when the role only disallows) must all be in allowed_policies or
// match allowed_policies_glob (when either is set) and none may be in
// disallowed_policies or match disallowed_policies_glob. "default" is added
// unless the request or the role says no_default_policy or the role
// disallows it.
func resolveRolePolicies(r *role, parent *Entry, requested []string, noDefault bool) ([]string, error) {
	requested = sanitizePolicies(requested)
	addDefault := !noDefault && !r.TokenNoDefaultPolicy &&
		!slices.Contains(r.DisallowedPolicies, "default") && !globAny(r.DisallowedPoliciesGlob, "default")
	withDefault := func(p []string) []string {
		if addDefault && !slices.Contains(p, "root") && !slices.Contains(p, "default") {
			p = append(slices.Clone(p), "default")
		}
		return sanitizePolicies(p)
	}
	var out []string
	if len(requested) > 0 {
		out = withDefault(requested)
	}
	switch {
	case len(r.AllowedPolicies) > 0 || len(r.AllowedPoliciesGlob) > 0:
		allowed := withDefault(r.AllowedPolicies)
		if len(out) == 0 {
			out = allowed
			break
		}
		for _, p := range out {
			if !slices.Contains(allowed, p) && !globAny(r.AllowedPoliciesGlob, p) {
				return nil, logical.InvalidRequest("token policies (%q) must be subset of the role's allowed policies (%q) or glob policies (%q)",
					out, allowed, r.AllowedPoliciesGlob)
			}
		}
	case len(out) == 0:
		out = withDefault(parent.Policies)
	}
	for _, p := range out {
		if slices.Contains(r.DisallowedPolicies, p) || globAny(r.DisallowedPoliciesGlob, p) {
			return nil, logical.InvalidRequest("token policy %q is disallowed by this role", p)
		}
	}
	if noDefault {
		out = slices.DeleteFunc(out, func(p string) bool { return p == "default" })
	}
	if slices.Contains(out, "root") && !parent.IsRoot() {
		return nil, logical.InvalidRequest("root tokens may not be created without parent token being root")
	}
	return out, nil
}

// lowerDedupe trims, lower-cases, drops empty names, sorts and deduplicates
// (Vault's strutil.RemoveDuplicates with lowercase). The result is never nil.
func lowerDedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// globAny reports whether s matches one of the glob patterns.
func globAny(patterns []string, s string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return globMatch(p, s) })
}

// globMatch reports whether s matches pattern, in which '*' matches any run
// of characters (possibly empty) and nothing else is special: the glob of
// Vault's *_policies_glob and allowed_entity_aliases.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := len(parts) - 1
	for _, p := range parts[1:last] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[last])
}
