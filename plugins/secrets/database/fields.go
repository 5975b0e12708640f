package database

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wardproject/ward/sdk/framework"
	"github.com/wardproject/ward/sdk/logical"
)

// Statement fields (creation_statements, ...) take a string or a list of
// strings, as in Vault, and password_policy an object or its JSON text.
// The framework's field types take one shape each, so paths with such
// fields take arbitrary input, read them from FieldData.Raw, and report
// unknown fields themselves (unknownFields).

// statementsField reads a statement field: a string is one template (it
// may hold several statements separated by ";"), a list is several.
func statementsField(d *framework.FieldData, name string) ([]string, bool, error) {
	raw, ok := d.Raw[name]
	if !ok {
		return nil, false, nil
	}
	var out []string
	switch v := raw.(type) {
	case nil:
	case string:
		out = []string{v}
	case []string:
		out = v
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, true, logical.InvalidRequest("field %q: expected a string or a list of strings", name)
			}
			out = append(out, s)
		}
	default:
		return nil, true, logical.InvalidRequest("field %q: expected a string or a list of strings", name)
	}
	var kept []string
	for _, s := range out {
		if strings.TrimSpace(s) != "" {
			kept = append(kept, s)
		}
	}
	return kept, true, nil
}

// unknownFields returns Vault's warning for request fields that neither
// the schema nor extra knows, or "" when there are none.
func unknownFields(req *logical.Request, d *framework.FieldData, extra ...string) string {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; ok {
			continue
		}
		known := false
		for _, e := range extra {
			known = known || e == k
		}
		if !known {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return ""
	}
	sort.Strings(unknown)
	return fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown)
}

// withWarning adds w (if any) to resp, creating it when nil.
func withWarning(resp *logical.Response, w string) *logical.Response {
	if w == "" {
		return resp
	}
	if resp == nil {
		resp = &logical.Response{}
	}
	resp.AddWarning(w)
	return resp
}

// nonNil keeps JSON lists as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nameOf returns the validated name captured by a path.
func nameOf(d *framework.FieldData) (string, error) {
	n := d.Get("name").(string)
	if n == "" || strings.Contains(n, "/") || len(n) > 512 {
		return "", logical.InvalidRequest("invalid name")
	}
	return n, nil
}

func nameField(what string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the " + what + "."}
}

// globMatch reports whether s matches pattern, where "*" matches any run
// of characters (Vault's allowed_roles globbing).
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
