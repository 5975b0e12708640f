package postgres

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// Placeholders a statement template may hold. {{username}} is an alias of
// {{name}}, as in Vault. Other {{...}} text is left as it is.
var placeholders = []string{"name", "username", "password", "expiration"}

// quoting is the lexical context a placeholder appears in.
type quoting int

const (
	bare      quoting = iota // plain SQL: the value is quoted here
	inLiteral                // inside '...': escaped as literal content
	inEString                // inside E'...': backslashes escaped too
	inIdent                  // inside "...": escaped as identifier content
)

// Render expands the placeholders of one statement template with vals
// (keys "name", "password", "expiration"; "username" falls back to
// "name") and splits the result into statements at top-level semicolons.
//
// Each value is escaped for the context the template puts it in, so a
// value can never end a quoted string or identifier early:
//
//	"{{name}}"      identifier content: " doubled
//	'{{password}}'  literal content: ' doubled (and \ in E'...' strings)
//	{{name}}        bare: a quoted identifier (pgx.Identifier.Sanitize)
//	{{password}}    bare: a quoted literal
//
// Placeholders in comments are not expanded. A dollar-quoted body
// ($$...$$, $tag$...$tag$) is lexed like the SQL it usually holds (DO
// blocks), and a value containing "$" is refused there, since it could end
// the body. Values with a NUL byte are refused everywhere. The error of a
// failed Render names the problem, never a value.
func Render(tmpl string, vals map[string]string) ([]string, error) {
	if _, ok := vals["username"]; !ok {
		if n, ok := vals["name"]; ok {
			vals = withAlias(vals, n)
		}
	}
	for _, k := range placeholders {
		if strings.IndexByte(vals[k], 0) >= 0 {
			return nil, templateErr("a value for {{" + k + "}} contains a NUL byte")
		}
	}
	var (
		out     []string
		cur     strings.Builder
		state   = bare
		dollars []string // open dollar-quote tags, innermost last
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" && s != ";" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		// Placeholders, in any context but comments.
		if c == '{' && strings.HasPrefix(tmpl[i:], "{{") {
			if key, n := placeholderAt(tmpl[i:]); n > 0 {
				if v, ok := vals[key]; ok {
					if len(dollars) > 0 && strings.IndexByte(v, '$') >= 0 {
						return nil, templateErr("a value for {{" + key + "}} contains \"$\" and cannot be used inside a dollar-quoted body")
					}
					cur.WriteString(escape(state, key, v))
					i += n
					continue
				}
			}
		}
		switch state {
		case inLiteral, inEString:
			cur.WriteByte(c)
			i++
			switch {
			case c == '\\' && state == inEString && i < len(tmpl):
				cur.WriteByte(tmpl[i])
				i++
			case c == '\'' && i < len(tmpl) && tmpl[i] == '\'':
				cur.WriteByte('\'')
				i++
			case c == '\'':
				state = bare
			}
			continue
		case inIdent:
			cur.WriteByte(c)
			i++
			switch {
			case c == '"' && i < len(tmpl) && tmpl[i] == '"':
				cur.WriteByte('"')
				i++
			case c == '"':
				state = bare
			}
			continue
		}
		// bare SQL
		switch {
		case c == '\'':
			state = inLiteral
			if i > 0 && (tmpl[i-1] == 'E' || tmpl[i-1] == 'e') && (i < 2 || !identChar(tmpl[i-2])) {
				state = inEString
			}
			cur.WriteByte(c)
			i++
		case c == '"':
			state = inIdent
			cur.WriteByte(c)
			i++
		case c == '-' && strings.HasPrefix(tmpl[i:], "--"):
			end := strings.IndexByte(tmpl[i:], '\n')
			if end < 0 {
				end = len(tmpl) - i
			}
			cur.WriteString(tmpl[i : i+end])
			i += end
		case c == '/' && strings.HasPrefix(tmpl[i:], "/*"):
			n, ok := blockComment(tmpl[i:])
			if !ok {
				return nil, templateErr("unterminated /* comment")
			}
			cur.WriteString(tmpl[i : i+n])
			i += n
		case c == '$' && (i == 0 || !identChar(tmpl[i-1])):
			tag, ok := dollarTag(tmpl[i:])
			if !ok {
				cur.WriteByte(c)
				i++
				break
			}
			if len(dollars) > 0 && dollars[len(dollars)-1] == tag {
				dollars = dollars[:len(dollars)-1]
			} else {
				dollars = append(dollars, tag)
			}
			cur.WriteString(tag)
			i += len(tag)
		case c == ';' && len(dollars) == 0:
			cur.WriteByte(c)
			i++
			flush()
		default:
			cur.WriteByte(c)
			i++
		}
	}
	switch {
	case state == inLiteral || state == inEString:
		return nil, templateErr("unterminated quoted string")
	case state == inIdent:
		return nil, templateErr("unterminated quoted identifier")
	case len(dollars) > 0:
		return nil, templateErr("unterminated dollar-quoted string")
	}
	flush()
	return out, nil
}

// RenderAll renders every template in order and concatenates the
// statements.
func RenderAll(tmpls []string, vals map[string]string) ([]string, error) {
	var out []string
	for _, t := range tmpls {
		s, err := Render(t, vals)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}

// Check reports whether tmpls lex cleanly (balanced quotes, comments and
// dollar quotes) and hold at least one statement; for validating roles
// when they are written.
func Check(tmpls []string) error {
	n := 0
	for _, t := range tmpls {
		s, err := Render(t, map[string]string{
			"name": "n", "password": "p", "expiration": "2000-01-01 00:00:00+0000",
		})
		if err != nil {
			return err
		}
		n += len(s)
	}
	if n == 0 {
		return templateErr("no statement")
	}
	return nil
}

func withAlias(vals map[string]string, name string) map[string]string {
	m := make(map[string]string, len(vals)+1)
	for k, v := range vals {
		m[k] = v
	}
	m["username"] = name
	return m
}

// placeholderAt returns the key of the placeholder s starts with and its
// length, or 0 when s does not start with a known placeholder.
func placeholderAt(s string) (string, int) {
	for _, k := range placeholders {
		if strings.HasPrefix(s, "{{"+k+"}}") {
			return k, len(k) + 4
		}
	}
	return "", 0
}

// escape renders v for the quoting context. Names are identifiers when
// bare; the other values are literals.
func escape(q quoting, key, v string) string {
	switch q {
	case inIdent:
		return strings.ReplaceAll(v, `"`, `""`)
	case inLiteral:
		return strings.ReplaceAll(v, `'`, `''`)
	case inEString:
		return strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `''`)
	}
	if key == "name" || key == "username" {
		return pgx.Identifier{v}.Sanitize()
	}
	return quoteLiteral(v)
}

// quoteLiteral quotes v as a standard-conforming SQL string literal.
func quoteLiteral(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// dollarTag returns the "$tag$" s starts with.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		case c >= '0' && c <= '9' && j > 1:
		default:
			return "", false
		}
	}
	return "", false
}

// blockComment returns the length of the (nested) /* comment s starts with.
func blockComment(s string) (int, bool) {
	depth := 0
	for j := 0; j+1 < len(s); {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j += 2
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, true
			}
		default:
			j++
		}
	}
	return 0, false
}

func identChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func templateErr(msg string) error {
	return &Error{Kind: KindTemplate, msg: "statement template: " + msg}
}
