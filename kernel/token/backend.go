package token

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Error messages follow OpenBao's token store so clients see familiar text.
var (
	errBadToken        = logical.Errorf(logical.CodePermissionDenied, "bad token")
	errMissingToken    = logical.InvalidRequest("missing token ID")
	errMissingAccessor = logical.InvalidRequest("missing accessor")
	errInvalidAccessor = logical.InvalidRequest("invalid accessor")
	errNotRenewable    = logical.InvalidRequest("lease is not renewable")
	errTokenNotFound   = logical.InvalidRequest("token not found")
)

func rootRequired(what string) error {
	return logical.Errorf(logical.CodePermissionDenied, "root or sudo privileges required to %s", what)
}

var displayNameSanitize = regexp.MustCompile("[^a-zA-Z0-9-]")

func (s *Store) newBackend() *framework.Backend {
	tokenField := &framework.FieldSchema{Type: framework.TypeString, Description: "Token to use."}
	accessorField := &framework.FieldSchema{Type: framework.TypeString, Description: "Accessor of the token."}
	incrementField := &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: "Requested TTL extension (ignored for periodic tokens)."}
	createFields := map[string]*framework.FieldSchema{
		"id":                {Type: framework.TypeString, Description: "Token value to use instead of a generated one (root only)."},
		"policies":          {Type: framework.TypeCommaStringSlice, Description: "Policies of the token: a subset of the caller's unless the caller is root."},
		"meta":              {Type: framework.TypeKVPairs, Description: "Metadata (string to string) attached to the token."},
		"no_parent":         {Type: framework.TypeBool, Description: "Create an orphan token (root only)."},
		"no_default_policy": {Type: framework.TypeBool, Description: "Do not add the default policy."},
		"renewable":         {Type: framework.TypeBool, Default: true, Description: "Whether the token can be renewed."},
		"ttl":               {Type: framework.TypeDurationSecond, Description: "Time to live."},
		"lease":             {Type: framework.TypeDurationSecond, Description: "Deprecated alias of ttl."},
		"explicit_max_ttl":  {Type: framework.TypeDurationSecond, Description: "Hard limit on the token's life, across renewals."},
		"period":            {Type: framework.TypeDurationSecond, Description: "Make the token periodic with this renewal period (root only)."},
		"display_name":      {Type: framework.TypeString, Description: "Name shown for the token; stored as token-<display_name>."},
		"num_uses":          {Type: framework.TypeInt, Description: "Number of uses; 0 means unlimited."},
		"type":              {Type: framework.TypeString, Description: `Token type: "service" (batch tokens are not supported yet).`},
		"entity_alias":      {Type: framework.TypeString, Description: "Ignored."},
	}
	write := func(h framework.OperationFunc) map[logical.Operation]framework.OperationFunc {
		return map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: h}
	}
	b := &framework.Backend{
		Help:        "The token store: creates, looks up, renews and revokes tokens.",
		BackendType: logical.TypeAuth,
		PathsSpecial: &logical.Paths{
			Root: []string{"revoke-orphan*", "accessors*"},
		},
		Paths: []*framework.Path{
			{
				Pattern:      "create",
				Fields:       createFields,
				Operations:   write(s.handleCreate),
				HelpSynopsis: "Create a child token of the caller.",
			},
			{
				Pattern:      "create-orphan",
				Fields:       createFields,
				Operations:   write(s.handleCreate),
				HelpSynopsis: "Create a token without a parent.",
			},
			{
				Pattern:      "lookup",
				Fields:       map[string]*framework.FieldSchema{"token": tokenField},
				Operations:   write(s.handleLookup),
				HelpSynopsis: "Look up a token's properties.",
			},
			{
				Pattern: "lookup-self",
				Fields:  map[string]*framework.FieldSchema{},
				Operations: map[logical.Operation]framework.OperationFunc{
					logical.ReadOperation:   s.handleLookupSelf,
					logical.UpdateOperation: s.handleLookupSelf,
				},
				HelpSynopsis: "Look up the calling token's properties.",
			},
			{
				Pattern:      "lookup-accessor",
				Fields:       map[string]*framework.FieldSchema{"accessor": accessorField},
				Operations:   write(s.handleLookupAccessor),
				HelpSynopsis: "Look up a token's properties by its accessor.",
			},
			{
				Pattern:      "renew",
				Fields:       map[string]*framework.FieldSchema{"token": tokenField, "increment": incrementField},
				Operations:   write(s.handleRenew),
				HelpSynopsis: "Renew a token.",
			},
			{
				Pattern:      "renew-self",
				Fields:       map[string]*framework.FieldSchema{"increment": incrementField},
				Operations:   write(s.handleRenewSelf),
				HelpSynopsis: "Renew the calling token.",
			},
			{
				Pattern:      "revoke",
				Fields:       map[string]*framework.FieldSchema{"token": tokenField},
				Operations:   write(s.handleRevoke),
				HelpSynopsis: "Revoke a token and all its descendants.",
			},
			{
				Pattern:      "revoke-self",
				Fields:       map[string]*framework.FieldSchema{},
				Operations:   write(s.handleRevokeSelf),
				HelpSynopsis: "Revoke the calling token and all its descendants.",
			},
			{
				Pattern:      "revoke-accessor",
				Fields:       map[string]*framework.FieldSchema{"accessor": accessorField},
				Operations:   write(s.handleRevokeAccessor),
				HelpSynopsis: "Revoke a token (and descendants) by its accessor.",
			},
			{
				Pattern:      "revoke-orphan",
				Fields:       map[string]*framework.FieldSchema{"token": tokenField},
				Operations:   write(s.handleRevokeOrphan),
				HelpSynopsis: "Revoke a token, leaving its children as orphans (root only).",
			},
			{
				Pattern:      "accessors/?",
				Fields:       map[string]*framework.FieldSchema{},
				Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: s.handleAccessors},
				HelpSynopsis: "List the accessors of all tokens (root only).",
			},
		},
	}
	b.Paths = append(b.Paths, s.rolePaths(createFields)...)
	return b
}

