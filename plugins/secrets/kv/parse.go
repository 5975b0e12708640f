package kv

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/wardproject/ward/sdk/logical"
)

// toInt converts a JSON-decoded value (float64, json.Number, a decimal
// string, or a Go integer from in-process callers) to an int.
func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		if int64(int(n)) != n {
			return 0, false
		}
		return int(n), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int(n), true
	case json.Number:
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return 0, false
		}
		return toInt(i)
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if err != nil {
			return 0, false
		}
		return toInt(i)
	}
	return 0, false
}

// parseVersions reads the "versions" field of delete/, undelete/ and
// destroy/: a JSON array of integers or of decimal strings, where a string
// may itself hold a comma-separated list ("1,2"), as the CLI sends.
func parseVersions(raw any) ([]int, error) {
	var items []any
	switch v := raw.(type) {
	case nil:
		return nil, errNoVersions
	case []any:
		items = v
	case []int:
		for _, n := range v {
			items = append(items, n)
		}
	case string:
		items = []any{v}
	default:
		return nil, errInvalidVersion
	}
	var out []int
	for _, it := range items {
		if s, ok := it.(string); ok && strings.Contains(s, ",") {
			for part := range strings.SplitSeq(s, ",") {
				if strings.TrimSpace(part) == "" {
					continue
				}
				n, ok := toInt(part)
				if !ok {
					return nil, errInvalidVersion
				}
				out = append(out, n)
			}
			continue
		}
		n, ok := toInt(it)
		if !ok {
			return nil, errInvalidVersion
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errNoVersions
	}
	return out, nil
}

// Limits on custom_metadata, as in Vault and OpenBao.
const (
	maxCustomMetadataKeys        = 64
	maxCustomMetadataKeyLength   = 128
	maxCustomMetadataValueLength = 512
	customMetadataErrPrefix      = "custom_metadata validation failed"
)

// customMetadataInput converts a custom_metadata object to strings. Numbers
// and booleans are written in their JSON form (Vault decodes weakly). Keys
// whose value is null are returned in nulls, sorted, and not in vals: a
// patch deletes them, a full write rejects them.
func customMetadataInput(raw map[string]any) (vals map[string]string, nulls []string, err error) {
	vals = make(map[string]string, len(raw))
	for k, v := range raw {
		switch s := v.(type) {
		case nil:
			nulls = append(nulls, k)
		case string:
			vals[k] = s
		case json.Number:
			vals[k] = s.String()
		case float64:
			vals[k] = strconv.FormatFloat(s, 'f', -1, 64)
		case bool:
			vals[k] = strconv.FormatBool(s)
		default:
			return nil, nil, logical.InvalidRequest("%s: value for key %q is not a string", customMetadataErrPrefix, k)
		}
	}
	sort.Strings(nulls)
	return vals, nulls, nil
}

// validateCustomMetadata enforces the limits. Messages name keys and
// lengths, never values.
func validateCustomMetadata(m map[string]string) error {
	if n := len(m); n > maxCustomMetadataKeys {
		return logical.InvalidRequest("%s: payload must contain at most %d keys, provided %d",
			customMetadataErrPrefix, maxCustomMetadataKeys, n)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		v := m[k]
		if l := len(k); l == 0 || l > maxCustomMetadataKeyLength {
			errs = append(errs, fmt.Sprintf("length of key %q is %d but must be 0 < len(key) <= %d",
				k, l, maxCustomMetadataKeyLength))
		}
		if l := len(v); l == 0 || l > maxCustomMetadataValueLength {
			errs = append(errs, fmt.Sprintf("length of value for key %q is %d but must be 0 < len(value) <= %d",
				k, l, maxCustomMetadataValueLength))
		}
		if !printable(k) {
			errs = append(errs, fmt.Sprintf("key %q contains unprintable characters", k))
		}
		if !printable(v) {
			errs = append(errs, fmt.Sprintf("value for key %q contains unprintable characters", k))
		}
	}
	if len(errs) > 0 {
		return logical.InvalidRequest("%s: %s", customMetadataErrPrefix, strings.Join(errs, "; "))
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// mergePatch applies an RFC 7386 JSON merge patch to target and returns the
// result. target is not modified.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, _ := target.(map[string]any)
	out := make(map[string]any, len(t)+len(p))
	for k, v := range t {
		out[k] = v
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

// objectField returns raw[name] if it is a JSON object (not null).
func objectField(raw map[string]any, name string) (map[string]any, bool) {
	m, ok := raw[name].(map[string]any)
	return m, ok && m != nil
}
