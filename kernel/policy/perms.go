package policy

import (
	"encoding/json"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"time"
)

// capSet is a set of capabilities as a bitmask.
type capSet uint16

const (
	capDeny capSet = 1 << iota
	capCreate
	capRead
	capUpdate
	capPatch
	capDelete
	capList
	capSudo
)

var capBits = map[string]capSet{
	"deny":   capDeny,
	"create": capCreate,
	"read":   capRead,
	"update": capUpdate,
	"patch":  capPatch,
	"delete": capDelete,
	"list":   capList,
	"sudo":   capSudo,
}

// capNames is capBits in alphabetical order, so strings() is sorted.
var capNames = []struct {
	name string
	bit  capSet
}{
	{"create", capCreate}, {"delete", capDelete}, {"deny", capDeny}, {"list", capList},
	{"patch", capPatch}, {"read", capRead}, {"sudo", capSudo}, {"update", capUpdate},
}

// strings returns the capability names, sorted.
func (c capSet) strings() []string {
	if c == 0 {
		return nil
	}
	out := make([]string, 0, 8)
	for _, n := range capNames {
		if c&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// perms is what a set of rules on one pattern grants: Vault's
// ACLPermissions. Its maps and slices are never mutated once built: merge
// replaces them with fresh ones, so perms values can share them freely.
type perms struct {
	caps     capSet
	minWrap  time.Duration
	maxWrap  time.Duration
	allowed  map[string][]any // nil: no allowed_parameters constraint
	denied   map[string][]any
	required []string
}

// merge folds o into p with Vault's semantics for rules on the same pattern
// coming from several policies (vault/acl.go NewACL):
//
//   - deny wins: once p denies, nothing is added; if o denies, p becomes a
//     bare deny (its parameter constraints are dropped);
//   - capabilities are the union;
//   - wrapping TTLs: of the values that are set, the smaller max and the
//     smaller min are kept;
//   - allowed/denied parameters: the maps are unioned key by key; a key
//     whose list is empty on either side (any value) stays empty, otherwise
//     the value lists are concatenated. A side that sets no parameters
//     leaves the other side's constraints in place (so a policy with
//     allowed_parameters restricts a policy without them on the same
//     pattern: that is Vault's behaviour);
//   - required parameters: the union.
func (p *perms) merge(o *perms) {
	if p.caps&capDeny != 0 {
		return
	}
	if o.caps&capDeny != 0 {
		p.caps = capDeny
		p.allowed, p.denied = nil, nil
		return
	}
	p.caps |= o.caps
	if o.maxWrap > 0 && (p.maxWrap == 0 || o.maxWrap < p.maxWrap) {
		p.maxWrap = o.maxWrap
	}
	if o.minWrap > 0 && (p.minWrap == 0 || o.minWrap < p.minWrap) {
		p.minWrap = o.minWrap
	}
	p.allowed = mergeParams(p.allowed, o.allowed)
	p.denied = mergeParams(p.denied, o.denied)
	if len(o.required) > 0 {
		req := slices.Clone(p.required)
		for _, r := range o.required {
			if !slices.Contains(req, r) {
				req = append(req, r)
			}
		}
		p.required = req
	}
}

// mergeParams returns the union of two parameter maps without modifying
// either.
func mergeParams(dst, src map[string][]any) map[string][]any {
	if len(src) == 0 {
		return dst
	}
	out := make(map[string][]any, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		cur, ok := out[k]
		if len(v) == 0 || (ok && len(cur) == 0) {
			out[k] = []any{}
			continue
		}
		merged := make([]any, 0, len(v)+len(cur))
		merged = append(merged, v...)
		merged = append(merged, cur...)
		out[k] = merged
	}
	return out
}

// checkParameters applies the parameter constraints to request data, as
// Vault's ACL.AllowOperation does: required parameters must be present;
// with no data anything else passes; a denied "*" denies any data; a denied
// parameter whose value matches its list denies; then, unless allowed
// parameters are absent or only "*", every parameter must be allowed (by
// name or by "*") and, when listed by name, have an allowed value.
// Parameter names compare case-insensitively. It returns "" when the data
// passes, else the reason (which names a parameter, never a value).
func (p *perms) checkParameters(data map[string]any) string {
	for _, r := range p.required {
		if _, ok := data[strings.ToLower(r)]; !ok {
			return "required parameter " + quote(r) + " is missing"
		}
	}
	if len(data) == 0 {
		return ""
	}
	if len(p.denied) > 0 {
		if _, all := p.denied["*"]; all {
			return "all parameters are denied"
		}
		for name, v := range data {
			if list, ok := p.denied[strings.ToLower(name)]; ok && valueDenied(v, list) {
				return "parameter " + quote(name) + " has a denied value"
			}
		}
	}
	if len(p.allowed) == 0 {
		return ""
	}
	_, allowAll := p.allowed["*"]
	if allowAll && len(p.allowed) == 1 {
		return ""
	}
	for name, v := range data {
		list, ok := p.allowed[strings.ToLower(name)]
		if !ok {
			if !allowAll {
				return "parameter " + quote(name) + " is not allowed"
			}
			continue
		}
		if !valueAllowed(v, list) {
			return "parameter " + quote(name) + " has a value that is not allowed"
		}
	}
	return ""
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// valueAllowed is Vault's valueInAllowedParameterList: an empty list allows
// anything; the value matches as a whole; or a list value matches when every
// element does, and a string when every comma-separated element does (Vault
// assumes the field may be a comma-separated string slice).
//
// Ward deviation: Vault lets an empty list or an empty string through
// whatever the allowed values (no elements, so "every element matches");
// Ward requires such a value to match the list as a whole, because an
// empty value can mean "inherit" (auth/token/create policies=[]).
func valueAllowed(v any, list []any) bool {
	if len(list) == 0 || valueInList(v, list) {
		return true
	}
	switch t := v.(type) {
	case []any:
		if len(t) == 0 {
			return false
		}
		for _, el := range t {
			if !valueInList(el, list) {
				return false
			}
		}
		return true
	case string:
		parts := splitComma(t)
		if len(parts) == 0 {
			return false
		}
		for _, el := range parts {
			if !valueInList(el, list) {
				return false
			}
		}
		return true
	}
	return false
}

// valueDenied is Vault's valueInDeniedParameterList: an empty list denies
// anything; the value matches as a whole; or any element of a list value,
// or of a comma-separated string, matches.
func valueDenied(v any, list []any) bool {
	if len(list) == 0 || valueInList(v, list) {
		return true
	}
	switch t := v.(type) {
	case []any:
		for _, el := range t {
			if valueInList(el, list) {
				return true
			}
		}
	case string:
		for _, el := range splitComma(t) {
			if valueInList(el, list) {
				return true
			}
		}
	}
	return false
}

// splitComma splits a comma-separated string and trims the elements, as
// Vault's parseutil.ParseCommaStringSlice does for strings.
func splitComma(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// valueInList is Vault's valueInParameterList: strings match with
// globbedStringsMatch; nil matches nil; anything else must be equal.
//
// Ward deviation: numbers compare by value, so the HCL integer 30 matches
// the JSON number 30 of a request (Vault compares an int with a json.Number
// with reflect.DeepEqual, which never matches).
func valueInList(v any, list []any) bool {
	for _, el := range list {
		switch e := el.(type) {
		case nil:
			if v == nil {
				return true
			}
		case string:
			if s, ok := v.(string); ok && globbedStringsMatch(e, s) {
				return true
			}
		default:
			if a, ok := toRat(el); ok {
				if b, ok := toRat(v); ok && a.Cmp(b) == 0 {
					return true
				}
				continue
			}
			if reflect.DeepEqual(el, v) {
				return true
			}
		}
	}
	return false
}

// toRat converts a number (Go numeric type or json.Number) to an exact
// rational for comparison.
func toRat(v any) (*big.Rat, bool) {
	r := new(big.Rat)
	switch n := v.(type) {
	case int:
		return r.SetInt64(int64(n)), true
	case int64:
		return r.SetInt64(n), true
	case int32:
		return r.SetInt64(int64(n)), true
	case uint64:
		return r.SetUint64(n), true
	case float64:
		if r.SetFloat64(n) == nil {
			return nil, false
		}
		return r, true
	case json.Number:
		if _, ok := r.SetString(string(n)); !ok {
			return nil, false
		}
		return r, true
	}
	return nil, false
}

// globbedStringsMatch is Vault's strutil.GlobbedStringsMatch: a leading
// and/or trailing "*" in item matches any suffix/prefix/substring; an item
// shorter than two characters ("*" included) only matches itself.
func globbedStringsMatch(item, val string) bool {
	if len(item) < 2 {
		return val == item
	}
	hasPrefix := strings.HasPrefix(item, "*")
	hasSuffix := strings.HasSuffix(item, "*")
	switch {
	case hasPrefix && hasSuffix:
		return strings.Contains(val, item[1:len(item)-1])
	case hasPrefix:
		return strings.HasSuffix(val, item[1:])
	case hasSuffix:
		return strings.HasPrefix(val, item[:len(item)-1])
	}
	return val == item
}
