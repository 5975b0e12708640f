package postgres

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	vals := map[string]string{"name": `we"ird'n`, "password": `p'a"s\s$`, "expiration": "2030-01-02 03:04:05+0000"}
	for _, tc := range []struct {
		name, tmpl string
		want       []string
	}{
		{"vault style", `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			[]string{`CREATE ROLE "we""ird'n" WITH LOGIN PASSWORD 'p''a"s\s$' VALID UNTIL '2030-01-02 03:04:05+0000';`}},
		{"bare", `CREATE ROLE {{name}} PASSWORD {{password}}`,
			[]string{`CREATE ROLE "we""ird'n" PASSWORD 'p''a"s\s$'`}},
		{"username alias", `DROP ROLE "{{username}}"`, []string{`DROP ROLE "we""ird'n"`}},
		{"E string", `SELECT E'{{password}}'`, []string{`SELECT E'p''a"s\\s$'`}},
		{"e after identifier is not an E string", `SELECT name'{{password}}'`, []string{`SELECT name'p''a"s\s$'`}},
		{"split", "A; B ;\n\n;C", []string{"A;", "B ;", "C"}},
		{"semicolon in literal", `SELECT ';{{name}}'; SELECT 2`, []string{`SELECT ';we"ird''n';`, "SELECT 2"}},
		{"semicolon in identifier", `SELECT 1 AS "a;b"`, []string{`SELECT 1 AS "a;b"`}},
		{"escaped quotes", `SELECT 'it''s {{name}}', "x""{{name}}"`, []string{`SELECT 'it''s we"ird''n', "x""we""ird'n"`}},
		{"line comment", "SELECT 1 -- '{{password}}; x\n; SELECT 2", []string{"SELECT 1 -- '{{password}}; x\n;", "SELECT 2"}},
		{"block comment", "SELECT /* ; /* {{password}} */ ' */ 1; SELECT 2", []string{"SELECT /* ; /* {{password}} */ ' */ 1;", "SELECT 2"}},
		{"dollar quote", `DO $$ BEGIN EXECUTE 'x;y'; END $$; SELECT 1`, []string{`DO $$ BEGIN EXECUTE 'x;y'; END $$;`, "SELECT 1"}},
		{"tagged dollar quote", `DO $f$ BEGIN CREATE ROLE "{{name}}"; END $f$`, []string{`DO $f$ BEGIN CREATE ROLE "we""ird'n"; END $f$`}},
		{"positional parameter is no dollar quote", `SELECT $1; SELECT 2`, []string{"SELECT $1;", "SELECT 2"}},
		{"unknown placeholder stays", `SELECT '{{other}}'`, []string{`SELECT '{{other}}'`}},
		{"empty", " ; ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.tmpl, vals)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Render(%q)\n got %q\nwant %q", tc.tmpl, got, tc.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	vals := map[string]string{"name": "n", "password": "pa$s", "expiration": "e"}
	for _, tc := range []struct{ tmpl, msg string }{
		{`SELECT 'x`, "unterminated quoted string"},
		{`SELECT "x`, "unterminated quoted identifier"},
		{`SELECT /* x`, "unterminated /* comment"},
		{`DO $$ SELECT 1`, "unterminated dollar-quoted"},
		{`DO $$ ALTER ROLE n PASSWORD '{{password}}' $$`, `contains "$"`},
	} {
		_, err := Render(tc.tmpl, vals)
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != KindTemplate || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Render(%q) = %v, want a template error containing %q", tc.tmpl, err, tc.msg)
		}
		if err != nil && strings.Contains(err.Error(), "pa$s") {
			t.Errorf("error %q holds a value", err)
		}
	}
	if _, err := Render(`SELECT '{{name}}'`, map[string]string{"name": "a\x00b"}); err == nil {
		t.Error("a NUL byte was accepted")
	}
}

// FuzzRender checks that no value can leave the quoting context the
// template gives it: rendering a template with a hostile value yields the
// same statement split and the same quoting structure as with a harmless
// one.
func FuzzRender(f *testing.F) {
	f.Add(`CREATE ROLE "{{name}}" PASSWORD '{{password}}'; GRANT x TO {{name}};`, `a"b'c;d`)
	f.Add(`SELECT E'{{password}}' -- {{name}}`, `\'; DROP TABLE x; --`)
	f.Add(`DO $$ BEGIN PERFORM '{{name}}'; END $$`, `$$; x`)
	f.Fuzz(func(t *testing.T, tmpl, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			return
		}
		plain, err := Render(tmpl, map[string]string{"name": "x", "password": "x", "expiration": "x"})
		if err != nil {
			return
		}
		hostile, err := Render(tmpl, map[string]string{"name": v, "password": v, "expiration": v})
		if err != nil {
			return // refused (a "$" in a dollar body): safe
		}
		if len(plain) != len(hostile) {
			t.Fatalf("the value changed the statement split: %q vs %q", plain, hostile)
		}
		// Each rendered statement must lex back with no placeholder
		// substitution to the same number of statements (quotes balanced).
		for _, s := range hostile {
			again, err := Render(s, map[string]string{})
			if err != nil || len(again) != 1 {
				t.Fatalf("rendered statement %q does not lex as one statement: %v %q", s, err, again)
			}
		}
	})
}

func TestSCRAMVerifierFormat(t *testing.T) {
	v, err := scramVerifier("pencil")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(v, "$")
	if len(parts) != 3 || parts[0] != "SCRAM-SHA-256" || !strings.HasPrefix(parts[1], "4096:") || !strings.Contains(parts[2], ":") {
		t.Fatalf("verifier %q is not in PostgreSQL's format", v)
	}
	w, _ := scramVerifier("pencil")
	if v == w {
		t.Fatal("two verifiers share a salt")
	}
}

func TestConfigPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		url, user, pw, msg string
	}{
		{"postgres://{{username}}:{{password}}@h:5432/db", "u@x:/", "p@ss:w/rd#?", ""},
		{"host=h user={{username}} password={{password}} dbname=db", "u x", "p 'q' \\", ""},
		{"postgres://{{username}}:{{password}}@{{password}}:5432/db", "u", "p", "may only stand"},
		{"postgres://u@h:x/db", "", "", "could not be parsed"},
	} {
		c := Config{ConnectionURL: tc.url, Username: tc.user, Password: tc.pw}
		pc, err := c.poolConfig()
		if tc.msg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%q: error %v, want %q", tc.url, err, tc.msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.url, err)
			continue
		}
		if pc.ConnConfig.User != tc.user || pc.ConnConfig.Password != tc.pw || pc.ConnConfig.Host != "h" {
			t.Errorf("%q: user %q password %q host %q", tc.url, pc.ConnConfig.User, pc.ConnConfig.Password, pc.ConnConfig.Host)
		}
	}
}
