package conformance

import (
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"

	"github.com/wardproject/ward/sdk/logical"
)

// OpenAPI returns the OpenAPI 3.0 document of a mount of the plugin at
// mountPath (for example "secret/"), built from its schema the way Vault
// builds its own: every expansion of a pattern (optional parts and
// alternatives expand) is a path, named groups are path parameters; read
// is GET, list is GET with ?list=true, create and update are POST, patch
// is PATCH, delete is DELETE. It fails when a pattern or a field cannot be
// expressed; the document is then partial.
func OpenAPI(info Info, schema *logical.Schema, mountPath string) ([]byte, error) {
	doc, problems := buildOpenAPI(info, schema, mountPath)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return b, fmt.Errorf("openapi: %s", strings.Join(problems, "; "))
	}
	return b, nil
}

// maxExpansions bounds the paths one pattern expands to.
const maxExpansions = 64

func buildOpenAPI(info Info, schema *logical.Schema, mountPath string) (map[string]any, []string) {
	var problems []string
	version := info.Version
	if version == "" {
		version = "unversioned"
	}
	title := info.Name
	if title == "" {
		title = "unnamed plugin"
	}
	paths := map[string]map[string]any{}
	opIDs := map[string]int{}
	mount := "/" + strings.Trim(mountPath, "/")
	if schema == nil {
		schema = &logical.Schema{}
	}
	for _, ps := range schema.Paths {
		parsed, err := syntax.Parse(anchored(ps.Pattern), syntax.Perl)
		if err != nil {
			problems = append(problems, fmt.Sprintf("pattern %q does not compile: %v", ps.Pattern, err))
			continue
		}
		tmpls, err := expandTemplates(parsed.Simplify())
		if err != nil {
			problems = append(problems, fmt.Sprintf("pattern %q cannot be expressed as OpenAPI paths: %v", ps.Pattern, err))
			continue
		}
		tmpls = dedupeShapes(tmpls)
		fields := map[string]logical.FieldInfo{}
		for _, f := range ps.Fields {
			fields[f.Name] = f
		}
		for _, tmpl := range tmpls {
			key := mount + "/" + tmpl
			item := paths[key]
			if item == nil {
				item = map[string]any{}
				paths[key] = item
			}
			params := templateParams(tmpl)
			var pathParams []any
			for _, name := range params {
				sch := map[string]any{"type": "string"}
				desc := ""
				if f, ok := fields[name]; ok {
					desc = f.Description
				}
				pathParams = append(pathParams, map[string]any{"name": name, "in": "path", "required": true,
					"description": desc, "schema": sch})
			}
			if len(pathParams) > 0 {
				item["parameters"] = pathParams
			}
			isParam := map[string]bool{}
			for _, n := range params {
				isParam[n] = true
			}
			body, bodyProblems := requestBody(ps, isParam)
			for _, p := range bodyProblems {
				problems = append(problems, fmt.Sprintf("pattern %q: %s", ps.Pattern, p))
			}
			has := map[logical.Operation]bool{}
			for _, op := range ps.Operations {
				has[op] = true
			}
			opID := func(verb string) string {
				id := verb + "-" + slug(strings.TrimPrefix(key, "/"))
				opIDs[id]++
				if n := opIDs[id]; n > 1 {
					id += "-" + strconv.Itoa(n)
				}
				return id
			}
			set := func(method string, op map[string]any) {
				if _, dup := item[method]; dup {
					problems = append(problems, fmt.Sprintf("two patterns declare %s %s", strings.ToUpper(method), key))
					return
				}
				op["summary"] = ps.Synopsis
				if ps.Description != "" {
					op["description"] = ps.Description
				}
				op["responses"] = map[string]any{"200": map[string]any{"description": "OK"}, "204": map[string]any{"description": "empty body"}}
				item[method] = op
			}
			if has[logical.ReadOperation] || has[logical.ListOperation] {
				verb := "read"
				if !has[logical.ReadOperation] {
					verb = "list"
				}
				op := map[string]any{"operationId": opID(verb)}
				if has[logical.ListOperation] {
					op["parameters"] = []any{map[string]any{"name": "list", "in": "query", "required": !has[logical.ReadOperation],
						"description": "Return a list of keys.", "schema": map[string]any{"type": "string", "enum": []any{"true"}}}}
				}
				set("get", op)
			}
			if has[logical.CreateOperation] || has[logical.UpdateOperation] {
				set("post", map[string]any{"operationId": opID("write"), "requestBody": body})
			}
			if has[logical.PatchOperation] {
				patch := map[string]any{"required": true, "content": map[string]any{
					"application/merge-patch+json": map[string]any{"schema": body["content"].(map[string]any)["application/json"].(map[string]any)["schema"]}}}
				set("patch", map[string]any{"operationId": opID("patch"), "requestBody": patch})
			}
			if has[logical.DeleteOperation] {
				set("delete", map[string]any{"operationId": opID("delete")})
			}
		}
	}
	docPaths := map[string]any{}
	for k, v := range paths {
		docPaths[k] = v
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": title, "version": version, "description": schema.Help},
		"paths":   docPaths,
	}
	return doc, problems
}

