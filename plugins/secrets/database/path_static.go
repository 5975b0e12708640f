package database

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/postgres"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// minRotationPeriod is Vault's lower bound for rotation_period.
const minRotationPeriod = 5 * time.Second

// staticRole is a static role as stored at static-role/<name>: an existing
// database user whose password the engine owns and rotates.
type staticRole struct {
	DBName             string        `json:"db_name"`
	Username           string        `json:"username"`
	RotationPeriod     time.Duration `json:"rotation_period"`
	RotationStatements []string      `json:"rotation_statements"`
	// Password is the user's current password.
	Password string `json:"password"`
	// PendingPassword is set while a rotation runs. Found set, the outcome
	// of that rotation is unknown, so the role is due at once: a new
	// rotation makes the password known again.
	PendingPassword   string    `json:"pending_password,omitempty"`
	LastVaultRotation time.Time `json:"last_vault_rotation"`
}

// due reports whether the role's password must be rotated at now.
func (r *staticRole) due(now time.Time) bool {
	return r.PendingPassword != "" || r.Password == "" || !now.Before(r.nextRotation())
}

func (r *staticRole) nextRotation() time.Time { return r.LastVaultRotation.Add(r.RotationPeriod) }

func loadStaticRole(ctx context.Context, s logical.Storage, name string) (*staticRole, error) {
	var r staticRole
	found, err := getJSON(ctx, s, staticRolePrefix+name, "a static role", &r)
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

func (b *backend) staticPaths() []*framework.Path {
	name := framework.GenericNameRegex("name")
	return []*framework.Path{
		{
			Pattern:      "static-roles/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: b.listKeys(staticRolePrefix)},
			HelpSynopsis: "Lists the static roles.",
		},
		{
			Pattern: "static-roles/" + name,
			Fields: map[string]*framework.FieldSchema{
				"name":     nameField("static role"),
				"db_name":  {Type: framework.TypeString, Description: "Name of the database configuration. Set at creation only."},
				"username": {Type: framework.TypeString, Description: "Existing database user whose password the role rotates. Set at creation only."},
				"rotation_period": {Type: framework.TypeDurationSecond,
					Description: "How often the password is rotated; at least 5s."},
			},
			TakesArbitraryInput: true, // rotation_statements
			ExistenceCheck:      b.staticRoleExists,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.CreateOperation: b.staticRoleWrite,
				logical.UpdateOperation: b.staticRoleWrite,
				logical.ReadOperation:   b.staticRoleRead,
				logical.DeleteOperation: b.staticRoleDelete,
			},
			HelpSynopsis: "Creates, reads, updates or deletes a static role.",
			HelpDescription: `rotation_statements (string or list of templates with {{name}} and
{{password}}; default ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}') set
the new password. Creating the role rotates the password at once, so only
Ward knows it. Deleting the role leaves the user and its password as they are.`,
		},
		{
			Pattern:      "static-creds/" + name,
			Fields:       map[string]*framework.FieldSchema{"name": nameField("static role")},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ReadOperation: b.staticCredsRead},
			HelpSynopsis: "Reads the current password of a static role, rotating it first if it is due.",
		},
		{
			Pattern:      "rotate-role/" + name,
			Fields:       map[string]*framework.FieldSchema{"name": nameField("static role")},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathRotateRole},
			HelpSynopsis: "Rotates the password of a static role now.",
		},
		{
			Pattern:      "rotate-due",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathRotateDue},
			HelpSynopsis: "Rotates the password of every static role that is due; for the host's periodic call.",
			HelpDescription: `A plugin has no background work of its own, so static roles rotate lazily
(a read of static-creds rotates a due role first) and when the host calls this
path periodically, as it should (every few seconds to a minute). It answers
"rotated" (role names), "failed" (role name -> error) and "next_rotation_in"
(seconds until the next role is due; absent with no static role).`,
		},
	}
}

func (b *backend) staticRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := nameOf(d)
	if err != nil {
		return false, err
	}
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	r, err := loadStaticRole(ctx, s, name)
	return r != nil, err
}

