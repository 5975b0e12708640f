package database

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/postgres"
	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// dbConfig is a connection configuration as stored at config/<name>.
type dbConfig struct {
	PluginName    string `json:"plugin_name"`
	ConnectionURL string `json:"connection_url"`
	Username      string `json:"username"`
	// Password is the root password; never returned by a read.
	Password string `json:"password"`
	// PendingPassword is a root password being rotated in: set before the
	// ALTER ROLE, cleared after. Found set, the rotation's outcome is
	// unknown (a crash) and the next connection tries both.
	PendingPassword        string         `json:"pending_password,omitempty"`
	AllowedRoles           []string       `json:"allowed_roles"`
	VerifyConnection       bool           `json:"verify_connection"`
	MaxOpenConnections     int            `json:"max_open_connections"`
	MaxConnectionLifetime  time.Duration  `json:"max_connection_lifetime"`
	RootRotationStatements []string       `json:"root_rotation_statements"`
	PasswordPolicy         passwordPolicy `json:"password_policy"`
	PasswordAuthentication string         `json:"password_authentication"`
	UsernameTemplate       string         `json:"username_template"`
}

const defaultMaxOpenConnections = 4

// conn is the postgres configuration of the connection.
func (c *dbConfig) conn() postgres.Config {
	return c.connWith(c.Password)
}

func (c *dbConfig) connWith(password string) postgres.Config {
	return postgres.Config{
		ConnectionURL:          c.ConnectionURL,
		Username:               c.Username,
		Password:               password,
		MaxOpenConnections:     c.MaxOpenConnections,
		MaxConnectionLifetime:  c.MaxConnectionLifetime,
		PasswordAuthentication: c.PasswordAuthentication,
	}
}

// allows reports whether role may use this configuration.
func (c *dbConfig) allows(role string) bool {
	for _, p := range c.AllowedRoles {
		if globMatch(p, role) {
			return true
		}
	}
	return false
}

// validate checks a configuration before it is stored.
func (c *dbConfig) validate(now func() time.Time) error {
	if c.PluginName != postgres.PluginName {
		return logical.InvalidRequest("plugin_name must be %q (the only database plugin this engine has)", postgres.PluginName)
	}
	if c.MaxOpenConnections < 1 {
		return logical.InvalidRequest("max_open_connections must be at least 1")
	}
	if err := c.PasswordPolicy.withDefaults().Validate(); err != nil {
		return err
	}
	if c.UsernameTemplate != "" {
		if _, err := renderUsername(c.UsernameTemplate, usernameData{RoleName: "role", DBName: "db"}, now); err != nil {
			return err
		}
	}
	if len(c.RootRotationStatements) > 0 {
		if err := postgres.Check(c.RootRotationStatements); err != nil {
			return logical.InvalidRequest("root_rotation_statements: %v", err)
		}
	}
	if err := c.conn().Validate(); err != nil {
		return dbError("invalid configuration", err)
	}
	return nil
}

func loadConfig(ctx context.Context, s logical.Storage, name string) (*dbConfig, error) {
	var c dbConfig
	found, err := getJSON(ctx, s, configPrefix+name, "a database configuration", &c)
	if err != nil || !found {
		return nil, err
	}
	return &c, nil
}

func (b *backend) configPaths() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "config/?",
			Operations:   map[logical.Operation]framework.OperationFunc{logical.ListOperation: b.listKeys(configPrefix)},
			HelpSynopsis: "Lists the database connection configurations.",
		},
		{
			Pattern: "config/" + framework.GenericNameRegex("name"),
			Fields: map[string]*framework.FieldSchema{
				"name":        nameField("connection configuration"),
				"plugin_name": {Type: framework.TypeString, Description: `Database plugin: "postgresql-database-plugin".`},
				"connection_url": {Type: framework.TypeString,
					Description: "PostgreSQL URL or key=value string; {{username}} and {{password}} stand for username and password."},
				"username": {Type: framework.TypeString, Description: "Root user name, for {{username}}."},
				"password": {Type: framework.TypeString, Description: "Root password, for {{password}}. Never returned."},
				"allowed_roles": {Type: framework.TypeCommaStringSlice,
					Description: `Roles (and static roles) allowed to use this connection; "*" globs. Empty allows none.`},
				"verify_connection": {Type: framework.TypeBool, Default: true,
					Description: "Connect before saving and refuse a configuration that cannot. Defaults to true."},
				"max_open_connections": {Type: framework.TypeInt,
					Description: "Most connections the engine opens to the database. Defaults to 4."},
				"max_connection_lifetime": {Type: framework.TypeDurationSecond,
					Description: "Close connections older than this. 0 is an hour."},
				"password_authentication": {Type: framework.TypeString, AllowedValues: []any{"", "password", "scram-sha-256"},
					Description: `"password" (default) puts passwords in statements; "scram-sha-256" puts a SCRAM verifier computed by Ward instead.`},
				"username_template": {Type: framework.TypeString,
					Description: "Go template for dynamic user names (.RoleName, .DBName; random, truncate, unix_time, ...)."},
			},
			TakesArbitraryInput: true, // root_rotation_statements, password_policy
			ExistenceCheck:      b.configExists,
			Operations: map[logical.Operation]framework.OperationFunc{
				logical.CreateOperation: b.configWrite,
				logical.UpdateOperation: b.configWrite,
				logical.ReadOperation:   b.configRead,
				logical.DeleteOperation: b.configDelete,
			},
			HelpSynopsis: "Configures a connection to a database.",
			HelpDescription: `Also takes root_rotation_statements (string or list of templates with
{{name}} and {{password}}; default ALTER ROLE ... WITH PASSWORD) and
password_policy ({"length": 24, "charset": "..."} or its JSON text). A write
changes only the fields it sets; the connection is verified unless
verify_connection is false.`,
		},
		{
			Pattern:      "reset/" + framework.GenericNameRegex("name"),
			Fields:       map[string]*framework.FieldSchema{"name": nameField("connection configuration")},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathReset},
			HelpSynopsis: "Closes a configuration's connections; the next use opens new ones.",
		},
		{
			Pattern:      "rotate-root/" + framework.GenericNameRegex("name"),
			Fields:       map[string]*framework.FieldSchema{"name": nameField("connection configuration")},
			Operations:   map[logical.Operation]framework.OperationFunc{logical.UpdateOperation: b.pathRotateRoot},
			HelpSynopsis: "Sets a new random root password that only Ward knows.",
			HelpDescription: `Runs root_rotation_statements (default ALTER ROLE "{{name}}" WITH PASSWORD
'{{password}}') as the root user, then stores the new password. Needs username
and a connection_url that uses {{password}}.`,
		},
	}
}

