package conformance

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"

	"github.com/wardproject/ward/kernel/router"
	"github.com/wardproject/ward/sdk/logical"
)

// pathInfo is one declared path as the suite uses it: its compiled
// pattern and a concrete path that routes to it.
type pathInfo struct {
	idx      int
	ps       logical.PathSchema
	re       *regexp.Regexp // anchored as sdk/framework anchors it; nil if it does not compile
	parsed   *syntax.Regexp
	captures map[string]bool
	ops      map[logical.Operation]bool
	fields   []logical.FieldInfo
	// sample is a path routed to this pattern ("" when none was found:
	// an earlier pattern takes every path this one matches).
	sample string
}

// anchored returns the pattern as sdk/framework matches it.
func anchored(pattern string) string {
	return "^" + strings.TrimSuffix(strings.TrimPrefix(pattern, "^"), "$") + "$"
}

// captureValue is the value the suite puts in a pattern's named groups.
const captureValue = "cfprobe1"

// analyzePaths compiles a schema's patterns and finds a sample path for each.
func analyzePaths(schema *logical.Schema) []*pathInfo {
	if schema == nil {
		return nil
	}
	out := make([]*pathInfo, len(schema.Paths))
	for i, ps := range schema.Paths {
		p := &pathInfo{idx: i, ps: ps, captures: map[string]bool{}, ops: map[logical.Operation]bool{}, fields: ps.Fields}
		for _, op := range ps.Operations {
			p.ops[op] = true
		}
		if re, err := regexp.Compile(anchored(ps.Pattern)); err == nil {
			p.re = re
			for _, n := range re.SubexpNames() {
				if n != "" {
					p.captures[n] = true
				}
			}
		}
		if parsed, err := syntax.Parse(anchored(ps.Pattern), syntax.Perl); err == nil {
			p.parsed = parsed
		}
		out[i] = p
	}
	for _, p := range out {
		if p.re == nil || p.parsed == nil {
			continue
		}
		for _, v := range []string{captureValue, "cfprobe2x"} {
			for _, optional := range []bool{true, false} {
				s, ok := samplePath(p.parsed, v, optional)
				if ok && route(out, s) == p {
					p.sample = s
					break
				}
			}
			if p.sample != "" {
				break
			}
		}
	}
	return out
}

// route returns the path serving reqPath, as sdk/framework routes: the
// first pattern that matches.
func route(paths []*pathInfo, reqPath string) *pathInfo {
	for _, p := range paths {
		if p.re != nil && p.re.MatchString(reqPath) {
			return p
		}
	}
	return nil
}

// samplePath builds a string the pattern matches: named groups hold
// value when it fits, optional parts are included or left out.
func samplePath(re *syntax.Regexp, value string, optional bool) (string, bool) {
	var sb strings.Builder
	if !genSample(re, value, optional, &sb) {
		return "", false
	}
	full, err := regexp.Compile("^(?:" + re.String() + ")$")
	if err != nil || !full.MatchString(sb.String()) {
		return "", false
	}
	return sb.String(), true
}

func genSample(re *syntax.Regexp, value string, optional bool, sb *strings.Builder) bool {
	switch re.Op {
	case syntax.OpNoMatch:
		return false
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpStar:
		return true
	case syntax.OpLiteral:
		sb.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		r, ok := pickRune(re.Rune)
		if !ok {
			return false
		}
		sb.WriteRune(r)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		sb.WriteByte('x')
	case syntax.OpCapture:
		if re.Name != "" {
			if sub, err := regexp.Compile("^(?:" + re.Sub[0].String() + ")$"); err == nil && sub.MatchString(value) {
				sb.WriteString(value)
				return true
			}
		}
		return genSample(re.Sub[0], value, optional, sb)
	case syntax.OpPlus:
		return genSample(re.Sub[0], value, optional, sb)
	case syntax.OpQuest:
		if optional {
			return genSample(re.Sub[0], value, optional, sb)
		}
	case syntax.OpRepeat:
		for range re.Min {
			if !genSample(re.Sub[0], value, optional, sb) {
				return false
			}
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !genSample(s, value, optional, sb) {
				return false
			}
		}
	case syntax.OpAlternate:
		return genSample(re.Sub[0], value, optional, sb)
	}
	return true
}