// requestBody describes a write's body: every field that is not a path
// parameter.
func requestBody(ps logical.PathSchema, isParam map[string]bool) (map[string]any, []string) {
	var problems []string
	props := map[string]any{}
	var required []any
	for _, f := range ps.Fields {
		if isParam[f.Name] {
			continue
		}
		sch, err := fieldSchema(f)
		if err != nil {
			problems = append(problems, fmt.Sprintf("field %q: %v", f.Name, err))
			continue
		}
		props[f.Name] = sch
		if f.Required {
			required = append(required, f.Name)
		}
	}
	sch := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		sch["required"] = required
	}
	return map[string]any{"required": len(required) > 0, "content": map[string]any{
		"application/json": map[string]any{"schema": sch}}}, problems
}

// fieldSchema maps a field to a JSON schema; defaults and allowed values
// are converted as sdk/framework converts request values.
func fieldSchema(f logical.FieldInfo) (map[string]any, error) {
	var sch map[string]any
	switch f.Type {
	case "string":
		sch = map[string]any{"type": "string"}
	case "int":
		sch = map[string]any{"type": "integer"}
	case "bool":
		sch = map[string]any{"type": "boolean"}
	case "duration":
		sch = map[string]any{"type": "string", "format": "duration"}
	case "map":
		sch = map[string]any{"type": "object"}
	case "slice":
		sch = map[string]any{"type": "array", "items": map[string]any{}}
	case "string-slice":
		sch = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	case "key-value-pairs":
		sch = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}
	default:
		return nil, fmt.Errorf("type %q has no JSON schema (known: string, int, bool, duration, map, slice, string-slice, key-value-pairs)", f.Type)
	}
	if f.Description != "" {
		sch["description"] = f.Description
	}
	if f.Default != nil {
		sch["default"] = openAPIValue(f.Type, f.Default)
	}
	if len(f.AllowedValues) > 0 {
		enum := make([]any, len(f.AllowedValues))
		for i, v := range f.AllowedValues {
			enum[i] = openAPIValue(f.Type, v)
		}
		sch["enum"] = enum
	}
	return sch, nil
}

// openAPIValue converts a default or allowed value the way sdk/framework
// converts the same value in a request, where the JSON types differ: "60"
// is an int, 30 a duration, "a,b" a list. A value that does not convert
// is kept as is (the validator reports it).
func openAPIValue(typ string, v any) any {
	switch typ {
	case "int":
		switch x := v.(type) {
		case string:
			if i, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
				return i
			}
		case json.Number:
			if i, err := x.Int64(); err == nil {
				return i
			}
		case float64:
			if x == float64(int64(x)) {
				return int64(x)
			}
		}
	case "duration", "string":
		switch x := v.(type) {
		case json.Number:
			return x.String()
		case float64, int, int64, bool:
			if typ == "duration" {
				if _, isBool := x.(bool); isBool {
					return v
				}
			}
			return fmt.Sprint(x)
		}
	case "bool":
		if s, ok := v.(string); ok {
			if b, err := strconv.ParseBool(s); err == nil {
				return b
			}
		}
	case "string-slice":
		if s, ok := v.(string); ok {
			if s == "" {
				return []any{}
			}
			var out []any
			for _, part := range strings.Split(s, ",") {
				out = append(out, strings.TrimSpace(part))
			}
			return out
		}
	}
	return v
}

// expandTemplates turns a pattern into OpenAPI path templates.
func expandTemplates(re *syntax.Regexp) ([]string, error) {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
		return []string{""}, nil
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return []string{strings.ToLower(string(re.Rune))}, nil
		}
		return []string{string(re.Rune)}, nil
	case syntax.OpCharClass:
		if len(re.Rune) == 2 && re.Rune[0] == re.Rune[1] {
			return []string{string(re.Rune[0])}, nil
		}
		return nil, fmt.Errorf("character class %s outside a named group", re)
	case syntax.OpCapture:
		if re.Name != "" {
			return []string{"{" + re.Name + "}"}, nil
		}
		return expandTemplates(re.Sub[0])
	case syntax.OpQuest:
		subs, err := expandTemplates(re.Sub[0])
		if err != nil {
			return nil, err
		}
		return append(subs, ""), nil
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			parts, err := expandTemplates(sub)
			if err != nil {
				return nil, err
			}
			var next []string
			for _, a := range out {
				for _, b := range parts {
					next = append(next, a+b)
				}
			}
			if len(next) > maxExpansions {
				return nil, fmt.Errorf("more than %d expansions", maxExpansions)
			}
			out = next
		}
		return out, nil
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			parts, err := expandTemplates(sub)
			if err != nil {
				return nil, err
			}
			out = append(out, parts...)
		}
		if len(out) > maxExpansions {
			return nil, fmt.Errorf("more than %d expansions", maxExpansions)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s outside a named group matches more than a fixed string", re)
}

