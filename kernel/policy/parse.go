package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
)

// ErrInvalidPolicy is wrapped by every error Parse returns (it is what
// (*ParseError).Unwrap reports), so the HTTP layer can answer 400 with
// errors.Is(err, ErrInvalidPolicy).
var ErrInvalidPolicy = errors.New("invalid policy")

// ParseError describes why a policy text was rejected. Line is the 1-based
// line of the offending construct in the policy text, or 0 when unknown (the
// HCL library's JSON parser does not record positions). Msg never contains
// anything but the policy text itself, so it is safe to return to the
// client that submitted it.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("failed to parse policy: line %d: %s", e.Line, e.Msg)
	}
	return "failed to parse policy: " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalidPolicy) hold.
func (e *ParseError) Unwrap() error { return ErrInvalidPolicy }

func parseErr(line int, format string, args ...any) *ParseError {
	return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// ParseOptions tunes Parse. The zero value is the production setting.
type ParseOptions struct {
	// MaxConditionCost bounds the cost a condition may be estimated to have
	// (cel-go's static estimate with Ward's input size bounds, see doc.go).
	// 0 means DefaultMaxConditionCost.
	MaxConditionCost uint64
}

func (o ParseOptions) withDefaults() ParseOptions {
	if o.MaxConditionCost == 0 {
		o.MaxConditionCost = DefaultMaxConditionCost
	}
	return o
}

// Policy is one parsed ACL policy. A *Policy is immutable once Parse has
// returned it: ACLs built from it share its rules and compiled conditions.
type Policy struct {
	// Name is the policy name, lower-cased.
	Name string
	// Raw is the text the policy was parsed from.
	Raw string
	// Paths are the path blocks in the order they appear.
	Paths []*PathRules
	// Templated reports that some pattern uses identity templating
	// ("{{identity.entity.id}}"). Ward has no identity store yet, so such
	// rules are kept (and returned on read) but never match anything.
	Templated bool
}

// PathRules is one path block.
type PathRules struct {
	// Pattern is the path pattern as written, without a leading "/":
	// exact ("sys/mounts"), prefix ("secret/*"), with segment wildcards
	// ("secret/+/data/*").
	Pattern string
	// Line is the line of the block in Policy.Raw (0 when unknown).
	Line int
	// Capabilities are the capabilities granted, in the order written,
	// including those the legacy "policy" key expands to. A block that
	// contains "deny" has exactly ["deny"].
	Capabilities []string
	// AllowedParameters and DeniedParameters map a lower-cased parameter
	// name (or "*") to the values allowed/denied; an empty list means any
	// value. nil when the key is absent.
	AllowedParameters map[string][]any
	DeniedParameters  map[string][]any
	// RequiredParameters must all be present in the request data.
	RequiredParameters []string
	// MinWrappingTTL and MaxWrappingTTL bound the TTL of a response-wrapped
	// request; 0 means unset.
	MinWrappingTTL time.Duration
	MaxWrappingTTL time.Duration
	// Condition is the CEL expression that must hold for this block to
	// apply; "" when the block is unconditional.
	Condition string
	// Templated reports identity templating in Pattern (see Policy).
	Templated bool

	perms perms
	pat   pattern
	cond  *condition
}

// validPathKeys are the keys a path block may hold. Vault also accepts
// mfa_methods, control_group and subscribe_event_types (Enterprise and event
// features Ward lacks); they are rejected rather than ignored, because
// ignoring control_group or mfa_methods would grant without the approval or
// MFA the author required.
var validPathKeys = []string{
	"capabilities", "policy", "comment",
	"allowed_parameters", "denied_parameters", "required_parameters",
	"min_wrapping_ttl", "max_wrapping_ttl", "condition",
}

// rawPathRules is what the HCL decoder fills from one path block.
type rawPathRules struct {
	Policy             string           `hcl:"policy"`
	Capabilities       []string         `hcl:"capabilities"`
	AllowedParameters  map[string][]any `hcl:"allowed_parameters"`
	DeniedParameters   map[string][]any `hcl:"denied_parameters"`
	RequiredParameters []string         `hcl:"required_parameters"`
	MinWrappingTTL     any              `hcl:"min_wrapping_ttl"`
	MaxWrappingTTL     any              `hcl:"max_wrapping_ttl"`
	Condition          string           `hcl:"condition"`
}

// NormalizeName returns the canonical form of a policy name: trimmed and
// lower-cased, as Vault stores them.
func NormalizeName(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// IsReservedName reports whether users may not create, update or delete a
// policy of that name: "root" (built in, grants everything) and the names
// Vault reserves for its fixed internal policies ("response-wrapping",
// "control-group"). "default" is not reserved: it may be rewritten, but the
// store must not delete it.
func IsReservedName(name string) bool {
	switch NormalizeName(name) {
	case RootPolicyName, "response-wrapping", "control-group":
		return true
	}
	return false
}

// Parse parses an ACL policy in Vault's HCL (or JSON) syntax, validates every
// rule and compiles and type-checks its conditions. Errors wrap
// ErrInvalidPolicy and are *ParseError values naming the line when the
// syntax has positions (HCL does, the library's JSON parser does not).
func Parse(name, text string, opts ParseOptions) (*Policy, error) {
	opts = opts.withDefaults()
	root, err := parseHCL(text)
	if err != nil {
		return nil, err
	}
	list, ok := root.Node.(*ast.ObjectList)
	if !ok {
		return nil, parseErr(0, "does not contain a root object")
	}
	if isJSON(text) {
		if err := checkJSONParameterLists(text); err != nil {
			return nil, err
		}
	}
	for _, item := range list.Items {
		key := itemKey(item)
		if key != "path" && key != "name" {
			return nil, parseErr(item.Pos().Line, "invalid key %q", key)
		}
	}

	p := &Policy{Name: NormalizeName(name), Raw: text}
	for _, item := range list.Filter("path").Items {
		pr, err := parsePath(item, opts)
		if err != nil {
			return nil, err
		}
		p.Templated = p.Templated || pr.Templated
		p.Paths = append(p.Paths, pr)
	}
	return p, nil
}

// parseHCL runs the HCL library's parser. The library is old and has panicked
// on hostile input before; a panic there becomes a parse error rather than a
// crashed server.
func parseHCL(text string) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, parseErr(0, "malformed policy")
		}
	}()
	f, err = hcl.Parse(text)
	if err != nil {
		return nil, hclError(err)
	}
	return f, nil
}

