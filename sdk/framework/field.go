package framework

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wardproject/ward/sdk/logical"
)

// FieldType is the type a field's raw JSON value is converted to.
type FieldType int

const (
	TypeString FieldType = iota + 1
	TypeInt
	TypeBool
	TypeMap              // map[string]any
	TypeDurationSecond   // "1h", "30s" or a number of seconds -> int seconds
	TypeSlice            // []any
	TypeStringSlice      // []string from a JSON array
	TypeCommaStringSlice // []string from an array or a comma-separated string
	TypeKVPairs          // map[string]string
)

func (t FieldType) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeInt:
		return "int"
	case TypeBool:
		return "bool"
	case TypeMap:
		return "map"
	case TypeDurationSecond:
		return "duration"
	case TypeSlice:
		return "slice"
	case TypeStringSlice, TypeCommaStringSlice:
		return "string-slice"
	case TypeKVPairs:
		return "key-value-pairs"
	}
	return "unknown"
}

// FieldSchema declares one input field of a path.
type FieldSchema struct {
	Type          FieldType
	Description   string
	Default       any
	Required      bool
	AllowedValues []any
}

// FieldData is a request's raw data checked against a path's schema.
type FieldData struct {
	Raw    map[string]any
	Schema map[string]*FieldSchema
}

// Validate converts every present field once so a bad value is reported
// before the handler runs.
func (d *FieldData) Validate() error {
	for name, s := range d.Schema {
		raw, ok := d.Raw[name]
		if !ok {
			if s.Required {
				return logical.InvalidRequest("missing required field %q", name)
			}
			continue
		}
		v, err := convert(s.Type, raw)
		if err != nil {
			return logical.InvalidRequest("field %q: %v", name, err)
		}
		if len(s.AllowedValues) > 0 && !allowed(s.AllowedValues, v) {
			return logical.InvalidRequest("field %q: value not in the allowed values %v", name, s.AllowedValues)
		}
	}
	return nil
}

func allowed(vals []any, v any) bool {
	for _, a := range vals {
		if fmt.Sprint(a) == fmt.Sprint(v) {
			return true
		}
	}
	return false
}

// Get returns the field's value, or its default (or the type's zero value)
// when absent. It panics if the field is not in the schema: that is a bug
// in the plugin, not bad input.
func (d *FieldData) Get(name string) any {
	v, _ := d.GetOk(name)
	if v == nil {
		s := d.schema(name)
		if s.Default != nil {
			if dv, err := convert(s.Type, s.Default); err == nil {
				return dv
			}
		}
		return zero(s.Type)
	}
	return v
}

// GetOk returns the converted value and whether the request set it.
// Conversion errors cannot happen here: Validate ran first.
func (d *FieldData) GetOk(name string) (any, bool) {
	s := d.schema(name)
	raw, ok := d.Raw[name]
	if !ok {
		return nil, false
	}
	v, err := convert(s.Type, raw)
	if err != nil {
		return nil, false
	}
	return v, true
}

func (d *FieldData) schema(name string) *FieldSchema {
	s, ok := d.Schema[name]
	if !ok {
		panic(fmt.Sprintf("framework: field %q is not in the path's schema", name))
	}
	return s
}

func zero(t FieldType) any {
	switch t {
	case TypeString:
		return ""
	case TypeInt, TypeDurationSecond:
		return 0
	case TypeBool:
		return false
	case TypeMap:
		return map[string]any{}
	case TypeSlice:
		return []any{}
	case TypeStringSlice, TypeCommaStringSlice:
		return []string{}
	case TypeKVPairs:
		return map[string]string{}
	}
	return nil
}

func convert(t FieldType, raw any) (any, error) {
	switch t {
	case TypeString:
		switch v := raw.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		case float64, int, int64, bool:
			return fmt.Sprint(v), nil
		}
	case TypeInt:
		return toInt(raw)
	case TypeBool:
		switch v := raw.(type) {
		case bool:
			return v, nil
		case string:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("not a boolean")
			}
			return b, nil
		}
	case TypeMap:
		if v, ok := raw.(map[string]any); ok {
			return v, nil
		}
		if raw == nil {
			return map[string]any{}, nil
		}
	case TypeDurationSecond:
		return toSeconds(raw)
	case TypeSlice:
		if v, ok := raw.([]any); ok {
			return v, nil
		}
	case TypeStringSlice, TypeCommaStringSlice:
		return toStrings(t, raw)
	case TypeKVPairs:
		if m, ok := raw.(map[string]any); ok {
			out := make(map[string]string, len(m))
			for k, v := range m {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("value of %q is not a string", k)
				}
				out[k] = s
			}
			return out, nil
		}
		if raw == nil {
			return map[string]string{}, nil
		}
	default:
		return nil, fmt.Errorf("unknown field type")
	}
	return nil, fmt.Errorf("expected %s, got %T", t, raw)
}

func toInt(raw any) (int, error) {
	switch v := raw.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > math.MaxInt32*float64(1<<31) {
			return 0, fmt.Errorf("not an integer")
		}
		return int(v), nil
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return 0, fmt.Errorf("not an integer")
		}
		return int(i), nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("not an integer")
		}
		return i, nil
	}
	return 0, fmt.Errorf("expected int, got %T", raw)
}

// toSeconds accepts "90", "90s", "1h30m", "2d" (days, as Vault's parseutil
// does) or a number of seconds.
func toSeconds(raw any) (int, error) {
	if s, ok := raw.(string); ok {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
		if i, err := strconv.Atoi(s); err == nil {
			return nonNegative(i)
		}
		if strings.HasSuffix(s, "d") {
			days, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return nonNegative(days * 86400)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return nonNegative(int(d / time.Second))
	}
	i, err := toInt(raw)
	if err != nil {
		return 0, fmt.Errorf("invalid duration")
	}
	return nonNegative(i)
}

func nonNegative(i int) (int, error) {
	if i < 0 {
		return 0, fmt.Errorf("duration must not be negative")
	}
	return i, nil
}

func toStrings(t FieldType, raw any) ([]string, error) {
	switch v := raw.(type) {
	case []string:
		return v, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("expected a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		if t != TypeCommaStringSlice {
			break
		}
		if v == "" {
			return []string{}, nil
		}
		parts := strings.Split(v, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts, nil
	}
	return nil, fmt.Errorf("expected a list of strings, got %T", raw)
}