var _ logical.Backend = (*framework.Backend)(nil)

// caller returns the authenticated caller the kernel put in ctx.
func caller(ctx context.Context) (*Entry, error) {
	c, ok := FromContext(ctx)
	if !ok {
		return nil, logical.ErrPermissionDenied
	}
	return c, nil
}

func (s *Store) handleCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return s.createToken(ctx, req, d, nil)
}

// createToken is the create logic of create, create-orphan and, with r
// set, create/<role_name>.
func (s *Store) createToken(ctx context.Context, req *logical.Request, d *framework.FieldData, r *role) (*logical.Response, error) {
	orphanPath := strings.TrimSuffix(req.Path, "/") == "create-orphan"
	parent, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	isRoot := parent.IsRoot()
	if parent.NumUses > 0 {
		return nil, logical.InvalidRequest("restricted use token cannot generate child tokens")
	}
	tokenType := d.Get("type").(string)
	if r != nil && r.TokenType == TypeService {
		tokenType = TypeService
	}
	switch tokenType {
	case "", TypeService:
	case "batch":
		return nil, logical.InvalidRequest("batch tokens are not supported")
	default:
		return nil, logical.InvalidRequest("invalid 'token_type' value")
	}
	numUses := d.Get("num_uses").(int)
	if numUses < 0 {
		return nil, logical.InvalidRequest("number of uses cannot be negative")
	}

	e := &Entry{
		Parent:      parent.HashedID,
		Path:        "auth/token/" + strings.TrimSuffix(req.Path, "/"),
		DisplayName: "token",
		NumUses:     numUses,
		Renewable:   d.Get("renewable").(bool),
		Type:        TypeService,
	}
	var warnings []string
	if r != nil {
		r.shape(e)
		w, err := r.checkEntityAlias(d.Get("entity_alias").(string))
		if err != nil {
			return nil, err
		}
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	if m, ok := d.GetOk("meta"); ok {
		e.Meta = m.(map[string]string)
	}
	if dn := d.Get("display_name").(string); dn != "" {
		full := displayNameSanitize.ReplaceAllString("token-"+dn, "-")
		e.DisplayName = strings.TrimSuffix(full, "-")
	}
	if id := d.Get("id").(string); id != "" {
		if !isRoot {
			return nil, rootRequired("specify token id")
		}
		switch {
		case strings.HasPrefix(id, "hvs."):
			return nil, logical.InvalidRequest("custom token ID cannot have the 'hvs.' prefix")
		case strings.HasPrefix(id, tokenPrefix):
			return nil, logical.InvalidRequest("custom token ID cannot have the 's.' prefix")
		case strings.Contains(id, "."):
			return nil, logical.InvalidRequest("custom token ID cannot have a '.' in the value")
		}
		e.ID = id
	}

	var policies []string
	if r != nil && r.restrictsPolicies() {
		policies, err = resolveRolePolicies(r, parent, d.Get("policies").([]string), d.Get("no_default_policy").(bool))
	} else {
		policies, err = resolvePolicies(parent, d.Get("policies").([]string), d.Get("no_default_policy").(bool))
	}
	if err != nil {
		return nil, err
	}
	e.Policies = policies

	switch {
	case r != nil: // the role decides; no_parent is ignored, as in Vault
		if r.Orphan {
			e.Parent = ""
		}
	case d.Get("no_parent").(bool):
		if !isRoot {
			return nil, rootRequired("create orphan token")
		}
		e.Parent = ""
	case orphanPath:
		e.Parent = ""
	}

	if p := d.Get("period").(int); p > 0 {
		if !isRoot {
			return nil, rootRequired("create periodic token")
		}
		e.Period = time.Duration(p) * time.Second
	}
	e.ExplicitMaxTTL = time.Duration(d.Get("explicit_max_ttl").(int)) * time.Second
	if r != nil {
		warnings = append(warnings, r.limit(e)...)
	}
	requested := d.Get("ttl").(int)
	if _, ok := d.GetOk("ttl"); !ok {
		requested = d.Get("lease").(int)
	}
	e.TTL = time.Duration(requested) * time.Second

	// A root token without TTL never expires; an expiring parent must not
	// be able to mint one (OpenBao's rule).
	if e.IsRoot() && e.TTL == 0 && e.Period == 0 && e.ExplicitMaxTTL == 0 && !parent.ExpireTime.IsZero() {
		return nil, logical.InvalidRequest("expiring root tokens cannot create non-expiring root tokens")
	}

	created, err := s.Create(ctx, e)
	switch {
	case errors.Is(err, ErrTokenExists):
		return nil, logical.InvalidRequest("cannot create a token with a duplicate ID")
	case errors.Is(err, ErrParentInvalid):
		return nil, logical.InvalidRequest("parent token lookup failed: no parent found")
	case errors.Is(err, ErrInvalidEntry):
		return nil, logical.InvalidRequest("%v", err)
	case err != nil:
		return nil, err
	}

	resp := &logical.Response{Data: map[string]any{
		"auth": authData(created, created.ID, int64(created.TTL/time.Second)),
	}}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	if requested > 0 && e.Period == 0 && created.TTL < time.Duration(requested)*time.Second {
		resp.AddWarning(fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
			time.Duration(requested)*time.Second, created.TTL))
	}
	if e.Period > 0 && created.Period < e.Period {
		resp.AddWarning(fmt.Sprintf("period of %q exceeded the effective max_ttl of %q; period value is capped accordingly",
			e.Period, created.Period))
	}
	return resp, nil
}