// dedupeShapes keeps, of the expansions of one pattern that differ only
// in their parameters' names, the first: expansions come in the order the
// pattern prefers them (an optional part taken before left out), so in
// random(/(?P<source>[^/]+))?(/(?P<bytes>[^/]+))? "random/32" binds source,
// never bytes alone, and random/{bytes} is not a path of the pattern.
func dedupeShapes(tmpls []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tmpls {
		shape := paramRe.ReplaceAllString(t, "{}")
		if !seen[shape] {
			seen[shape] = true
			out = append(out, t)
		}
	}
	return out
}

var paramRe = regexp.MustCompile(`\{([^{}]*)\}`)

func templateParams(tmpl string) []string {
	var out []string
	for _, m := range paramRe.FindAllStringSubmatch(tmpl, -1) {
		out = append(out, m[1])
	}
	return out
}

func slug(s string) string {
	s = strings.NewReplacer("{", "", "}", "").Replace(s)
	var b strings.Builder
	dash := false
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// ValidateOpenAPI checks an OpenAPI 3.0 document against the rules of the
// specification a generated document can break: required fields, path
// templating and its parameters, unique operation IDs, responses, and
// schemas whose defaults and enumerations conform to their types. It
// returns every violation found.
func ValidateOpenAPI(doc []byte) []string {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return []string{"not a JSON object: " + err.Error()}
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		bad(`"openapi" must be a 3.0.x version, got %v`, d["openapi"])
	}
	info, _ := d["info"].(map[string]any)
	if info == nil {
		bad(`"info" is missing`)
	} else {
		for _, k := range []string{"title", "version"} {
			if v, ok := info[k].(string); !ok || v == "" {
				bad(`"info.%s" must be a non-empty string`, k)
			}
		}
	}
	paths, ok := d["paths"].(map[string]any)
	if !ok {
		bad(`"paths" is missing`)
		return out
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	shapes := map[string]string{}
	opIDs := map[string]string{}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}
	for _, k := range keys {
		if !strings.HasPrefix(k, "/") {
			bad("path %q does not begin with /", k)
		}
		shape := paramRe.ReplaceAllString(k, "{}")
		if other, dup := shapes[shape]; dup {
			bad("paths %q and %q have the same hierarchy with different parameter names", other, k)
		}
		shapes[shape] = k
		item, ok := paths[k].(map[string]any)
		if !ok {
			bad("path %q is not an object", k)
			continue
		}
		inTemplate := map[string]bool{}
		for _, n := range templateParams(k) {
			if n == "" || inTemplate[n] {
				bad("path %q: parameter {%s} is empty or repeated", k, n)
			}
			inTemplate[n] = true
		}
		pathLevel := checkParams(k, "", item["parameters"], inTemplate, bad)
		for m, v := range item {
			switch {
			case m == "parameters" || m == "summary" || m == "description" || m == "servers":
				continue
			case !methods[m]:
				bad("path %q: %q is not an HTTP method", k, m)
				continue
			}
			op, ok := v.(map[string]any)
			if !ok {
				bad("%s %s is not an object", strings.ToUpper(m), k)
				continue
			}
			where := strings.ToUpper(m) + " " + k
			declared := checkParams(k, where, op["parameters"], inTemplate, bad)
			for n := range inTemplate {
				if !pathLevel[n] && !declared[n] {
					bad("%s: path parameter {%s} is not declared", where, n)
				}
			}
			if id, ok := op["operationId"].(string); ok {
				if prev, dup := opIDs[id]; dup {
					bad("%s: operationId %q is also used by %s", where, id, prev)
				}
				opIDs[id] = where
			}
			resps, _ := op["responses"].(map[string]any)
			if len(resps) == 0 {
				bad("%s: no responses", where)
			}
			for code, r := range resps {
				rm, _ := r.(map[string]any)
				if _, ok := rm["description"].(string); !ok {
					bad("%s: response %s has no description", where, code)
				}
			}
			if rb, ok := op["requestBody"]; ok {
				rbm, _ := rb.(map[string]any)
				content, _ := rbm["content"].(map[string]any)
				if len(content) == 0 {
					bad("%s: requestBody has no content", where)
				}
				for mt, c := range content {
					cm, _ := c.(map[string]any)
					if s, ok := cm["schema"]; ok {
						checkJSONSchema(where+" body "+mt, s, bad)
					}
				}
			}
		}
	}
	return out
}