func (b *backend) staticRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.staticLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()

	if r, err := loadRole(ctx, s, name); err != nil {
		return nil, err
	} else if r != nil {
		return nil, logical.InvalidRequest("a dynamic role named %q exists; role names are shared", name)
	}
	r, err := loadStaticRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	created := r == nil
	if created {
		r = &staticRole{}
	}
	if v, ok := d.GetOk("db_name"); ok {
		if !created && v.(string) != r.DBName {
			return nil, logical.InvalidRequest("db_name cannot be changed")
		}
		r.DBName = v.(string)
	}
	if v, ok := d.GetOk("username"); ok {
		if !created && v.(string) != r.Username {
			return nil, logical.InvalidRequest("username cannot be changed")
		}
		r.Username = v.(string)
	}
	if v, ok := d.GetOk("rotation_period"); ok {
		r.RotationPeriod = time.Duration(v.(int)) * time.Second
	}
	st, ok, err := statementsField(d, "rotation_statements")
	if err != nil {
		return nil, err
	}
	if ok {
		r.RotationStatements = st
	}
	switch {
	case r.DBName == "":
		return nil, logical.InvalidRequest("db_name is required")
	case r.Username == "":
		return nil, logical.InvalidRequest("username is required")
	case r.RotationPeriod < minRotationPeriod:
		return nil, logical.InvalidRequest("rotation_period must be at least %v", minRotationPeriod)
	}
	if len(r.RotationStatements) > 0 {
		if err := postgres.Check(r.RotationStatements); err != nil {
			return nil, logical.InvalidRequest("rotation_statements: %v", err)
		}
	}
	cfg, err := loadConfig(ctx, s, r.DBName)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errConfigNotFound(r.DBName)
	}
	if !cfg.allows(name) {
		return nil, logical.InvalidRequest("role %q is not in the allowed_roles of database configuration %q", name, r.DBName)
	}
	if created {
		if err := b.uniqueStaticUser(ctx, s, name, r); err != nil {
			return nil, err
		}
		// Take the password over now: store the role first (a crash leaves
		// it pending, hence due), then rotate.
		if err := b.rotateStaticLocked(ctx, s, name, r); err != nil {
			_ = s.Delete(ctx, staticRolePrefix+name)
			return nil, err
		}
	} else if err := putJSON(ctx, s, staticRolePrefix+name, "a static role", r); err != nil {
		return nil, err
	}
	return withWarning(nil, unknownFields(req, d, "rotation_statements")), nil
}

// uniqueStaticUser refuses a second static role for the same user of the
// same database: two roles would fight over its password.
func (b *backend) uniqueStaticUser(ctx context.Context, s logical.Storage, name string, r *staticRole) error {
	keys, err := s.List(ctx, staticRolePrefix)
	if err != nil {
		return storageErr("listing static roles", err)
	}
	for _, k := range keys {
		if k == name {
			continue
		}
		o, err := loadStaticRole(ctx, s, k)
		if err != nil {
			return err
		}
		if o != nil && o.DBName == r.DBName && o.Username == r.Username {
			return logical.InvalidRequest("static role %q already manages that user", k)
		}
	}
	return nil
}

func (b *backend) staticRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	r, err := loadStaticRole(ctx, s, name)
	if err != nil || r == nil {
		return nil, err
	}
	now := b.clock()
	return &logical.Response{Data: map[string]any{
		"db_name":             r.DBName,
		"username":            r.Username,
		"rotation_period":     int64(r.RotationPeriod / time.Second),
		"rotation_statements": nonNil(r.RotationStatements),
		"last_vault_rotation": r.LastVaultRotation.Format(time.RFC3339Nano),
		"ttl":                 ttlSeconds(r, now),
		"credential_type":     "password",
	}}, nil
}

// staticRoleDelete forgets the role. The user keeps its current password.
func (b *backend) staticRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.staticLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	if err := s.Delete(ctx, staticRolePrefix+name); err != nil {
		return nil, storageErr("deleting a static role", err)
	}
	return nil, nil
}

// staticCredsRead answers the role's current password, rotating it first
// when it is due. When that rotation fails but the current password is
// still known to be the user's, it is answered with a warning.
func (b *backend) staticCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.staticLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := loadStaticRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.Errorf(logical.CodeNotFound, "unknown static role: %s", name)
	}
	var warning string
	if r.due(b.clock()) {
		if err := b.rotateStaticLocked(ctx, s, name, r); err != nil {
			if r.PendingPassword != "" || r.Password == "" {
				return nil, err
			}
			warning = "the password is due for rotation but the rotation failed: " + err.Error()
		}
	}
	now := b.clock()
	resp := &logical.Response{Data: map[string]any{
		"username":            r.Username,
		"password":            r.Password,
		"last_vault_rotation": r.LastVaultRotation.Format(time.RFC3339Nano),
		"rotation_period":     int64(r.RotationPeriod / time.Second),
		"ttl":                 ttlSeconds(r, now),
	}}
	return withWarning(resp, warning), nil
}

