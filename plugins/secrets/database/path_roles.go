package database

import (
	"context"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/postgres"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// roleEntry is a dynamic role as stored at role/<name>.
type roleEntry struct {
	DBName               string        `json:"db_name"`
	CreationStatements   []string      `json:"creation_statements"`
	RevocationStatements []string      `json:"revocation_statements"`
	RenewStatements      []string      `json:"renew_statements"`
	DefaultTTL           time.Duration `json:"default_ttl"`
	MaxTTL               time.Duration `json:"max_ttl"`
}

// roleStatementFields are the role's statement fields, read from Raw.
var roleStatementFields = []string{"creation_statements", "revocation_statements", "renew_statements"}

func loadRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	var r roleEntry
	found, err := getJSON(ctx, s, rolePrefix+name, "a role", &r)
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

func (b *backend) rolePaths() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "roles/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: b.listKeys(rolePrefix)},
			HelpSynopsis: "Lists the dynamic roles.",
		},
		{
			Pattern: "roles/" + framework.GenericNameRegex("name"),
			Fields: map[string]*framework.FieldSchema{
				"name":    nameField("role"),
				"db_name": {Type: framework.TypeString, Description: "Name of the database configuration the role uses."},
				"default_ttl": {Type: framework.TypeDurationSecond,
					Description: "TTL of the credentials' lease. 0 means the mount's default."},
				"max_ttl": {Type: framework.TypeDurationSecond,
					Description: "Longest life of the credentials, renewals included. 0 means the mount's maximum."},
			},
			TakesArbitraryInput: true, // the statement fields
			ExistenceCheck:      b.roleExists,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.CreateOperation: b.roleWrite,
				logical.UpdateOperation: b.roleWrite,
				logical.ReadOperation:   b.roleRead,
				logical.DeleteOperation: b.roleDelete,
			},
			HelpSynopsis: "Creates, reads, updates or deletes a dynamic role.",
			HelpDescription: `Statement fields take a string (which may hold several statements separated
by ";") or a list of strings, with the placeholders {{name}} (or {{username}}),
{{password}} and {{expiration}}, escaped for the quoting they appear in:

  creation_statements    required; run in one transaction
  revocation_statements  default: revoke the user's privileges, DROP ROLE
  renew_statements       default: ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}'

A write changes only the fields it sets.`,
		},
	}
}

func (b *backend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := nameOf(d)
	if err != nil {
		return false, err
	}
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	r, err := loadRole(ctx, s, name)
	return r != nil, err
}

func (b *backend) roleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	if r, err := loadStaticRole(ctx, s, name); err != nil {
		return nil, err
	} else if r != nil {
		return nil, logical.InvalidRequest("a static role named %q exists; role names are shared", name)
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &roleEntry{}
	}
	if v, ok := d.GetOk("db_name"); ok {
		r.DBName = v.(string)
	}
	if v, ok := d.GetOk("default_ttl"); ok {
		r.DefaultTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("max_ttl"); ok {
		r.MaxTTL = time.Duration(v.(int)) * time.Second
	}
	for _, f := range roleStatementFields {
		st, ok, err := statementsField(d, f)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		switch f {
		case "creation_statements":
			r.CreationStatements = st
		case "revocation_statements":
			r.RevocationStatements = st
		case "renew_statements":
			r.RenewStatements = st
		}
	}
	switch {
	case r.DBName == "":
		return nil, logical.InvalidRequest("db_name is required")
	case len(r.CreationStatements) == 0:
		return nil, logical.InvalidRequest("creation_statements are required")
	case r.MaxTTL > 0 && r.DefaultTTL > r.MaxTTL:
		return nil, logical.InvalidRequest("default_ttl must not be greater than max_ttl")
	}
	for f, st := range map[string][]string{
		"creation_statements": r.CreationStatements, "revocation_statements": r.RevocationStatements,
		"renew_statements": r.RenewStatements,
	} {
		if len(st) == 0 {
			continue
		}
		if err := postgres.Check(st); err != nil {
			return nil, logical.InvalidRequest("%s: %v", f, err)
		}
	}
	if err := putJSON(ctx, s, rolePrefix+name, "a role", r); err != nil {
		return nil, err
	}
	return withWarning(nil, unknownFields(req, d, roleStatementFields...)), nil
}

func (b *backend) roleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"db_name":               r.DBName,
		"creation_statements":   nonNil(r.CreationStatements),
		"revocation_statements": nonNil(r.RevocationStatements),
		"renew_statements":      nonNil(r.RenewStatements),
		"rollback_statements":   []string{},
		"default_ttl":           int64(r.DefaultTTL / time.Second),
		"max_ttl":               int64(r.MaxTTL / time.Second),
		"credential_type":       "password",
	}}, nil
}

// roleDelete deletes the role. Leases of its credentials stay valid; their
// revocation then uses the default revocation statements.
func (b *backend) roleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	if err := s.Delete(ctx, rolePrefix+name); err != nil {
		return nil, storageErr("deleting a role", err)
	}
	return nil, nil
}