// decodeHCL is hcl.DecodeObject with the same panic guard as parseHCL.
func decodeHCL(out any, n ast.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("malformed value")
		}
	}()
	return hcl.DecodeObject(out, n)
}

// hclError turns an HCL library error into a ParseError with its line.
func hclError(err error) *ParseError {
	var pe *hclparser.PosError
	if errors.As(err, &pe) {
		return &ParseError{Line: pe.Pos.Line, Msg: pe.Err.Error()}
	}
	return &ParseError{Msg: err.Error()}
}

func itemKey(item *ast.ObjectItem) string {
	if len(item.Keys) == 0 {
		return ""
	}
	if s, ok := item.Keys[0].Token.Value().(string); ok {
		return s
	}
	return item.Keys[0].Token.Text
}

// itemLine is the line of an item; filtered items have lost their first key,
// so their value's position stands in.
func itemLine(item *ast.ObjectItem) int {
	if l := item.Pos().Line; l > 0 {
		return l
	}
	if item.Val != nil {
		return item.Val.Pos().Line
	}
	return 0
}

func parsePath(item *ast.ObjectItem, opts ParseOptions) (*PathRules, error) {
	line := itemLine(item)
	if len(item.Keys) != 1 {
		return nil, parseErr(line, "a path block needs exactly one pattern: path \"<pattern>\" { ... }")
	}
	pr := &PathRules{Pattern: strings.TrimPrefix(itemKey(item), "/"), Line: line}
	errf := func(l int, format string, args ...any) error {
		if l == 0 {
			l = line
		}
		return parseErr(l, "path %q: %s", pr.Pattern, fmt.Sprintf(format, args...))
	}

	body, ok := item.Val.(*ast.ObjectType)
	if !ok {
		return nil, errf(0, "expected a block { ... }")
	}
	keyLine := map[string]int{}
	for _, sub := range body.List.Items {
		k := itemKey(sub)
		if !slices.Contains(validPathKeys, k) {
			return nil, errf(sub.Pos().Line, "invalid key %q", k)
		}
		if _, seen := keyLine[k]; !seen {
			keyLine[k] = sub.Pos().Line
		}
	}

	var raw rawPathRules
	if err := decodeHCL(&raw, item.Val); err != nil {
		var pe *hclparser.PosError
		if errors.As(err, &pe) {
			return nil, errf(pe.Pos.Line, "%v", pe.Err)
		}
		return nil, errf(0, "%v", err)
	}

	pat, err := compilePattern(pr.Pattern)
	if err != nil {
		return nil, errf(0, "%v", err)
	}
	pr.pat = pat
	pr.Templated = pat.templated

	// The legacy "policy" shorthand, as Vault maps it (vault/policy.go
	// parsePaths): deny replaces everything, the others add to capabilities.
	caps := raw.Capabilities
	switch raw.Policy {
	case "":
	case "deny":
		caps = []string{"deny"}
	case "read":
		caps = append(slices.Clone(caps), "read", "list")
	case "write":
		caps = append(slices.Clone(caps), "create", "read", "update", "delete", "list")
	case "sudo":
		caps = append(slices.Clone(caps), "create", "read", "update", "delete", "list", "sudo")
	default:
		return nil, errf(keyLine["policy"], "invalid policy %q (want deny, read, write or sudo)", raw.Policy)
	}
	for _, c := range caps {
		bit, ok := capBits[c]
		if !ok {
			return nil, errf(keyLine["capabilities"], "invalid capability %q", c)
		}
		pr.perms.caps |= bit
	}
	pr.Capabilities = caps
	if pr.perms.caps&capDeny != 0 {
		// Deny stands alone (Vault drops every other capability and
		// the parameter constraints of a deny block).
		pr.perms.caps = capDeny
		pr.Capabilities = []string{"deny"}
	}

	if raw.AllowedParameters != nil {
		pr.AllowedParameters = lowerKeys(raw.AllowedParameters)
	}
	if raw.DeniedParameters != nil {
		pr.DeniedParameters = lowerKeys(raw.DeniedParameters)
	}
	if len(raw.RequiredParameters) > 0 {
		pr.RequiredParameters = raw.RequiredParameters
	}
	if pr.MinWrappingTTL, err = parseDurationSecond(raw.MinWrappingTTL); err != nil {
		return nil, errf(keyLine["min_wrapping_ttl"], "min_wrapping_ttl: %v", err)
	}
	if pr.MaxWrappingTTL, err = parseDurationSecond(raw.MaxWrappingTTL); err != nil {
		return nil, errf(keyLine["max_wrapping_ttl"], "max_wrapping_ttl: %v", err)
	}
	if pr.MinWrappingTTL != 0 && pr.MaxWrappingTTL != 0 && pr.MaxWrappingTTL < pr.MinWrappingTTL {
		return nil, errf(keyLine["max_wrapping_ttl"], "max_wrapping_ttl cannot be less than min_wrapping_ttl")
	}
	if pr.perms.caps != capDeny {
		pr.perms.allowed = pr.AllowedParameters
		pr.perms.denied = pr.DeniedParameters
		pr.perms.required = pr.RequiredParameters
		pr.perms.minWrap = pr.MinWrappingTTL
		pr.perms.maxWrap = pr.MaxWrappingTTL
	}

	if _, has := keyLine["condition"]; has {
		if strings.TrimSpace(raw.Condition) == "" {
			return nil, errf(keyLine["condition"], "condition is empty")
		}
		pr.Condition = raw.Condition
		pr.cond, err = compileCondition(raw.Condition, opts.MaxConditionCost)
		if err != nil {
			return nil, errf(keyLine["condition"], "condition: %v", err)
		}
	}
	return pr, nil
}

