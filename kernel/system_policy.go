package kernel

import (
	"context"
	"time"

	"github.com/wardproject/ward/kernel/token"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// policyPaths are the sys/ endpoints for ACL policies and capabilities.
func (s *system) policyPaths() []*framework.Path {
	nameField := map[string]*framework.FieldSchema{
		"name":   {Type: framework.TypeString, Description: "Policy name."},
		"policy": {Type: framework.TypeString, Description: "Policy text (HCL or JSON)."},
		"rules":  {Type: framework.TypeString, Description: "Policy text (legacy name of the field)."},
	}
	capFields := map[string]*framework.FieldSchema{
		"path":     {Type: framework.TypeCommaStringSlice, Description: "Path to check (deprecated: use paths)."},
		"paths":    {Type: framework.TypeCommaStringSlice, Description: "Paths to check."},
		"token":    {Type: framework.TypeString, Description: "Token whose capabilities to check."},
		"accessor": {Type: framework.TypeString, Description: "Accessor of the token whose capabilities to check."},
	}
	ops := func(read, write, del framework.OperationFunc) map[logical.Operation]framework.OperationFunc {
		return map[logical.Operation]framework.OperationFunc{
			logical.ReadOperation: read, logical.UpdateOperation: write, logical.DeleteOperation: del,
		}
	}
	return []*framework.Path{
		{
			Pattern:      "policy/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: s.listPolicies, logical.ListOperation: s.listPolicies},
			HelpSynopsis: "List the ACL policies (legacy endpoint).",
		},
		{
			Pattern:      "policy/(?P<name>.+)",
			Fields:       nameField,
			Operations:   ops(s.readPolicy("rules"), s.writePolicy, s.deletePolicy),
			HelpSynopsis: "Read, write or delete an ACL policy (legacy endpoint).",
		},
		{
			Pattern:      "policies/acl/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: s.listPolicies},
			HelpSynopsis: "List the ACL policies.",
		},
		{
			Pattern:      "policies/acl/(?P<name>.+)",
			Fields:       nameField,
			Operations:   ops(s.readPolicy("policy"), s.writePolicy, s.deletePolicy),
			HelpSynopsis: "Read, write or delete an ACL policy.",
		},
		{
			Pattern:      "capabilities",
			Fields:       capFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.capabilities(capsOfToken)},
			HelpSynopsis: "Capabilities of a token on paths.",
		},
		{
			Pattern:      "capabilities-self",
			Fields:       capFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.capabilities(capsOfSelf)},
			HelpSynopsis: "Capabilities of the calling token on paths.",
		},
		{
			Pattern:      "capabilities-accessor",
			Fields:       capFields,
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: s.capabilities(capsOfAccessor)},
			HelpSynopsis: "Capabilities of the token with an accessor on paths.",
		},
	}
}

func (s *system) listPolicies(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	names, err := s.u.policies.list(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": names, "policies": names}}, nil
}

// readPolicy answers with the text under field ("rules" on the legacy
// endpoint, "policy" on sys/policies/acl), as Vault does.
func (s *system) readPolicy(field string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		_, sp, err := s.u.policies.get(ctx, d.Get("name").(string))
		if err != nil || sp == nil {
			return nil, err
		}
		data := map[string]any{"name": sp.Name, field: sp.Policy}
		if field == "policy" && sp.Name != "root" {
			data["version"] = sp.Version
			data["modified"] = sp.Modified.Format(time.RFC3339Nano)
		}
		return &logical.Response{Data: data}, nil
	}
}

func (s *system) writePolicy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	text := d.Get("policy").(string)
	if text == "" {
		text = d.Get("rules").(string)
	}
	if err := s.u.policies.write(ctx, d.Get("name").(string), text); err != nil {
		return nil, err
	}
	s.core.logger.Info("policy written", "name", d.Get("name"))
	return nil, nil
}

func (s *system) deletePolicy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := s.u.policies.remove(ctx, d.Get("name").(string)); err != nil {
		return nil, err
	}
	s.core.logger.Info("policy deleted", "name", d.Get("name"))
	return nil, nil
}

type capsSubject int

const (
	capsOfSelf capsSubject = iota
	capsOfToken
	capsOfAccessor
)

// capabilities answers sys/capabilities*: per path, the capabilities the
// subject token has, and under "capabilities" those of a single path.
func (s *system) capabilities(subject capsSubject) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		var te *token.Entry
		var err error
		switch subject {
		case capsOfSelf:
			te, _ = token.FromContext(ctx)
		case capsOfToken:
			te, err = s.u.tokens.Lookup(ctx, d.Get("token").(string))
		case capsOfAccessor:
			te, err = s.u.tokens.LookupAccessor(ctx, d.Get("accessor").(string))
		}
		if err != nil {
			return nil, err
		}
		if te == nil {
			return nil, logical.InvalidRequest("invalid token or accessor")
		}
		paths := append(d.Get("paths").([]string), d.Get("path").([]string)...)
		if len(paths) == 0 {
			return nil, logical.InvalidRequest("no paths given")
		}
		acl, err := s.u.policies.acl(ctx, te.Policies)
		if err != nil {
			return nil, err
		}
		data := map[string]any{}
		var last []string
		for _, p := range paths {
			route, _ := s.u.router.Match(p)
			caps := acl.Capabilities(ctx, s.core.policyInput(&Request{Request: &logical.Request{Path: p, RemoteAddr: req.RemoteAddr}}, te, route))
			if len(caps) == 0 {
				caps = []string{"deny"}
			}
			data[p] = caps
			last = caps
		}
		if len(paths) == 1 {
			data["capabilities"] = last
		}
		return &logical.Response{Data: data}, nil
	}
}