// listKeys lists the names stored under prefix.
func (b *backend) listKeys(prefix string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
		s, err := b.storage(req)
		if err != nil {
			return nil, err
		}
		keys, err := s.List(ctx, prefix)
		if err != nil {
			return nil, storageErr("listing", err)
		}
		return logical.ListResponse(keys), nil
	}
}

func (b *backend) configExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := nameOf(d)
	if err != nil {
		return false, err
	}
	s, err := b.storage(req)
	if err != nil {
		return false, err
	}
	c, err := loadConfig(ctx, s, name)
	return c != nil, err
}

func (b *backend) configWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.configLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()

	c, err := loadConfig(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = &dbConfig{MaxOpenConnections: defaultMaxOpenConnections}
	}
	if v, ok := d.GetOk("plugin_name"); ok {
		c.PluginName = v.(string)
	}
	if v, ok := d.GetOk("connection_url"); ok {
		c.ConnectionURL = v.(string)
	}
	if v, ok := d.GetOk("username"); ok {
		c.Username = v.(string)
	}
	if v, ok := d.GetOk("password"); ok {
		c.Password = v.(string)
		c.PendingPassword = ""
	}
	if v, ok := d.GetOk("allowed_roles"); ok {
		c.AllowedRoles = v.([]string)
	}
	if v, ok := d.GetOk("max_open_connections"); ok {
		c.MaxOpenConnections = v.(int)
	}
	if v, ok := d.GetOk("max_connection_lifetime"); ok {
		c.MaxConnectionLifetime = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("password_authentication"); ok {
		c.PasswordAuthentication = v.(string)
	}
	if v, ok := d.GetOk("username_template"); ok {
		c.UsernameTemplate = v.(string)
	}
	if st, ok, err := statementsField(d, "root_rotation_statements"); err != nil {
		return nil, err
	} else if ok {
		c.RootRotationStatements = st
	}
	if raw, ok := d.Raw["password_policy"]; ok {
		p, err := parsePasswordPolicy(raw)
		if err != nil {
			return nil, err
		}
		c.PasswordPolicy = p
	}
	c.VerifyConnection = d.Get("verify_connection").(bool)
	if err := c.validate(b.now); err != nil {
		return nil, err
	}
	if c.VerifyConnection {
		if err := postgres.Verify(ctx, c.conn()); err != nil {
			return nil, logical.InvalidRequest("error verifying the connection: %v", err)
		}
	}
	if err := putJSON(ctx, s, configPrefix+name, "a database configuration", c); err != nil {
		return nil, err
	}
	b.dropConn(name)
	return withWarning(nil, unknownFields(req, d, "root_rotation_statements", "password_policy")), nil
}

func (b *backend) configRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c, err := loadConfig(ctx, s, name)
	if err != nil || c == nil {
		return nil, err
	}
	pp := c.PasswordPolicy.withDefaults()
	return &logical.Response{Data: map[string]any{
		"plugin_name":    c.PluginName,
		"plugin_version": "",
		"connection_details": map[string]any{
			"connection_url":          redactURL(c.ConnectionURL),
			"username":                c.Username,
			"max_open_connections":    c.MaxOpenConnections,
			"max_connection_lifetime": c.MaxConnectionLifetime.String(),
			"password_authentication": c.PasswordAuthentication,
		},
		"allowed_roles":                      nonNil(c.AllowedRoles),
		"root_credentials_rotate_statements": nonNil(c.RootRotationStatements),
		"password_policy":                    map[string]any{"length": pp.Length, "charset": pp.Charset},
		"username_template":                  c.UsernameTemplate,
		"verify_connection":                  c.VerifyConnection,
	}}, nil
}