func lowerKeys(m map[string][]any) map[string][]any {
	out := make(map[string][]any, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// parseDurationSecond reads a TTL as Vault's parseutil.ParseDurationSecond
// does: a number or an all-digit string is seconds, "<n>d" is days, anything
// else goes through time.ParseDuration. Negative values are rejected.
func parseDurationSecond(in any) (time.Duration, error) {
	var d time.Duration
	switch v := in.(type) {
	case nil:
		return 0, nil
	case int:
		return secondsToDuration(float64(v))
	case int64:
		return secondsToDuration(float64(v))
	case float64:
		return secondsToDuration(v)
	case string:
		s := strings.TrimSpace(v)
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return secondsToDuration(float64(n))
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.ParseInt(days, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return secondsToDuration(float64(n) * 86400)
		}
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
	default:
		return 0, fmt.Errorf("invalid duration of type %T", in)
	}
	if d < 0 {
		return 0, errors.New("duration must not be negative")
	}
	return d, nil
}

func secondsToDuration(s float64) (time.Duration, error) {
	if s < 0 {
		return 0, errors.New("duration must not be negative")
	}
	if s*float64(time.Second) > math.MaxInt64 {
		return 0, errors.New("duration overflows")
	}
	return time.Duration(s * float64(time.Second)), nil
}

// isJSON mirrors the HCL library's choice of parser: JSON when the first
// non-space byte opens an object.
func isJSON(text string) bool {
	t := strings.TrimLeft(text, " \t\r\n")
	return strings.HasPrefix(t, "{")
}

// checkJSONParameterLists guards against a defect of the HCL library's JSON
// parser: it silently drops booleans and nested lists inside lists, so
// "denied_parameters": {"force": ["x", true]} would quietly stop denying
// true. Such policies are rejected instead. Text that encoding/json cannot
// read is left to the HCL parser's own verdict.
func checkJSONParameterLists(text string) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	var walk func(v any, inParams bool) error
	walk = func(v any, inParams bool) error {
		switch t := v.(type) {
		case map[string]any:
			for k, sub := range t {
				if inParams {
					if list, ok := sub.([]any); ok {
						for _, el := range list {
							switch el.(type) {
							case bool, []any:
								return parseErr(0, "parameter %q: booleans and nested lists in JSON parameter value lists are not supported (the HCL JSON parser drops them); use HCL syntax", k)
							}
						}
					}
				}
				if err := walk(sub, k == "allowed_parameters" || k == "denied_parameters"); err != nil {
					return err
				}
			}
		case []any:
			for _, sub := range t {
				if err := walk(sub, false); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(v, false)
}
