package database

import (
	"context"
	"errors"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/postgres"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// fallbackTTL is the life given to a user's VALID UNTIL when its role sets
// neither default_ttl nor max_ttl (the lease then gets the mount's default,
// which the engine does not know): Vault's default system max TTL, 32
// days. The lease's revocation drops the user well before that; a renewal
// sets VALID UNTIL to the renewed TTL.
const fallbackTTL = 768 * time.Hour

// Keys of a dynamic credential lease's Secret.InternalData.
const (
	internalDBName   = "db_name"
	internalRole     = "role"
	internalUsername = "username"
)

func (b *backend) credsPath() *framework.Path {
	return &framework.Path{
		Pattern:      "creds/" + framework.GenericNameRegex("name"),
		Fields:       map[string]*framework.FieldSchema{"name": nameField("role")},
		Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: b.credsRead},
		HelpSynopsis: "Creates a database user for a role and returns its credentials, under a lease.",
		HelpDescription: `Each read creates a new user with the role's creation statements. The
lease's revocation (or expiry) drops it; a renewal moves its VALID UNTIL.`,
	}
}

// credsRead creates a user. The response's Secret asks the kernel for a
// lease of the role's default_ttl (0: the mount's default) capped at its
// max_ttl; InternalData holds db_name, role and username, which renewal
// and revocation need.
func (b *backend) credsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.InvalidRequest("unknown role: %s", name)
	}
	e, err := b.acquire(ctx, s, r.DBName)
	if err != nil {
		return nil, err
	}
	defer b.release(e)
	cfg := e.cfg
	if !cfg.allows(name) {
		return nil, logical.InvalidRequest("role %q is not in the allowed_roles of database configuration %q", name, r.DBName)
	}
	username, err := renderUsername(cfg.UsernameTemplate, usernameData{RoleName: name, DBName: r.DBName}, b.now)
	if err != nil {
		return nil, err
	}
	password, err := cfg.PasswordPolicy.generate()
	if err != nil {
		return nil, err
	}
	now := b.clock()
	life := r.DefaultTTL
	if life == 0 {
		life = fallbackTTL
	}
	if r.MaxTTL > 0 && life > r.MaxTTL {
		life = r.MaxTTL
	}
	err = e.db.CreateUser(ctx, r.CreationStatements, postgres.User{
		Name: username, Password: password, Expiration: now.Add(life),
	})
	if err != nil {
		return nil, dbError("creating a user for role "+quote(name), err)
	}
	return &logical.Response{
		Data: map[string]any{"username": username, "password": password},
		Secret: &logical.Secret{
			TTL:       r.DefaultTTL,
			MaxTTL:    r.MaxTTL,
			Renewable: true,
			InternalData: map[string]any{
				internalDBName:   r.DBName,
				internalRole:     name,
				internalUsername: username,
			},
		},
	}, nil
}

// leaseUser reads a credential lease's InternalData.
func leaseUser(sec *logical.Secret) (dbName, role, username string, err error) {
	str := func(k string) string { v, _ := sec.InternalData[k].(string); return v }
	dbName, role, username = str(internalDBName), str(internalRole), str(internalUsername)
	if dbName == "" || username == "" {
		return "", "", "", logical.InvalidRequest("the lease is not a database credential of this engine (missing db_name or username)")
	}
	return dbName, role, username, nil
}

// credsRenew serves the lease manager's renewal. The kernel sends the
// lease's Secret with TTL set to the TTL the renewal asks for (the
// client's increment, or the lease's TTL when it gave none); 0 means the
// role's default_ttl. The engine caps it at max_ttl from IssueTime, moves
// the user's VALID UNTIL to now + that TTL with the renew statements, and
// answers the Secret with the TTL granted (0, the mount's default, when
// neither the request nor the role set one; VALID UNTIL is then 32 days
// away, see fallbackTTL). It refuses when the role was
// deleted, the lease is past its max TTL or the user is gone.
func (b *backend) credsRenew(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	dbName, roleName, username, err := leaseUser(req.Secret)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadRole(ctx, s, roleName)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.InvalidRequest("cannot renew: role %q no longer exists", roleName)
	}
	now := b.clock()
	ttl := req.Secret.TTL
	if ttl <= 0 {
		ttl = r.DefaultTTL
	}
	fallback := ttl <= 0
	if fallback {
		ttl = fallbackTTL
	}
	if r.MaxTTL > 0 && !req.Secret.IssueTime.IsZero() {
		left := req.Secret.IssueTime.Add(r.MaxTTL).Sub(now)
		if left <= 0 {
			return nil, logical.InvalidRequest("cannot renew: the lease has reached its max_ttl")
		}
		if left < ttl {
			ttl, fallback = left, false
		}
	}
	e, err := b.acquire(ctx, s, dbName)
	if err != nil {
		return nil, err
	}
	defer b.release(e)
	if err := e.db.RenewUser(ctx, r.RenewStatements, username, now.Add(ttl)); err != nil {
		if errors.Is(err, postgres.ErrUserNotFound) {
			return nil, logical.InvalidRequest("cannot renew: the database user no longer exists")
		}
		return nil, dbError("renewing a user of role "+quote(roleName), err)
	}
	granted := ttl
	if fallback { // neither the request nor the role set a TTL: the mount's default
		granted = 0
	}
	return &logical.Response{Secret: &logical.Secret{
		TTL:          granted,
		MaxTTL:       r.MaxTTL,
		Renewable:    true,
		InternalData: req.Secret.InternalData,
	}}, nil
}

// credsRevoke serves the lease manager's revocation: it runs the role's
// revocation statements (the defaults when the role sets none or was
// deleted) after disabling the user's login and ending its sessions. It
// is idempotent: a user that no longer exists is revoked. It fails (and
// the kernel retries) while the database configuration is missing or the
// database cannot be reached.
func (b *backend) credsRevoke(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	dbName, roleName, username, err := leaseUser(req.Secret)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	var stmts []string
	if roleName != "" {
		r, err := loadRole(ctx, s, roleName)
		if err != nil {
			return nil, err
		}
		if r != nil {
			stmts = r.RevocationStatements
		}
	}
	e, err := b.acquire(ctx, s, dbName)
	if err != nil {
		return nil, err
	}
	defer b.release(e)
	if err := e.db.RevokeUser(ctx, stmts, username); err != nil {
		return nil, dbError("revoking a user of role "+quote(roleName), err)
	}
	return nil, nil
}