// pickRune chooses a plain character from a class (pairs of lo, hi).
func pickRune(ranges []rune) (rune, bool) {
	in := func(r rune) bool {
		for i := 0; i+1 < len(ranges); i += 2 {
			if ranges[i] <= r && r <= ranges[i+1] {
				return true
			}
		}
		return false
	}
	for _, r := range "abcxyz019ABCXYZ-_." {
		if in(r) {
			return r, true
		}
	}
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && r-ranges[i] < 256; r++ {
			if unicode.IsPrint(r) && r != '/' {
				return r, true
			}
		}
	}
	if len(ranges) >= 2 {
		return ranges[0], true
	}
	return 0, false
}

// Request data variants for writes, tried in this order until one
// succeeds (a variant identical to an earlier one is not sent again).
const (
	variantFull     = iota // every field of the schema, plus the marker
	variantCurrent         // every field not described as deprecated, plus the marker
	variantStrings         // required fields and string fields, plus the marker
	variantRequired        // required fields, plus the marker
	variantBare            // required fields only
	numVariants
)

// markerField carries the mount's marker in every write, so that a check
// can recognise data written through one mount wherever it shows up.
const markerField = "conformance_marker"

// writeData returns the data of a write to p in the given variant.
func (p *pathInfo) writeData(variant int, marker string) map[string]any {
	data := map[string]any{}
	for _, f := range p.fields {
		if p.captures[f.Name] {
			continue
		}
		switch variant {
		case variantCurrent:
			if deprecated(f) {
				continue
			}
		case variantStrings:
			if !f.Required && f.Type != "string" {
				continue
			}
		case variantRequired, variantBare:
			if !f.Required {
				continue
			}
		}
		if v, ok := sampleValue(f, marker); ok {
			data[f.Name] = v
		}
	}
	if variant != variantBare {
		if _, ok := data[markerField]; !ok {
			data[markerField] = marker
		}
	}
	return data
}

// deprecated reports whether a field's description says it is deprecated
// (sdk/framework has no flag for it; Vault's plugins say it this way).
func deprecated(f logical.FieldInfo) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(f.Description)), "deprecated")
}

// sampleValue is a valid value for a field: its first allowed value, its
// default, or a value of its type (strings carry the marker).
func sampleValue(f logical.FieldInfo, marker string) (any, bool) {
	if len(f.AllowedValues) > 0 {
		return f.AllowedValues[0], true
	}
	if f.Default != nil {
		return f.Default, true
	}
	switch f.Type {
	case "string":
		return marker, true
	case "int":
		return 1, true
	case "bool":
		return true, true
	case "duration":
		return "1h", true
	case "map", "key-value-pairs":
		return map[string]any{markerField: marker}, true
	case "slice", "string-slice":
		return []any{marker}, true
	}
	return nil, false
}

// wrongValue is a value no field of the type accepts.
func wrongValue(typ string) (any, bool) {
	switch typ {
	case "string", "string-slice":
		return map[string]any{"not": "a " + typ}, true
	case "int":
		return "not-an-int", true
	case "bool":
		return "not-a-bool", true
	case "duration":
		return "not-a-duration", true
	case "map", "key-value-pairs", "slice":
		return "not-a-" + typ, true
	}
	return nil, false
}

// isUnauthenticated reports whether the kernel would send path without a
// token (the backend's unauthenticated special paths).
func isUnauthenticated(special *logical.Paths, path string) bool {
	return special != nil && router.PathMatches(special.Unauthenticated, path)
}

func (p *pathInfo) String() string { return fmt.Sprintf("pattern %q", p.ps.Pattern) }
