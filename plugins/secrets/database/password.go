package database

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/wardproject/ward/sdk/logical"
)

// passwordPolicy says how generated passwords look: Length characters
// drawn uniformly from Charset, with at least one character of each class
// (lower case, upper case, digit, other) that Charset contains.
type passwordPolicy struct {
	Length  int    `json:"length"`
	Charset string `json:"charset"`
}

const (
	defaultPasswordLength  = 24
	defaultPasswordCharset = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
	maxPasswordLength      = 100
	// minPasswordBits is the least entropy a policy may give a password.
	minPasswordBits = 64
)

// withDefaults fills the zero fields.
func (p passwordPolicy) withDefaults() passwordPolicy {
	if p.Length == 0 {
		p.Length = defaultPasswordLength
	}
	if p.Charset == "" {
		p.Charset = defaultPasswordCharset
	}
	return p
}

// Validate checks a policy with its defaults applied: printable ASCII
// without spaces or repeats, 64 bits of entropy or more, at most 100
// characters, and room for one character of each class.
func (p passwordPolicy) Validate() error {
	if p.Length < 0 || p.Length > maxPasswordLength {
		return logical.InvalidRequest("password_policy: length must be between 1 and %d", maxPasswordLength)
	}
	seen := map[byte]bool{}
	for i := 0; i < len(p.Charset); i++ {
		c := p.Charset[i]
		if c < 0x21 || c > 0x7e {
			return logical.InvalidRequest("password_policy: charset may hold only printable ASCII characters other than space")
		}
		if seen[c] {
			return logical.InvalidRequest("password_policy: charset repeats a character")
		}
		seen[c] = true
	}
	if len(p.Charset) < 2 {
		return logical.InvalidRequest("password_policy: charset needs at least 2 characters")
	}
	if bits := float64(p.Length) * math.Log2(float64(len(p.Charset))); bits < minPasswordBits {
		return logical.InvalidRequest("password_policy: length %d over %d characters gives %.0f bits; at least %d are required",
			p.Length, len(p.Charset), bits, minPasswordBits)
	}
	if n := len(charClasses(p.Charset)); p.Length < n {
		return logical.InvalidRequest("password_policy: length must be at least %d to hold one character of each class in charset", n)
	}
	return nil
}

// parsePasswordPolicy reads the password_policy field: an object with
// "length" and "charset", or that object as a JSON string.
func parsePasswordPolicy(raw any) (passwordPolicy, error) {
	var p passwordPolicy
	m, ok := raw.(map[string]any)
	if s, isStr := raw.(string); isStr {
		if strings.TrimSpace(s) == "" {
			return p, nil
		}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return p, logical.InvalidRequest(`password_policy: expected an object {"length": N, "charset": "..."}`)
		}
		ok = true
	}
	if !ok {
		return p, logical.InvalidRequest(`password_policy: expected an object {"length": N, "charset": "..."}`)
	}
	for k, v := range m {
		switch k {
		case "length":
			n, err := toInt(v)
			if err != nil {
				return p, logical.InvalidRequest("password_policy: length must be an integer")
			}
			p.Length = n
		case "charset":
			s, ok := v.(string)
			if !ok {
				return p, logical.InvalidRequest("password_policy: charset must be a string")
			}
			p.Charset = s
		default:
			return p, logical.InvalidRequest("password_policy: unknown key %q (length and charset are known)", k)
		}
	}
	return p, p.withDefaults().Validate()
}

func toInt(v any) (int, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1e9 {
			return 0, fmt.Errorf("not an integer")
		}
		return int(n), nil
	case int:
		return n, nil
	case int64:
		return int(n), nil
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case string:
		return strconv.Atoi(strings.TrimSpace(n))
	}
	return 0, fmt.Errorf("not an integer")
}

// charClasses returns, for each class the charset has characters of,
// a predicate for that class.
func charClasses(charset string) []func(byte) bool {
	all := []func(byte) bool{
		func(c byte) bool { return c >= 'a' && c <= 'z' },
		func(c byte) bool { return c >= 'A' && c <= 'Z' },
		func(c byte) bool { return c >= '0' && c <= '9' },
		func(c byte) bool { return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') },
	}
	var out []func(byte) bool
	for _, cl := range all {
		if strings.IndexFunc(charset, func(r rune) bool { return cl(byte(r)) }) >= 0 {
			out = append(out, cl)
		}
	}
	return out
}

// generate returns a password following the policy (with its defaults).
// Each character is drawn from crypto/rand by rejection sampling, so every
// character of the charset is equally likely; a password missing a class
// is drawn again, which keeps the result uniform over the passwords that
// have every class.
func (p passwordPolicy) generate() (string, error) {
	p = p.withDefaults()
	if err := p.Validate(); err != nil {
		return "", err
	}
	classes := charClasses(p.Charset)
	for range 1000 {
		pw, err := randomFrom(p.Charset, p.Length)
		if err != nil {
			return "", err
		}
		if hasAll(pw, classes) {
			return pw, nil
		}
	}
	return "", logical.Errorf(logical.CodeInternal, "password_policy: could not generate a password with every character class")
}

func hasAll(s string, classes []func(byte) bool) bool {
	for _, cl := range classes {
		found := false
		for i := 0; i < len(s) && !found; i++ {
			found = cl(s[i])
		}
		if !found {
			return false
		}
	}
	return true
}

// randomFrom returns n characters of charset (at most 256 distinct bytes)
// drawn uniformly: random bytes at or above the largest multiple of
// len(charset) are discarded, so the modulo has no bias.
func randomFrom(charset string, n int) (string, error) {
	k := len(charset)
	limit := 256 - 256%k
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n+16)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, charset[int(b)%k])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}
