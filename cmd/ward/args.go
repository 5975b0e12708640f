package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// parseKVArgs builds request data from Vault-style arguments:
//
//	key=value    a literal value
//	key=@file    the contents of file
//	key=\@text   the literal "@text"
//	key=-        everything read from in (stdin)
//	@file        a JSON object read from file, merged in
//	-            a JSON object read from in, merged in
//
// A repeated key becomes a list. Values are never trimmed. Errors name the
// argument by position and never echo it, since it may hold a secret.
func parseKVArgs(in io.Reader, args []string) (map[string]any, error) {
	data := map[string]any{}
	stdinUsed := false
	useStdin := func() error {
		if in == nil {
			return errors.New("stdin is not available")
		}
		if stdinUsed {
			return errors.New("stdin can only be read once")
		}
		stdinUsed = true
		return nil
	}
	for i, arg := range args {
		pos := i + 1
		if arg == "" {
			continue
		}
		key, value, hasEq := strings.Cut(arg, "=")
		if !hasEq {
			var src io.Reader
			switch {
			case arg == "-":
				if err := useStdin(); err != nil {
					return nil, fmt.Errorf("argument %d: %w", pos, err)
				}
				src = in
			case arg[0] == '@':
				f, err := os.Open(arg[1:])
				if err != nil {
					return nil, fmt.Errorf("argument %d: %w", pos, err)
				}
				defer f.Close()
				src = f
			default:
				return nil, fmt.Errorf("argument %d: expected key=value", pos)
			}
			if err := mergeJSON(data, src); err != nil {
				return nil, fmt.Errorf("argument %d: reading JSON object: %w", pos, err)
			}
			continue
		}
		if key == "" {
			return nil, fmt.Errorf("argument %d: empty key", pos)
		}
		switch {
		case strings.HasPrefix(value, "@"):
			raw, err := os.ReadFile(value[1:])
			if err != nil {
				return nil, fmt.Errorf("argument %d (%s): %w", pos, key, err)
			}
			value = string(raw)
		case strings.HasPrefix(value, `\@`):
			value = value[1:]
		case value == "-":
			if err := useStdin(); err != nil {
				return nil, fmt.Errorf("argument %d (%s): %w", pos, key, err)
			}
			raw, err := io.ReadAll(in)
			if err != nil {
				return nil, fmt.Errorf("argument %d (%s): reading stdin: %w", pos, key, err)
			}
			value = string(raw)
		}
		switch prev := data[key].(type) {
		case nil:
			data[key] = value
		case []any:
			data[key] = append(prev, value)
		default:
			data[key] = []any{prev, value}
		}
	}
	return data, nil
}

// mergeJSON decodes one JSON object from r into data, numbers kept exact.
func mergeJSON(data map[string]any, r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			// The decoder's message quotes input characters; keep the offset only.
			return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
		}
		return err
	}
	for k, v := range obj {
		data[k] = v
	}
	return nil
}

// stringsToQuery turns parsed k=v data into query parameters.
func stringsToQuery(data map[string]any) map[string][]string {
	if len(data) == 0 {
		return nil
	}
	q := make(map[string][]string, len(data))
	for k, v := range data {
		if list, ok := v.([]any); ok {
			for _, item := range list {
				q[k] = append(q[k], fmt.Sprint(item))
			}
			continue
		}
		q[k] = []string{fmt.Sprint(v)}
	}
	return q
}

// parseDuration accepts what Vault's flags accept: an integer number of
// seconds ("3600"), a Go duration ("1h30m") or days ("7d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		d = time.Duration(n) * time.Second
	} else if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// durationFlag is a flag.Value holding a duration and whether it was set.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	f.d, f.set = d, true
	return nil
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return humanDuration(f.d)
}

// apiString is the duration as sent to the server: a Go duration string
// such as "1h" or "90s", which Vault-compatible servers parse.
func (f *durationFlag) apiString() string { return humanDuration(f.d) }

// listFlag is a repeatable string flag; with splitCommas, "-x=a,b" also
// yields two values (for names that cannot contain commas).
type listFlag struct {
	values      []string
	splitCommas bool
}

func (f *listFlag) Set(s string) error {
	parts := []string{s}
	if f.splitCommas {
		parts = strings.Split(s, ",")
	}
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			f.values = append(f.values, p)
		}
	}
	return nil
}

func (f *listFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.values, ",")
}

// mapFlag is a repeatable key=value flag.
type mapFlag struct{ values map[string]string }

func (f *mapFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("expected key=value")
	}
	if f.values == nil {
		f.values = map[string]string{}
	}
	f.values[k] = v
	return nil
}

func (f *mapFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, 0, len(f.values))
	for k := range f.values {
		parts = append(parts, k+"=…")
	}
	return strings.Join(parts, ",")
}

// parseVersions reads -versions values ("1,2", repeated) as integers.
func parseVersions(raw []string) ([]int, error) {
	var out []int
	for _, r := range raw {
		for _, p := range strings.Split(r, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("invalid version %q: versions are positive integers", p)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// flagWasSet reports whether the named flag appeared on the command line.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}