// resolvePolicies applies OpenBao's rules for a child token's policies
// (without roles): no policies inherits the parent's; a non-root caller
// may only ask for a subset of its own; "default" is added for root callers
// and for callers that hold it, unless noDefault, which also strips it.
func resolvePolicies(parent *Entry, requested []string, noDefault bool) ([]string, error) {
	requested = sanitizePolicies(requested)
	parentPolicies := sanitizePolicies(parent.Policies)
	isRoot := parent.IsRoot()
	var addDefault bool
	var out []string
	switch {
	case len(requested) == 0:
		out = parentPolicies
	case !isRoot:
		for _, p := range requested {
			if !slices.Contains(parentPolicies, p) {
				return nil, logical.InvalidRequest("child policies must be subset of parent")
			}
		}
		out = requested
		addDefault = !noDefault && slices.Contains(parentPolicies, "default")
	default:
		out = requested
		addDefault = !noDefault
	}
	if addDefault && !slices.Contains(out, "root") {
		out = append(slices.Clone(out), "default")
	}
	out = sanitizePolicies(out)
	if noDefault {
		out = slices.DeleteFunc(out, func(p string) bool { return p == "default" })
	}
	if slices.Contains(out, "root") && !isRoot {
		return nil, logical.InvalidRequest("root tokens may not be created without parent token being root")
	}
	return out, nil
}

// AuthBlock is the envelope "auth" object for a token just issued to a
// client (by a login), with Vault's fields.
func (s *Store) AuthBlock(e *Entry) map[string]any {
	return authData(e, e.ID, remaining(e, s.clock()))
}

// authData is the envelope "auth" object of create and renew, with
// exactly Vault's fields.
func authData(e *Entry, clientToken string, leaseSeconds int64) map[string]any {
	return map[string]any{
		"client_token":      clientToken,
		"accessor":          e.Accessor,
		"policies":          policiesOf(e),
		"token_policies":    policiesOf(e),
		"identity_policies": nil,
		"metadata":          metaOf(e),
		"lease_duration":    leaseSeconds,
		"renewable":         e.Renewable,
		"entity_id":         "",
		"token_type":        e.Type,
		"orphan":            e.Parent == "",
		"mfa_requirement":   nil,
		"num_uses":          e.NumUses,
	}
}