func (b *backend) configDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.configLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()
	if err := s.Delete(ctx, configPrefix+name); err != nil {
		return nil, storageErr("deleting a database configuration", err)
	}
	b.dropConn(name)
	return nil, nil
}

func (b *backend) pathReset(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	c, err := loadConfig(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errConfigNotFound(name)
	}
	b.dropConn(name)
	return nil, nil
}

// pathRotateRoot gives the root user a new random password. The new
// password is stored as pending before the ALTER ROLE and promoted after,
// so a crash in between leaves both candidates in storage (see
// settlePendingRootLocked) rather than a password nobody knows.
func (b *backend) pathRotateRoot(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameOf(d)
	if err != nil {
		return nil, err
	}
	s, err := b.storage(req)
	if err != nil {
		return nil, err
	}
	lock := b.configLocks.forKey(name)
	lock.Lock()
	defer lock.Unlock()

	c, err := loadConfig(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errConfigNotFound(name)
	}
	if c.Username == "" || !c.conn().UsesPasswordPlaceholder() {
		return nil, logical.InvalidRequest("rotate-root needs username set and a connection_url that uses {{password}}")
	}
	if c.PendingPassword != "" {
		if err := b.settlePendingRootLocked(ctx, s, name, c); err != nil {
			return nil, err
		}
	}
	newPw, err := c.PasswordPolicy.generate()
	if err != nil {
		return nil, err
	}
	c.PendingPassword = newPw
	if err := putJSON(ctx, s, configPrefix+name, "a database configuration", c); err != nil {
		return nil, err
	}
	db, err := postgres.Open(oneConn(c.conn()))
	if err == nil {
		err = db.SetPassword(ctx, c.RootRotationStatements, c.Username, newPw)
		db.Close()
	}
	if err != nil {
		if statementRejected(err) { // the transaction rolled back: nothing changed
			c.PendingPassword = ""
			_ = putJSON(ctx, s, configPrefix+name, "a database configuration", c)
		}
		return nil, dbError("rotating the root password of "+quote(name), err)
	}
	c.Password, c.PendingPassword = newPw, ""
	if err := putJSON(ctx, s, configPrefix+name, "a database configuration", c); err != nil {
		// The database has the new password and storage has it as
		// pending: the next connection settles it.
		b.dropConn(name)
		return nil, err
	}
	b.dropConn(name)
	b.logInfo("rotated the root password", "config", name)
	return nil, nil
}

// settlePendingRootLocked resolves a root rotation interrupted after its
// pending password was stored: whichever of the stored and the pending
// password the server accepts becomes the password. The caller holds the
// configuration's lock.
func (b *backend) settlePendingRootLocked(ctx context.Context, s logical.Storage, name string, c *dbConfig) error {
	if err := postgres.Verify(ctx, c.conn()); err == nil {
		c.PendingPassword = ""
	} else if err2 := postgres.Verify(ctx, c.connWith(c.PendingPassword)); err2 == nil {
		c.Password, c.PendingPassword = c.PendingPassword, ""
	} else {
		return dbError("database "+quote(name)+": an interrupted root rotation could not be settled", err)
	}
	return putJSON(ctx, s, configPrefix+name, "a database configuration", c)
}

// oneConn is c limited to one connection, for one-off operations.
func oneConn(c postgres.Config) postgres.Config {
	c.MaxOpenConnections = 1
	return c
}

// statementRejected reports whether err is the server refusing a
// statement (or a template refused before sending), after which the
// transaction is known not to have committed.
func statementRejected(err error) bool {
	var pe *postgres.Error
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Kind == postgres.KindStatement || pe.Kind == postgres.KindTemplate || pe.Kind == postgres.KindConfig
}

// passwordKV matches a password in a key=value connection string.
var passwordKV = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactURL hides a password written into a connection URL (rather than
// templated with {{password}}) for reads.
func redactURL(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		// url.Parse refuses braces in the user info: stand-ins for the
		// placeholders, put back after.
		const userMark, passMark = "wardusermark7e1", "wardpassmark7e1"
		marked := strings.NewReplacer("{{username}}", userMark, "{{password}}", passMark).Replace(s)
		u, err := url.Parse(marked)
		if err != nil {
			return "<hidden: connection_url does not parse>"
		}
		changed := false
		if pw, ok := u.User.Password(); ok && pw != passMark {
			u.User = url.UserPassword(u.User.Username(), "*****")
			changed = true
		}
		if q := u.Query(); q.Has("password") && q.Get("password") != passMark {
			q.Set("password", "*****")
			u.RawQuery = q.Encode()
			changed = true
		}
		if !changed {
			return s
		}
		return strings.NewReplacer(userMark, "{{username}}", passMark, "{{password}}", "%2A%2A%2A%2A%2A", "*****").Replace(u.String())
	}
	return passwordKV.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, "{{password}}") {
			return m
		}
		return passwordKV.ReplaceAllString(m, "${1}*****")
	})
}
