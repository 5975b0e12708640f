// Package config reads the server configuration file. It accepts Vault's
// syntax (HCL or JSON) for the stanzas Ward supports so operators reuse what
// they know; anything else is a clear error rather than silently ignored.
// It is validated and defaulted in one place (Validate).
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// Listener is a `listener "tcp"` stanza.
type Listener struct {
	Address        string `hcl:"address"`
	TLSDisable     bool   `hcl:"tls_disable"`
	TLSCertFile    string `hcl:"tls_cert_file"`
	TLSKeyFile     string `hcl:"tls_key_file"`
	MaxRequestSize int64  `hcl:"max_request_size"`
	// ClusterAddress is where the raft transport listens (host:port).
	ClusterAddress               string `hcl:"cluster_address"`
	UnauthenticatedMetricsAccess bool   `hcl:"-"`
}

// Storage is a `storage "<type>"` stanza: "raft" (Pebble replicated by
// raft; one node until others join) or "pebble" (one node, no raft).
type Storage struct {
	Type string
	Path string `hcl:"path"`
	// NodeID (raft) is the node's name in the cluster, as in Vault; by
	// default one is generated at first start and kept with the data.
	NodeID string `hcl:"node_id"`
}

// Config is the server configuration.
type Config struct {
	Listeners       []Listener
	Storage         *Storage
	APIAddr         string
	ClusterAddr     string
	ClusterName     string
	PluginDirectory string
	// WasmCacheDir keeps compiled WASM plugins across restarts; default
	// "wasm-cache" inside the storage path.
	WasmCacheDir    string
	DefaultLeaseTTL time.Duration
	MaxLeaseTTL     time.Duration
	LogLevel        string
	LogFormat       string
	// ReportedVersion is the Vault-compatible version the server reports in
	// sys/health and sys/seal-status; clients gate features on it.
	ReportedVersion string
	// Audits are the audit devices the server enables at every unseal.
	Audits []Audit
	// Seals are the seal stanzas: none (Shamir), one, or one enabled and
	// one disabled during a seal migration.
	Seals []Seal
	// UnsafeAllowAPIAuditCreation lets sys/audit create devices at
	// runtime. Off by default: creating an audit device (a file path, a
	// socket) through the API was a remote-code-execution hole in Vault
	// and OpenBao (CVE-2025-6000).
	UnsafeAllowAPIAuditCreation bool
	// Ignored lists Vault settings accepted for compatibility but without
	// effect in Ward; the server logs them.
	Ignored []string
}

// Audit is an audit device stanza, in OpenBao's shape:
//
//	audit "file" "main" {
//	  description = "local tamper-evident log"
//	  options {
//	    file_path = "/var/log/ward/audit.log"
//	  }
//	}
type Audit struct {
	Type        string
	Path        string
	Description string
	Options     map[string]string
}

// DefaultReportedVersion is the Vault API level Ward implements, reported
// unless the configuration says otherwise.
const DefaultReportedVersion = "1.15.0+ward"

var semverRe = regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// ignoredKeys are Vault settings that make no sense for Ward but appear in
// configs operators copy; accepted with a warning.
var ignoredKeys = map[string]bool{"ui": true, "disable_mlock": true}

