package database

import (
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wardproject/ward/sdk/logical"
)

// defaultUsernameTemplate makes names like v-readonly-k3x0...-1764000000:
// readable in pg_roles and pg_stat_activity, unique by 20 random
// characters (103 bits), at most 49 bytes.
const defaultUsernameTemplate = `v-{{.RoleName | truncate 15}}-{{random 20}}-{{unix_time}}`

// maxUsernameLen is PostgreSQL's NAMEDATALEN-1: longer names are silently
// truncated by the server, so they are refused here.
const maxUsernameLen = 63

// usernameData is what a username template sees. DisplayName is empty
// (the kernel does not pass the token's display name to engines); it is
// there so Vault templates that use it still render.
type usernameData struct {
	RoleName    string
	DBName      string
	DisplayName string
}

// usernameFuncs are the template functions, after Vault's username
// templates: random N (lower-case letters and digits), truncate N, uuid,
// unix_time, unix_time_millis, lowercase, uppercase, replace OLD NEW.
func usernameFuncs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"random": func(n int) (string, error) {
			if n < 1 || n > maxUsernameLen {
				return "", logical.InvalidRequest("random: length must be between 1 and %d", maxUsernameLen)
			}
			return randomFrom("abcdefghijklmnopqrstuvwxyz0123456789", n)
		},
		"truncate": func(n int, s string) string {
			if n < 0 || len(s) <= n {
				return s
			}
			s = s[:n]
			for !utf8.ValidString(s) { // do not cut a character in half
				s = s[:len(s)-1]
			}
			return s
		},
		"uuid":             func() (string, error) { u, err := uuid.NewRandom(); return u.String(), err },
		"unix_time":        func() string { return strconv.FormatInt(now().Unix(), 10) },
		"unix_time_millis": func() string { return strconv.FormatInt(now().UnixMilli(), 10) },
		"lowercase":        strings.ToLower,
		"uppercase":        strings.ToUpper,
		"replace":          func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	}
}

// renderUsername renders tmpl ("" for the default) for a role.
func renderUsername(tmpl string, data usernameData, now func() time.Time) (string, error) {
	if tmpl == "" {
		tmpl = defaultUsernameTemplate
	}
	t, err := template.New("username").Funcs(usernameFuncs(now)).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", logical.InvalidRequest("username_template does not parse: %v", err)
	}
	var sb strings.Builder
	if err := t.Execute(&sb, data); err != nil {
		return "", logical.InvalidRequest("username_template failed to render: %v", err)
	}
	name := sb.String()
	switch {
	case strings.TrimSpace(name) == "":
		return "", logical.InvalidRequest("username_template rendered an empty name")
	case len(name) > maxUsernameLen:
		return "", logical.InvalidRequest("username_template rendered a name longer than %d bytes", maxUsernameLen)
	case strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name):
		return "", logical.InvalidRequest("username_template rendered an invalid name")
	}
	return name, nil
}
