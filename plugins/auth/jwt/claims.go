package jwt

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// getClaim finds a claim by name or, when name starts with "/", by JSON
// pointer (RFC 6901) into nested objects and arrays, as Vault does. A
// claim present with the value null counts as absent.
func getClaim(claims map[string]any, name string) (any, bool) {
	if !strings.HasPrefix(name, "/") {
		v, ok := claims[name]
		return v, ok && v != nil
	}
	var cur any = claims
	for _, tok := range strings.Split(name[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) || strconv.Itoa(i) != tok {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, cur != nil
}

// scalarString renders a string, number or boolean claim value as text.
// Numbers keep the token's own spelling (claims are decoded with
// UseNumber), so 12345678901234567890 does not become 1.2345678901234567e+19.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// userName returns the value of the role's user claim: a non-empty string
// or a number.
func userName(claims map[string]any, r *role) (string, error) {
	var v any
	var ok bool
	if r.UserClaimJSONPointer {
		v, ok = getClaim(claims, r.UserClaim)
	} else {
		v, ok = claims[r.UserClaim]
	}
	if !ok {
		return "", fmt.Errorf("user claim %q is missing", r.UserClaim)
	}
	var name string
	switch v := v.(type) {
	case string:
		name = v
	case json.Number:
		name = v.String()
	default:
		return "", fmt.Errorf("user claim %q is not a string or a number", r.UserClaim)
	}
	if name == "" {
		return "", fmt.Errorf("user claim %q is empty", r.UserClaim)
	}
	return name, nil
}

// groups returns the groups claim: a list of strings, or one string.
// Empty names are dropped. The claim must be present when configured.
func groups(claims map[string]any, claim string) ([]string, error) {
	v, ok := getClaim(claims, claim)
	if !ok {
		return nil, fmt.Errorf("groups claim %q is missing", claim)
	}
	var raw []any
	switch v := v.(type) {
	case string:
		raw = []any{v}
	case []any:
		raw = v
	default:
		return nil, fmt.Errorf("groups claim %q is not a list of strings", claim)
	}
	out := make([]string, 0, len(raw))
	for _, g := range raw {
		s, ok := g.(string)
		if !ok {
			return nil, fmt.Errorf("groups claim %q holds a value that is not a string", claim)
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// mappedMetadata copies the mapped claims to metadata keys. Absent claims
// are skipped; strings are copied, numbers and booleans stringified, and
// any other value (object, list) refuses the login, since no flattening
// of it would be one everybody expects.
func mappedMetadata(claims map[string]any, mappings map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(mappings))
	for claim, key := range mappings {
		v, ok := getClaim(claims, claim)
		if !ok {
			continue
		}
		s, ok := scalarString(v)
		if !ok {
			return nil, fmt.Errorf("mapped claim %q is not a string, number or boolean", claim)
		}
		out[key] = s
	}
	return out, nil
}

// checkBoundClaims checks that each bound claim is present and that one
// of its values (a scalar, or the scalars of a list) matches one of the
// bound values, exactly or as a glob.
func checkBoundClaims(claims map[string]any, bound map[string]any, glob bool) error {
	for claim, want := range bound {
		v, ok := getClaim(claims, claim)
		if !ok {
			return fmt.Errorf("bound claim %q is missing", claim)
		}
		var have []string
		if list, isList := v.([]any); isList {
			for _, e := range list {
				if s, ok := scalarString(e); ok {
					have = append(have, s)
				}
			}
		} else if s, ok := scalarString(v); ok {
			have = []string{s}
		} else {
			return fmt.Errorf("bound claim %q is not a scalar or a list", claim)
		}
		if !anyMatch(boundValues(want), have, glob) {
			return fmt.Errorf("bound claim %q matches none of the bound values", claim)
		}
	}
	return nil
}

// boundValues reads a stored bound claim value: a string, or a list that
// JSON decoding made []any (or the role write left []string).
func boundValues(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func anyMatch(want, have []string, glob bool) bool {
	for _, w := range want {
		for _, h := range have {
			if (glob && globMatch(w, h)) || (!glob && w == h) {
				return true
			}
		}
	}
	return false
}

// globMatch reports whether s matches pattern, in which "*" matches any
// run of characters (possibly empty) and every other character itself.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