// ParseFile reads a configuration file (HCL or JSON).
func ParseFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads configuration text and validates it.
func Parse(text string) (*Config, error) {
	file, err := hcl.Parse(text)
	if err != nil {
		return nil, err
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return nil, errors.New("configuration is not an object")
	}
	c := &Config{}
	for _, item := range list.Items {
		key := item.Keys[0].Token.Value().(string)
		switch key {
		case "listener":
			l, err := parseListener(item)
			if err != nil {
				return nil, err
			}
			c.Listeners = append(c.Listeners, *l)
		case "storage", "backend":
			if c.Storage != nil {
				return nil, errors.New("only one storage stanza is allowed")
			}
			s, err := parseStorage(item)
			if err != nil {
				return nil, err
			}
			c.Storage = s
		case "api_addr":
			err = decodeString(item, &c.APIAddr)
		case "cluster_addr":
			err = decodeString(item, &c.ClusterAddr)
		case "cluster_name":
			err = decodeString(item, &c.ClusterName)
		case "plugin_directory":
			err = decodeString(item, &c.PluginDirectory)
		case "wasm_cache_dir":
			err = decodeString(item, &c.WasmCacheDir)
		case "log_level":
			err = decodeString(item, &c.LogLevel)
		case "log_format":
			err = decodeString(item, &c.LogFormat)
		case "reported_version":
			err = decodeString(item, &c.ReportedVersion)
		case "default_lease_ttl":
			c.DefaultLeaseTTL, err = decodeDuration(item)
		case "max_lease_ttl":
			c.MaxLeaseTTL, err = decodeDuration(item)
		case "unsafe_allow_api_audit_creation":
			err = hcl.DecodeObject(&c.UnsafeAllowAPIAuditCreation, item.Val)
		case "seal":
			var sl *Seal
			if sl, err = parseSeal(item); err == nil {
				c.Seals = append(c.Seals, *sl)
			}
		case "audit":
			var a *Audit
			if a, err = parseAudit(item); err == nil {
				for _, other := range c.Audits {
					if other.Path == a.Path {
						err = fmt.Errorf("audit device %q declared twice", a.Path)
					}
				}
				c.Audits = append(c.Audits, *a)
			}
		default:
			if ignoredKeys[key] {
				c.Ignored = append(c.Ignored, key)
				continue
			}
			return nil, fmt.Errorf("line %d: unsupported configuration key %q", item.Pos().Line, key)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", item.Pos().Line, key, err)
		}
	}
	return c, c.Validate()
}

func decodeString(item *ast.ObjectItem, out *string) error {
	return hcl.DecodeObject(out, item.Val)
}

// decodeDuration accepts "768h", "30m" or a number of seconds.
func decodeDuration(item *ast.ObjectItem) (time.Duration, error) {
	var raw any
	if err := hcl.DecodeObject(&raw, item.Val); err != nil {
		return 0, err
	}
	switch v := raw.(type) {
	case int:
		return time.Duration(v) * time.Second, nil
	case string:
		return time.ParseDuration(v)
	}
	return 0, fmt.Errorf("expected a duration, got %T", raw)
}

// checkKeys rejects keys a stanza does not know.
func checkKeys(item *ast.ObjectItem, allowed ...string) error {
	obj, ok := item.Val.(*ast.ObjectType)
	if !ok {
		return fmt.Errorf("line %d: expected a block", item.Pos().Line)
	}
	for _, it := range obj.List.Items {
		k := it.Keys[0].Token.Value().(string)
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("line %d: unsupported key %q in %s", it.Pos().Line, k, item.Keys[0].Token.Value())
		}
	}
	return nil
}

func label(item *ast.ObjectItem) (string, error) {
	if len(item.Keys) != 2 {
		return "", fmt.Errorf("line %d: %s needs exactly one type label", item.Pos().Line, item.Keys[0].Token.Value())
	}
	return item.Keys[1].Token.Value().(string), nil
}

func parseListener(item *ast.ObjectItem) (*Listener, error) {
	typ, err := label(item)
	if err != nil {
		return nil, err
	}
	if typ != "tcp" {
		return nil, fmt.Errorf("line %d: unsupported listener type %q (only \"tcp\")", item.Pos().Line, typ)
	}
	if err := checkKeys(item, "address", "tls_disable", "tls_cert_file", "tls_key_file", "max_request_size", "cluster_address", "telemetry"); err != nil {
		return nil, err
	}
	var l Listener
	if err := hcl.DecodeObject(&l, item.Val); err != nil {
		return nil, fmt.Errorf("line %d: listener: %w", item.Pos().Line, err)
	}
	var raw map[string]any
	if err := hcl.DecodeObject(&raw, item.Val); err == nil {
		if tel, ok := raw["telemetry"].([]map[string]any); ok {
			for _, t := range tel {
				for k, v := range t {
					if k != "unauthenticated_metrics_access" {
						return nil, fmt.Errorf("line %d: unsupported key %q in listener telemetry", item.Pos().Line, k)
					}
					b, ok := v.(bool)
					if !ok {
						return nil, fmt.Errorf("line %d: unauthenticated_metrics_access must be a boolean", item.Pos().Line)
					}
					l.UnauthenticatedMetricsAccess = b
				}
			}
		}
	}
	return &l, nil
}