func ttlSeconds(r *staticRole, now time.Time) int64 {
	left := r.nextRotation().Sub(now)
	if left < 0 {
		return 0
	}
	return int64(left / time.Second)
}

func (b *backend) pathRotateRole(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.staticLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := loadStaticRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.Errorf(logical.CodeNotFound, "unknown static role: %s", name)
	}
	return nil, b.rotateStaticLocked(ctx, s, name, r)
}

// pathRotateDue rotates every static role that is due.
func (b *backend) pathRotateDue(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	names, err := s.List(ctx, staticRolePrefix)
	if err != nil {
		return nil, storageErr("listing static roles", err)
	}
	rotated := []string{}
	failed := map[string]any{}
	var next time.Time
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, logical.Errorf(logical.CodeUnavailable, "rotate-due: %v", err)
		}
		r, didRotate, err := b.rotateIfDue(ctx, s, name)
		switch {
		case err != nil:
			failed[name] = err.Error()
			b.logWarn("static role rotation failed", "role", name, "error", err.Error())
		case didRotate:
			rotated = append(rotated, name)
		}
		if r != nil && (next.IsZero() || r.nextRotation().Before(next)) {
			next = r.nextRotation()
		}
	}
	sort.Strings(rotated)
	data := map[string]any{"rotated": rotated, "failed": failed}
	if !next.IsZero() {
		in := next.Sub(b.clock())
		data["next_rotation_in"] = max(int64(in/time.Second), 0)
	}
	return &logical.Response{Data: data}, nil
}

// periodic is the host's periodic call: rotate what fell due. Failures
// are logged per role by pathRotateDue and tried again next time.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	_, err := b.pathRotateDue(ctx, req, nil)
	return err
}

// rotateIfDue rotates one static role when it is due; r is the role as it
// stands after (nil when it was deleted meanwhile).
func (b *backend) rotateIfDue(ctx context.Context, s logical.Storage, name string) (*staticRole, bool, error) {
	lock := b.staticLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := loadStaticRole(ctx, s, name)
	if err != nil || r == nil || !r.due(b.clock()) {
		return r, false, err
	}
	if err := b.rotateStaticLocked(ctx, s, name, r); err != nil {
		return r, false, err
	}
	return r, true, nil
}

// rotateStaticLocked sets a new password for the role's user and updates r
// and storage. The new password is stored as pending before the database
// is changed and promoted after: a crash or an error whose outcome is
// unknown leaves the role pending, hence due again. A statement the
// server rejected rolled its transaction back, so the pending password is
// dropped. The caller holds the role's lock.
func (b *backend) rotateStaticLocked(ctx context.Context, s logical.Storage, name string, r *staticRole) error {
	e, err := b.acquire(ctx, s, r.DBName)
	if err != nil {
		return err
	}
	defer b.release(e)
	newPw, err := e.cfg.PasswordPolicy.generate()
	if err != nil {
		return err
	}
	r.PendingPassword = newPw
	if err := putJSON(ctx, s, staticRolePrefix+name, "a static role", r); err != nil {
		r.PendingPassword = ""
		return err
	}
	if err := e.db.SetPassword(ctx, r.RotationStatements, r.Username, newPw); err != nil {
		var pe *postgres.Error
		if errors.As(err, &pe) && (pe.Kind == postgres.KindStatement || pe.Kind == postgres.KindTemplate) {
			r.PendingPassword = ""
			_ = putJSON(ctx, s, staticRolePrefix+name, "a static role", r)
		}
		return dbError("rotating the password of static role "+quote(name), err)
	}
	r.Password, r.PendingPassword = newPw, ""
	r.LastVaultRotation = b.clock()
	if err := putJSON(ctx, s, staticRolePrefix+name, "a static role", r); err != nil {
		return err
	}
	b.logInfo("rotated a static role's password", "role", name)
	return nil
}