// checkParams validates a parameter list and returns the path parameters it declares.
func checkParams(path, where string, v any, inTemplate map[string]bool, bad func(string, ...any)) map[string]bool {
	declared := map[string]bool{}
	if v == nil {
		return declared
	}
	if where == "" {
		where = path
	}
	list, ok := v.([]any)
	if !ok {
		bad("%s: parameters is not a list", where)
		return declared
	}
	seen := map[string]bool{}
	for _, p := range list {
		pm, _ := p.(map[string]any)
		name, _ := pm["name"].(string)
		in, _ := pm["in"].(string)
		if name == "" {
			bad("%s: a parameter has no name", where)
			continue
		}
		switch in {
		case "path":
			if req, _ := pm["required"].(bool); !req {
				bad("%s: path parameter %q must be required", where, name)
			}
			if !inTemplate[name] {
				bad("%s: path parameter %q does not appear in the path", where, name)
			}
			declared[name] = true
		case "query", "header", "cookie":
		default:
			bad("%s: parameter %q has location %q", where, name, in)
		}
		if seen[in+"/"+name] {
			bad("%s: parameter %q (%s) is declared twice", where, name, in)
		}
		seen[in+"/"+name] = true
		if s, ok := pm["schema"]; ok {
			checkJSONSchema(where+" parameter "+name, s, bad)
		}
	}
	return declared
}

var schemaTypes = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true, "array": true, "object": true}

// checkJSONSchema validates a schema object and the values it holds.
func checkJSONSchema(where string, v any, bad func(string, ...any)) {
	s, ok := v.(map[string]any)
	if !ok {
		bad("%s: schema is not an object", where)
		return
	}
	typ, _ := s["type"].(string)
	if t, ok := s["type"]; ok && !schemaTypes[typ] {
		bad("%s: unknown schema type %v", where, t)
	}
	if typ == "array" {
		if _, ok := s["items"]; !ok {
			bad("%s: an array schema needs items", where)
		}
	}
	if items, ok := s["items"]; ok {
		checkJSONSchema(where+" items", items, bad)
	}
	if props, ok := s["properties"]; ok {
		pm, ok := props.(map[string]any)
		if !ok {
			bad("%s: properties is not an object", where)
		}
		for name, p := range pm {
			checkJSONSchema(where+"."+name, p, bad)
		}
		if req, ok := s["required"]; ok {
			rl, _ := req.([]any)
			if len(rl) == 0 {
				bad("%s: required must be a non-empty list", where)
			}
			for _, r := range rl {
				if n, _ := r.(string); pm[n] == nil {
					bad("%s: required field %v is not a property", where, r)
				}
			}
		}
	}
	if ap, ok := s["additionalProperties"]; ok {
		if _, isBool := ap.(bool); !isBool {
			checkJSONSchema(where+" additionalProperties", ap, bad)
		}
	}
	if def, ok := s["default"]; ok && !conforms(s, def) {
		bad("%s: default %s does not conform to the schema (%s)", where, compactJSON(def), schemaDesc(s))
	}
	if enum, ok := s["enum"]; ok {
		el, _ := enum.([]any)
		if len(el) == 0 {
			bad("%s: enum must be a non-empty list", where)
		}
		for _, e := range el {
			if !conforms(s, e) {
				bad("%s: enum value %s does not conform to the schema (%s)", where, compactJSON(e), schemaDesc(s))
			}
		}
	}
}

func schemaDesc(s map[string]any) string {
	d := fmt.Sprint(s["type"])
	if items, ok := s["items"].(map[string]any); ok && items["type"] != nil {
		d += " of " + fmt.Sprint(items["type"])
	}
	return d
}

// conforms reports whether a JSON value matches a schema's type (and its
// items' and additional properties' types).
func conforms(s map[string]any, v any) bool {
	typ, _ := s["type"].(string)
	switch typ {
	case "":
		return true
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "number":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "array":
		l, ok := v.([]any)
		if !ok {
			return false
		}
		items, _ := s["items"].(map[string]any)
		for _, e := range l {
			if items != nil && !conforms(items, e) {
				return false
			}
		}
		return true
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			for _, e := range m {
				if !conforms(ap, e) {
					return false
				}
			}
		}
		return true
	}
	return false
}
