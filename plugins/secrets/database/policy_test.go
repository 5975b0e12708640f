package database

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPasswordPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		raw any
		msg string // "" when valid
	}{
		{map[string]any{}, ""},
		{map[string]any{"length": 32.0}, ""},
		{`{"length": 20, "charset": "abcdefghij0123456789"}`, ""},
		{"", ""},
		{map[string]any{"length": 8.0}, "bits"},
		{map[string]any{"length": 101.0}, "between"},
		{map[string]any{"length": 30.0, "charset": "ab cd"}, "printable"},
		{map[string]any{"length": 30.0, "charset": "aab"}, "repeats"},
		{map[string]any{"length": 70.0, "charset": "a"}, "at least 2"},
		{map[string]any{"length": 30.0, "charset": "abé"}, "printable"},
		{map[string]any{"size": 30.0}, "unknown key"},
		{map[string]any{"length": "x"}, "integer"},
		{42, "expected an object"},
		{"not json", "expected an object"},
	} {
		_, err := parsePasswordPolicy(tc.raw)
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.raw, err)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%v: error %v, want %q", tc.raw, err, tc.msg)
		}
	}
}

func TestPasswordGenerate(t *testing.T) {
	p := passwordPolicy{}
	seen := map[string]bool{}
	for range 200 {
		pw, err := p.generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != defaultPasswordLength || seen[pw] {
			t.Fatalf("password %d chars or repeated", len(pw))
		}
		seen[pw] = true
		if !hasAll(pw, charClasses(defaultPasswordCharset)) {
			t.Fatal("a password misses a character class")
		}
		for i := 0; i < len(pw); i++ {
			if !strings.ContainsRune(defaultPasswordCharset, rune(pw[i])) {
				t.Fatal("a character outside the charset")
			}
		}
	}
}

// TestRandomFromUniform: with a charset whose size does not divide 256,
// a plain modulo would favour the first 256%k characters; rejection
// sampling keeps every character within a few standard deviations.
func TestRandomFromUniform(t *testing.T) {
	const charset = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-" // 63: 256%63 = 4
	const n = 630000
	s, err := randomFrom(charset, n)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[byte]int{}
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	want := float64(n) / float64(len(charset))
	sd := math.Sqrt(want)
	for i := 0; i < len(charset); i++ {
		if d := math.Abs(float64(counts[charset[i]]) - want); d > 6*sd {
			t.Errorf("%q drawn %d times, want %.0f ± %.0f", charset[i], counts[charset[i]], want, 6*sd)
		}
	}
}

func TestRenderUsername(t *testing.T) {
	now := func() time.Time { return time.Unix(1764000000, 0) }
	long := strings.Repeat("r", 100)
	name, err := renderUsername("", usernameData{RoleName: long}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "v-rrrrrrrrrrrrrrr-") || !strings.HasSuffix(name, "-1764000000") || len(name) > maxUsernameLen {
		t.Fatalf("default username %q", name)
	}
	for _, tc := range []struct{ tmpl, want, msg string }{
		{`{{.RoleName | truncate 3 | uppercase}}-{{unix_time_millis}}`, "ROL-1764000000000", ""},
		{`{{replace "-" "_" .RoleName}}_{{.DBName}}{{.DisplayName}}`, "role_x_db", ""},
		{`{{truncate 2 "héllo"}}`, "h", ""},
		{`{{random 64}}`, "", "failed to render"},
		{`{{printf "%070d" 1}}`, "", "longer than 63"},
		{`{{.Missing}}`, "", "failed to render"},
		{`{{`, "", "does not parse"},
		{` `, "", "empty"},
	} {
		got, err := renderUsername(tc.tmpl, usernameData{RoleName: "role-x", DBName: "db"}, now)
		switch {
		case tc.msg == "" && (err != nil || got != tc.want):
			t.Errorf("%q: got %q, %v; want %q", tc.tmpl, got, err, tc.want)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%q: error %v, want %q", tc.tmpl, err, tc.msg)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "anything", true},
		{"*", "", true},
		{"app", "app", true},
		{"app", "app2", false},
		{"app-*", "app-1", true},
		{"app-*", "app", false},
		{"*-ro", "db-ro", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"a*a", "a", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://{{username}}:{{password}}@h:5432/db?sslmode=disable", "postgres://{{username}}:{{password}}@h:5432/db?sslmode=disable"},
		{"postgres://root:s3cret@h/db", "postgres://root:*****@h/db"},
		{"postgresql://{{username}}@h/db?password=s3cret", "postgresql://{{username}}@h/db?password=*****"},
		{"host=h user=u password=s3cret dbname=d", "host=h user=u password=***** dbname=d"},
		{"host=h password='s3 cret' dbname=d", "host=h password=***** dbname=d"},
		{"host=h password={{password}}", "host=h password={{password}}"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