func parseAudit(item *ast.ObjectItem) (*Audit, error) {
	if len(item.Keys) != 3 {
		return nil, errors.New(`needs a type and a path label: audit "file" "main" { ... }`)
	}
	a := &Audit{Type: item.Keys[1].Token.Value().(string), Path: strings.Trim(item.Keys[2].Token.Value().(string), "/")}
	if a.Path == "" || strings.ContainsAny(a.Path, "/ \t") {
		return nil, fmt.Errorf("invalid audit device path %q", a.Path)
	}
	if err := checkKeys(item, "description", "options"); err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := hcl.DecodeObject(&raw, item.Val); err != nil {
		return nil, err
	}
	if d, ok := raw["description"]; ok {
		s, isStr := d.(string)
		if !isStr {
			return nil, errors.New("description must be a string")
		}
		a.Description = s
	}
	a.Options = map[string]string{}
	var blocks []map[string]any
	switch o := raw["options"].(type) {
	case nil:
	case map[string]any:
		blocks = []map[string]any{o}
	case []map[string]any:
		blocks = o
	default:
		return nil, errors.New("options must be a block of key = value")
	}
	for _, b := range blocks {
		for k, v := range b {
			switch v := v.(type) {
			case string:
				a.Options[k] = v
			case int:
				if k == "mode" {
					// HCL reads an unquoted 0640 as octal; keep it octal.
					a.Options[k] = fmt.Sprintf("%04o", v)
				} else {
					a.Options[k] = fmt.Sprint(v)
				}
			case bool, int64, float64:
				a.Options[k] = fmt.Sprint(v)
			default:
				return nil, fmt.Errorf("option %q must be a string, number or boolean", k)
			}
		}
	}
	return a, nil
}

func parseStorage(item *ast.ObjectItem) (*Storage, error) {
	typ, err := label(item)
	if err != nil {
		return nil, err
	}
	keys := map[string][]string{"raft": {"path", "node_id"}, "pebble": {"path"}}[typ]
	if keys == nil {
		return nil, fmt.Errorf("line %d: unsupported storage type %q (supported: \"raft\", \"pebble\")", item.Pos().Line, typ)
	}
	if err := checkKeys(item, keys...); err != nil {
		return nil, err
	}
	s := &Storage{Type: typ}
	if err := hcl.DecodeObject(s, item.Val); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	switch strings.ToLower(c.LogLevel) {
	case "trace", "debug", "info", "warn", "warning", "error":
	default:
		return fmt.Errorf("log_level %q: use trace, debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "standard"
	case "standard", "json":
	default:
		return fmt.Errorf("log_format %q: use standard or json", c.LogFormat)
	}
	if c.ReportedVersion == "" {
		c.ReportedVersion = DefaultReportedVersion
	}
	if !semverRe.MatchString(c.ReportedVersion) {
		return fmt.Errorf("reported_version %q is not a semantic version like 1.15.0", c.ReportedVersion)
	}
	if c.MaxLeaseTTL == 0 {
		c.MaxLeaseTTL = 768 * time.Hour
	}
	if c.DefaultLeaseTTL == 0 {
		c.DefaultLeaseTTL = c.MaxLeaseTTL
	}
	if c.DefaultLeaseTTL > c.MaxLeaseTTL {
		return errors.New("default_lease_ttl must not exceed max_lease_ttl")
	}
	if err := c.validateSeals(); err != nil {
		return err
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Address == "" {
			l.Address = "127.0.0.1:8200"
		}
		host, _, err := net.SplitHostPort(l.Address)
		if err != nil {
			return fmt.Errorf("listener address %q: %w", l.Address, err)
		}
		if l.TLSDisable {
			if !isLoopback(host) {
				return fmt.Errorf("listener %s: tls_disable is only allowed on a loopback address; configure tls_cert_file and tls_key_file", l.Address)
			}
		} else if l.TLSCertFile == "" || l.TLSKeyFile == "" {
			return fmt.Errorf("listener %s: tls_cert_file and tls_key_file are required unless tls_disable = true", l.Address)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
