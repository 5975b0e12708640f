package conformance

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/wardproject/ward/sdk/logical"
)

// Fixture tells the suite what it cannot find in a plugin's schema: mount
// options, requests that prepare a mount, and the requests of the profile
// checks (a credential to log in with, a request that issues a lease).
// It is a JSON document (see docs/conformance.md):
//
//	{
//	  "config":  {"version": "2"},
//	  "setup":   [{"operation": "update", "path": "users/alice", "data": {"password": "pw"}}],
//	  "kv":      {"write": "data/{key}", "wrap": "data", "unwrap": "data", "list": "metadata/{parent}", "delete": "metadata/{key}"},
//	  "leasing": {"issue": {"operation": "read", "path": "creds/app"}},
//	  "login":   {"request": {"operation": "update", "path": "login/alice", "data": {"password": "pw"}}}
//	}
type Fixture struct {
	// Config is given to every mount the suite sets up.
	Config map[string]string `json:"config,omitempty"`
	// Setup runs, in order, on the mount the profile checks use; every
	// step must succeed.
	Setup []Step `json:"setup,omitempty"`
	// KV maps the kv profile onto the plugin's paths; nil means KV v1's
	// layout (a secret at every path).
	KV *KVFixture `json:"kv,omitempty"`
	// Leasing is required by the leasing profile.
	Leasing *LeasingFixture `json:"leasing,omitempty"`
	// Login is required by the auth-login profile.
	Login *LoginFixture `json:"login,omitempty"`
}

// Step is one request.
type Step struct {
	Operation logical.Operation `json:"operation"`
	Path      string            `json:"path"`
	Data      map[string]any    `json:"data,omitempty"`
}

// KVFixture maps the kv profile's operations to paths. In templates,
// {key} is a key the suite chooses ("conformance/kv-1") and {parent} its
// folder ("conformance/").
type KVFixture struct {
	Write  string `json:"write,omitempty"`  // default "{key}"
	Read   string `json:"read,omitempty"`   // default: Write
	List   string `json:"list,omitempty"`   // default "{parent}"
	Delete string `json:"delete,omitempty"` // default: Write
	// Wrap nests the written object under this field (KV v2: "data").
	Wrap string `json:"wrap,omitempty"`
	// Unwrap finds the object read under this field of the answer's data.
	Unwrap string `json:"unwrap,omitempty"`
}

// LeasingFixture gives the request that issues a secret under a lease.
type LeasingFixture struct {
	Issue Step `json:"issue"`
}

// LoginFixture gives a login that must succeed and, optionally, one that
// must be refused (by default the login with every string value altered).
type LoginFixture struct {
	Request Step  `json:"request"`
	Refused *Step `json:"refused,omitempty"`
}

// ParseFixture decodes a fixture. Every ${NAME} in it is replaced by the
// value of lookup(NAME) first; a name lookup does not know is an error
// (a fixture that needs a database says which variables to set).
func ParseFixture(b []byte, lookup func(string) (string, bool)) (*Fixture, error) {
	var missing []string
	expanded := os.Expand(string(b), func(name string) string {
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return jsonEscape(v)
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("the fixture needs these variables set: %s", strings.Join(missing, ", "))
	}
	dec := json.NewDecoder(strings.NewReader(expanded))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var f Fixture
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	return &f, f.validate()
}

// jsonEscape escapes a value substituted inside a JSON string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(bytes.Trim(b, `"`))
}

var knownOps = map[logical.Operation]bool{
	logical.ReadOperation: true, logical.CreateOperation: true, logical.UpdateOperation: true,
	logical.PatchOperation: true, logical.DeleteOperation: true, logical.ListOperation: true,
}

func (f *Fixture) validate() error {
	steps := append([]Step(nil), f.Setup...)
	if f.Leasing != nil {
		steps = append(steps, f.Leasing.Issue)
	}
	if f.Login != nil {
		steps = append(steps, f.Login.Request)
		if f.Login.Refused != nil {
			steps = append(steps, *f.Login.Refused)
		}
	}
	for _, s := range steps {
		if !knownOps[s.Operation] {
			return fmt.Errorf("fixture: step %q: unknown operation %q", s.Path, s.Operation)
		}
	}
	return nil
}

//go:embed fixtures/*.json
var builtinFixtures embed.FS

// BuiltinFixture returns the fixture of a first-party plugin (fixtures/),
// with ${NAME} taken from the environment; ok is false when there is none.
func BuiltinFixture(name string) (f *Fixture, ok bool, err error) {
	b, err := builtinFixtures.ReadFile("fixtures/" + name + ".json")
	if err != nil {
		return nil, false, nil
	}
	f, err = ParseFixture(b, os.LookupEnv)
	return f, true, err
}