// lookupData is the data of lookup, lookup-self and lookup-accessor.
func lookupData(e *Entry, id string, now time.Time) map[string]any {
	var expire any
	if !e.ExpireTime.IsZero() {
		expire = e.ExpireTime.UTC().Format(time.RFC3339Nano)
	}
	data := map[string]any{
		"accessor":         e.Accessor,
		"creation_time":    e.CreationTime.Unix(),
		"creation_ttl":     int64(e.TTL / time.Second),
		"display_name":     e.DisplayName,
		"entity_id":        "",
		"expire_time":      expire,
		"explicit_max_ttl": int64(e.ExplicitMaxTTL / time.Second),
		"id":               id,
		"issue_time":       e.CreationTime.UTC().Format(time.RFC3339Nano),
		"meta":             metaOf(e),
		"num_uses":         e.NumUses,
		"orphan":           e.Parent == "",
		"path":             e.Path,
		"policies":         policiesOf(e),
		"renewable":        e.Renewable && !e.ExpireTime.IsZero(),
		"ttl":              remaining(e, now),
		"type":             e.Type,
	}
	if e.Period > 0 { // as OpenBao: only for periodic tokens
		data["period"] = int64(e.Period / time.Second)
	}
	if e.Role != "" { // as OpenBao: only for tokens created through a role
		data["role"] = e.Role
	}
	return data
}

func policiesOf(e *Entry) []string {
	if e.Policies == nil {
		return []string{}
	}
	return slices.Clone(e.Policies)
}

// metaOf returns nil (JSON null) for no metadata, as Vault does.
func metaOf(e *Entry) any {
	if len(e.Meta) == 0 {
		return nil
	}
	m := make(map[string]string, len(e.Meta))
	for k, v := range e.Meta {
		m[k] = v
	}
	return m
}

func (s *Store) handleLookupSelf(ctx context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: lookupData(c, c.ID, s.clock())}, nil
}

func (s *Store) handleLookup(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id := d.Get("token").(string)
	if id == "" {
		id = c.ID
	}
	if id == "" {
		return nil, errMissingToken
	}
	e, err := s.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errBadToken
	}
	return &logical.Response{Data: lookupData(e, id, s.clock())}, nil
}

func (s *Store) handleLookupAccessor(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	acc := d.Get("accessor").(string)
	if acc == "" {
		return nil, errMissingAccessor
	}
	e, err := s.LookupAccessor(ctx, acc)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errInvalidAccessor
	}
	return &logical.Response{Data: lookupData(e, "", s.clock())}, nil
}

func (s *Store) renewResponse(ctx context.Context, e *Entry, increment int) (*logical.Response, error) {
	r, err := s.Renew(ctx, e, time.Duration(increment)*time.Second)
	switch {
	case errors.Is(err, ErrNotRenewable):
		return nil, errNotRenewable
	case errors.Is(err, ErrNotFound):
		return nil, errTokenNotFound
	case errors.Is(err, ErrRoleNotFound):
		// OpenBao's text; it answers 500 there (an untyped error), but
		// the cause is the deleted role, not the server.
		return nil, logical.InvalidRequest("failed to renew entry: original token role %q could not be found, not renewing", e.Role)
	case err != nil:
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"auth": authData(r, e.ID, remaining(r, s.clock())),
	}}, nil
}

func (s *Store) handleRenew(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	id := d.Get("token").(string)
	if id == "" {
		return nil, errMissingToken
	}
	e, err := s.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errTokenNotFound
	}
	return s.renewResponse(ctx, e, d.Get("increment").(int))
}

func (s *Store) handleRenewSelf(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return s.renewResponse(ctx, c, d.Get("increment").(int))
}

func (s *Store) handleRevoke(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	id := d.Get("token").(string)
	if id == "" {
		return nil, errMissingToken
	}
	e, err := s.Lookup(ctx, id)
	if err != nil || e == nil { // unknown tokens: 204, as Vault
		return nil, err
	}
	return nil, s.Revoke(ctx, e)
}

func (s *Store) handleRevokeSelf(ctx context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return nil, s.Revoke(ctx, c)
}

func (s *Store) handleRevokeAccessor(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	acc := d.Get("accessor").(string)
	if acc == "" {
		return nil, errMissingAccessor
	}
	e, err := s.LookupAccessor(ctx, acc)
	if err != nil {
		return nil, err
	}
	if e == nil {
		resp := &logical.Response{}
		resp.AddWarning("No token found with this accessor")
		return resp, nil
	}
	return nil, s.Revoke(ctx, e)
}

func (s *Store) handleRevokeOrphan(ctx context.Context, _ *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.IsRoot() {
		return nil, rootRequired("revoke and orphan")
	}
	id := d.Get("token").(string)
	if id == "" {
		return nil, errMissingToken
	}
	e, err := s.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, logical.InvalidRequest("token to revoke not found")
	}
	return nil, s.RevokeOrphan(ctx, e)
}

func (s *Store) handleAccessors(ctx context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.IsRoot() {
		return nil, rootRequired("list accessors")
	}
	keys, err := s.accessors(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}
